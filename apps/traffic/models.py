"""Traffic rows: cameras with counting lines and zones, class maps, image detections, video
analyses and their line crossings. Every row belongs to one organization (indexed FK)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.traffic.choices import Category, CrossingDirection, InDirection
from core.tenancy.models import TimeStampedModel
from ml.models import ServedByVersion


def _unit_interval(*names: str) -> Q:
    condition = Q()
    for name in names:
        condition &= Q(**{f"{name}__gte": 0.0}) & Q(**{f"{name}__lte": 1.0})
    return condition


class Camera(TimeStampedModel):
    """A camera of the city: where it is, its counting lines and zones, and its latest frame."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="traffic_cameras")
    name = models.CharField(max_length=100)
    location = models.CharField(max_length=200, blank=True)
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    description = models.TextField(blank=True)
    model_name = models.CharField(
        max_length=100, blank=True, help_text="Registered model used for this camera; empty: the default detector."
    )
    last_frame = models.CharField(max_length=500, blank=True, help_text="Storage name of the latest frame.")
    last_frame_width = models.PositiveIntegerField(null=True, blank=True)
    last_frame_height = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["organization", "name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="traffic_camera_unique_name")]

    def __str__(self) -> str:
        return self.name


class CountingLine(TimeStampedModel):
    """A segment p1 → p2 in normalised coordinates; crossings in `in_direction` count as "in"."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+")
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="lines")
    name = models.CharField(max_length=100)
    x1 = models.FloatField()
    y1 = models.FloatField()
    x2 = models.FloatField()
    y2 = models.FloatField()
    in_direction = models.CharField(max_length=8, choices=InDirection.choices)

    class Meta:
        ordering = ["camera", "name"]
        constraints = [
            models.UniqueConstraint(fields=["camera", "name"], name="traffic_line_unique_name"),
            models.CheckConstraint(condition=_unit_interval("x1", "y1", "x2", "y2"), name="traffic_line_normalized"),
            models.CheckConstraint(condition=Q(in_direction__in=InDirection.values), name="traffic_line_direction"),
        ]

    def __str__(self) -> str:
        return f"{self.camera.name}/{self.name}"


class Zone(TimeStampedModel):
    """A polygon (list of [x, y] normalised points) in which the app reports peak occupancy."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+")
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="zones")
    name = models.CharField(max_length=100)
    polygon = models.JSONField()

    class Meta:
        ordering = ["camera", "name"]
        constraints = [models.UniqueConstraint(fields=["camera", "name"], name="traffic_zone_unique_name")]

    def __str__(self) -> str:
        return f"{self.camera.name}/{self.name}"


class ClassMap(TimeStampedModel):
    """How a registered detector's class names map to Tessera categories ("" = ignored)."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+")
    registered_model = models.OneToOneField(
        "ml.RegisteredModel", on_delete=models.CASCADE, related_name="traffic_class_map"
    )
    mapping = models.JSONField(default=dict)

    class Meta:
        ordering = ["registered_model"]

    def __str__(self) -> str:
        return f"class map of {self.registered_model.name}"


class DetectionRun(ServedByVersion, TimeStampedModel):
    """One image sent for detection, with the model version used and the counts per category.

    `model_version`, `model_name`, `model_version_number` come from `ServedByVersion` (PROTECT:
    a version that produced results cannot be deleted).
    """

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="traffic_detections")
    camera = models.ForeignKey(Camera, null=True, blank=True, on_delete=models.SET_NULL, related_name="detection_runs")
    image = models.CharField(max_length=500)
    annotated_image = models.CharField(max_length=500, blank=True)
    original_filename = models.CharField(max_length=255, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    imgsz = models.PositiveIntegerField()
    conf = models.FloatField()
    classes = models.JSONField(default=list, blank=True)
    counts = models.JSONField(default=dict)
    inference_ms = models.FloatField()
    captured_at = models.DateTimeField(db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-captured_at", "-id"]
        indexes = [models.Index(fields=["organization", "camera", "captured_at"], name="traffic_det_org_cam_time")]

    def __str__(self) -> str:
        return f"Detection {self.pk}"


class Detection(models.Model):
    """One box of a detection run (pixel coordinates of the original image)."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(DetectionRun, on_delete=models.CASCADE, related_name="detections")
    class_id = models.PositiveIntegerField()
    class_name = models.CharField(max_length=100)
    category = models.CharField(max_length=16, choices=Category.choices, blank=True, db_index=True)
    confidence = models.FloatField()
    x1 = models.FloatField()
    y1 = models.FloatField()
    x2 = models.FloatField()
    y2 = models.FloatField()

    class Meta:
        ordering = ["run", "-confidence", "id"]

    def __str__(self) -> str:
        return f"{self.class_name} {self.confidence:.2f}"


class VideoAnalysis(ServedByVersion, TimeStampedModel):
    """A video of a camera, tracked and counted by a job on the `inference` queue (served by one version)."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="traffic_videos")
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="videos")
    job = models.OneToOneField("core.Job", on_delete=models.PROTECT, related_name="traffic_video")
    video = models.CharField(max_length=500)
    original_filename = models.CharField(max_length=255, blank=True)
    recorded_at = models.DateTimeField(help_text="Wall-clock time of the first frame.")
    imgsz = models.PositiveIntegerField()
    conf = models.FloatField()
    anti_flicker_frames = models.PositiveSmallIntegerField()
    frame_stride = models.PositiveSmallIntegerField(default=1)
    fps = models.FloatField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    frames = models.PositiveIntegerField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    line_totals = models.JSONField(default=list, blank=True)
    zone_peaks = models.JSONField(default=list, blank=True)
    processing_fps = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "video analyses"

    def __str__(self) -> str:
        return f"Video {self.pk} of {self.camera.name}"


class LineCrossing(models.Model):
    """One confirmed crossing of a counting line by a tracked object (an event with its time)."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+")
    camera = models.ForeignKey(Camera, on_delete=models.CASCADE, related_name="crossings")
    video = models.ForeignKey(VideoAnalysis, on_delete=models.CASCADE, related_name="crossings")
    line = models.ForeignKey(CountingLine, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    line_name = models.CharField(max_length=100)
    track_id = models.PositiveIntegerField()
    class_name = models.CharField(max_length=100)
    category = models.CharField(max_length=16, choices=Category.choices, blank=True)
    direction = models.CharField(max_length=3, choices=CrossingDirection.choices)
    frame = models.PositiveIntegerField()
    occurred_at = models.DateTimeField()

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [models.Index(fields=["organization", "camera", "occurred_at"], name="traffic_cross_org_cam_time")]
        constraints = [
            # A job that runs twice leaves one set of events (see services.video_analysis_process).
            models.UniqueConstraint(fields=["video", "line_name", "track_id", "frame"], name="traffic_crossing_once"),
            models.CheckConstraint(condition=Q(direction__in=CrossingDirection.values), name="traffic_crossing_dir"),
        ]

    def __str__(self) -> str:
        return f"{self.line_name} {self.direction} {self.class_name} @ {self.occurred_at:%Y-%m-%d %H:%M:%S}"
