"""Input and output shapes of the traffic API (fields listed explicitly)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.traffic.choices import Category, CountBucket, InDirection
from apps.traffic.line_counting import DEFAULT_ANTI_FLICKER_FRAMES
from apps.traffic.ml import ARCHITECTURES
from apps.traffic.models import Camera, CountingLine, DetectionRun, LineCrossing, VideoAnalysis, Zone
from apps.traffic.selectors import counts_period
from core.api.fields import RowIdField
from core.jobs.serializers import JobOutputSerializer
from ml.models import TrainingRun
from ml.serializers import TrainingRunSerializer

Unit = serializers.FloatField(min_value=0.0, max_value=1.0)


class PointField(serializers.ListField):
    """[x, y] in normalised image coordinates (0..1, origin top-left, y down)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            child=serializers.FloatField(min_value=0.0, max_value=1.0), min_length=2, max_length=2, **kwargs
        )


class LineSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    points = serializers.ListField(child=PointField(), min_length=2, max_length=2)
    in_direction = serializers.ChoiceField(choices=InDirection.choices)


class ZoneSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    polygon = serializers.ListField(child=PointField(), min_length=3, max_length=100)


class CameraInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    location = serializers.CharField(max_length=200, required=False, allow_blank=True)
    latitude = serializers.FloatField(min_value=-90, max_value=90, required=False, allow_null=True)
    longitude = serializers.FloatField(min_value=-180, max_value=180, required=False, allow_null=True)
    description = serializers.CharField(required=False, allow_blank=True)
    model_name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    lines = LineSerializer(many=True, required=False)
    zones = ZoneSerializer(many=True, required=False)


class LineOutputSerializer(serializers.ModelSerializer[CountingLine]):
    points = serializers.SerializerMethodField()

    class Meta:
        model = CountingLine
        fields = ["id", "name", "points", "in_direction"]
        read_only_fields = fields

    def get_points(self, line: CountingLine) -> list[list[float]]:
        return [[line.x1, line.y1], [line.x2, line.y2]]


class ZoneOutputSerializer(serializers.ModelSerializer[Zone]):
    class Meta:
        model = Zone
        fields = ["id", "name", "polygon"]
        read_only_fields = fields


class CameraOutputSerializer(serializers.ModelSerializer[Camera]):
    lines = LineOutputSerializer(many=True, read_only=True)
    zones = ZoneOutputSerializer(many=True, read_only=True)
    last_frame_url = serializers.SerializerMethodField()

    class Meta:
        model = Camera
        fields = [
            "id",
            "name",
            "location",
            "latitude",
            "longitude",
            "description",
            "model_name",
            "lines",
            "zones",
            "last_frame_url",
            "last_frame_width",
            "last_frame_height",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_last_frame_url(self, camera: Camera) -> str | None:
        return f"/api/v1/traffic/cameras/{camera.pk}/frame/" if camera.last_frame else None


class DetectionInputSerializer(serializers.Serializer):
    image = serializers.FileField()
    camera = RowIdField(required=False, allow_null=True)
    model = serializers.CharField(max_length=100, required=False, allow_blank=True)
    version = serializers.IntegerField(required=False, min_value=1)
    conf = serializers.FloatField(required=False, min_value=0.0, max_value=1.0, default=0.25)
    imgsz = serializers.IntegerField(required=False, min_value=32, max_value=4096)
    classes = serializers.CharField(required=False, allow_blank=True, help_text="Comma-separated categories/classes.")
    captured_at = serializers.DateTimeField(required=False)


def detection_box(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    """Boxes are served unrounded: exactly the float32 values ultralytics returned (a float64
    column holds every float32 exactly), so clients can compare them with raw `predict`."""
    return [x1, y1, x2, y2]


class DetectionRunOutputSerializer(serializers.ModelSerializer[DetectionRun]):
    model = serializers.SerializerMethodField()
    image = serializers.SerializerMethodField()
    detections = serializers.SerializerMethodField()
    annotated_image_url = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()

    class Meta:
        model = DetectionRun
        fields = [
            "id",
            "camera",
            "model",
            "image",
            "detections",
            "counts",
            "inference_ms",
            "conf",
            "imgsz",
            "captured_at",
            "created_at",
            "annotated_image_url",
            "image_url",
        ]
        read_only_fields = fields

    def get_model(self, run: DetectionRun) -> dict[str, Any]:
        return {"name": run.model_name, "version": run.model_version_number}

    def get_image(self, run: DetectionRun) -> dict[str, int]:
        return {"width": run.width, "height": run.height}

    def get_detections(self, run: DetectionRun) -> list[dict[str, Any]]:
        return [
            {
                "class_name": d.class_name,
                "category": d.category or None,
                "confidence": d.confidence,
                "box": detection_box(d.x1, d.y1, d.x2, d.y2),
            }
            for d in run.detections.all()
        ]

    def get_annotated_image_url(self, run: DetectionRun) -> str | None:
        # Drawn on demand the first time it is fetched (apps.traffic.detection), so always present.
        return f"/api/v1/traffic/detections/{run.pk}/annotated/"

    def get_image_url(self, run: DetectionRun) -> str:
        return f"/api/v1/traffic/detections/{run.pk}/image/"


class DetectionFilterSerializer(serializers.Serializer):
    camera = RowIdField(required=False)
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)
    class_name = serializers.CharField(required=False, max_length=100, help_text="Runs with a detection of it.")

    def get_fields(self) -> dict[str, serializers.Field]:
        # `?class=` is accepted as an alias of `class_name`; a keyword, so not a class attribute.
        fields = super().get_fields()
        fields["class"] = serializers.CharField(required=False, max_length=100, help_text="Alias of `class_name`.")
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        alias = attrs.pop("class", None)
        if not attrs.get("class_name") and alias:
            attrs["class_name"] = alias
        return attrs


class VideoFilterSerializer(serializers.Serializer):
    camera = RowIdField(required=False, help_text="Only videos of this camera.")


class VideoInputSerializer(serializers.Serializer):
    video = serializers.FileField()
    camera = RowIdField()
    model = serializers.CharField(max_length=100, required=False, allow_blank=True)
    version = serializers.IntegerField(required=False, min_value=1)
    conf = serializers.FloatField(required=False, min_value=0.01, max_value=1.0, default=0.1)
    imgsz = serializers.IntegerField(required=False, min_value=32, max_value=4096)
    anti_flicker_frames = serializers.IntegerField(
        required=False, min_value=1, max_value=100, default=DEFAULT_ANTI_FLICKER_FRAMES
    )
    frame_stride = serializers.IntegerField(required=False, min_value=1, max_value=30, default=1)
    recorded_at = serializers.DateTimeField(required=False, help_text="Wall-clock time of the first frame.")


class VideoOutputSerializer(serializers.ModelSerializer[VideoAnalysis]):
    status = serializers.CharField(source="job.status", read_only=True)
    progress = serializers.FloatField(source="job.progress", read_only=True)
    job = JobOutputSerializer(read_only=True)
    model = serializers.SerializerMethodField()
    line_crossings = serializers.JSONField(source="line_totals", read_only=True)

    class Meta:
        model = VideoAnalysis
        fields = [
            "id",
            "camera",
            "status",
            "progress",
            "job",
            "model",
            "original_filename",
            "recorded_at",
            "fps",
            "width",
            "height",
            "frames",
            "duration_s",
            "counts",
            "line_crossings",
            "zone_peaks",
            "anti_flicker_frames",
            "frame_stride",
            "conf",
            "imgsz",
            "processing_fps",
            "created_at",
        ]
        read_only_fields = fields

    def get_model(self, video: VideoAnalysis) -> dict[str, Any]:
        return {"name": video.model_name, "version": video.model_version_number}


class CrossingOutputSerializer(serializers.ModelSerializer[LineCrossing]):
    line = serializers.CharField(source="line_name", read_only=True)

    class Meta:
        model = LineCrossing
        fields = ["id", "line", "track_id", "class_name", "category", "direction", "frame", "occurred_at"]
        read_only_fields = fields


class CountsFilterSerializer(serializers.Serializer):
    start = serializers.DateTimeField(required=False, help_text="Default: `end` minus a day (30 days for `day`).")
    end = serializers.DateTimeField(required=False, help_text="Default: the next full hour.")
    bucket = serializers.ChoiceField(choices=CountBucket.choices, default=CountBucket.HOUR)
    line = serializers.CharField(required=False, max_length=100)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("start"), attrs.get("end")
        attrs["start"], attrs["end"] = counts_period(bucket=attrs["bucket"], start=start, end=end)
        return attrs


class CountsBucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    counts = serializers.DictField(child=serializers.IntegerField())
    detected = serializers.DictField(child=serializers.IntegerField())
    images = serializers.IntegerField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["in"] = instance["in"]
        data["out"] = instance["out"]
        return data


class CountsOutputSerializer(serializers.Serializer):
    camera = serializers.IntegerField()
    line = serializers.CharField(allow_null=True)
    bucket = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    totals = serializers.DictField(child=serializers.IntegerField())
    buckets = CountsBucketSerializer(many=True)


class TrainingInputSerializer(serializers.Serializer):
    dataset = serializers.FileField(help_text="Zip of a YOLO dataset: data.yaml, images/, labels/.")
    model = serializers.RegexField(r"^[a-z0-9][a-z0-9._-]{0,99}$", max_length=100)
    epochs = serializers.IntegerField(min_value=1, max_value=1000, default=50)
    imgsz = serializers.IntegerField(min_value=32, max_value=2048, default=640)
    batch = serializers.IntegerField(min_value=1, max_value=512, default=16)
    base_version = serializers.IntegerField(min_value=1, required=False)
    architecture = serializers.ChoiceField(choices=[(a, a) for a in ARCHITECTURES], required=False)
    promote = serializers.BooleanField(default=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "base_version" in attrs and "architecture" in attrs:
            raise serializers.ValidationError(
                "Give either `base_version` (fine-tune) or `architecture` (from scratch)."
            )
        return attrs


class DetectorTrainingRunOutputSerializer(TrainingRunSerializer):
    """The registry's training run (status, live metrics per epoch, the version it produced) plus
    a summary of the detection dataset it trained on."""

    dataset = serializers.SerializerMethodField()

    class Meta:
        ref_name = "TrafficTrainingRun"

    @extend_schema_field({"type": "object", "additionalProperties": True, "description": "Dataset summary."})
    def get_dataset(self, run: TrainingRun) -> dict[str, Any]:
        summary: dict[str, Any] = (run.data or {}).get("summary", {})
        return summary


class ClassMapInputSerializer(serializers.Serializer):
    mapping = serializers.DictField(
        child=serializers.ChoiceField(choices=[("", "ignored"), *Category.choices], allow_blank=True)
    )


class ClassMapOutputSerializer(serializers.Serializer):
    model = serializers.CharField()
    mapping = serializers.DictField(child=serializers.CharField(allow_blank=True))
    categories = serializers.ListField(child=serializers.CharField())
