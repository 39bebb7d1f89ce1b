"""The traffic partner API (`/api/v1/traffic/…`): thin views over services and selectors."""

from __future__ import annotations

import mimetypes
from typing import Any

from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from apps.traffic import detection, selectors, services, training, video_analysis
from apps.traffic.choices import DOMAIN, Category
from apps.traffic.serializers import (
    CameraInputSerializer,
    CameraOutputSerializer,
    ClassMapInputSerializer,
    ClassMapOutputSerializer,
    CountsFilterSerializer,
    CountsOutputSerializer,
    CrossingOutputSerializer,
    DetectionFilterSerializer,
    DetectionInputSerializer,
    DetectionRunOutputSerializer,
    DetectorTrainingRunOutputSerializer,
    TrainingInputSerializer,
    VideoFilterSerializer,
    VideoInputSerializer,
    VideoOutputSerializer,
)
from core.api.schema import conflict, referenced_not_found
from core.api.views import OrgAPIView
from core.errors import NotFound
from ml.selectors import registered_model_get, training_run_get

MULTIPART = (MultiPartParser, FormParser)
CAMERA_NAME_TAKEN = "`conflict`: the organization already has a camera of this `name`."


class TrafficApi(OrgAPIView):
    required_scope = "traffic"


def _stored_file(name: str) -> FileResponse:
    if not name or not default_storage.exists(name):
        raise NotFound("File not found.")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = FileResponse(default_storage.open(name, "rb"), content_type=content_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response


# --- Cameras ---------------------------------------------------------------------------------------


class CameraListApi(TrafficApi):
    parser_classes = (JSONParser,)

    @extend_schema(responses=CameraOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return self.paginate(request, selectors.camera_list(org=self.org), CameraOutputSerializer)

    @extend_schema(
        request=CameraInputSerializer, responses={201: CameraOutputSerializer, 409: conflict(CAMERA_NAME_TAKEN)}
    )
    def post(self, request: Request) -> Response:
        serializer = CameraInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        camera = services.camera_create(actor=self.actor, **serializer.validated_data)
        camera = selectors.camera_get(org=self.org, camera_id=camera.pk)
        return Response(CameraOutputSerializer(camera).data, status=status.HTTP_201_CREATED)


class CameraDetailApi(TrafficApi):
    parser_classes = (JSONParser,)

    @extend_schema(responses=CameraOutputSerializer)
    def get(self, request: Request, camera_id: int) -> Response:
        return Response(CameraOutputSerializer(selectors.camera_get(org=self.org, camera_id=camera_id)).data)

    @extend_schema(
        request=CameraInputSerializer, responses={200: CameraOutputSerializer, 409: conflict(CAMERA_NAME_TAKEN)}
    )
    def patch(self, request: Request, camera_id: int) -> Response:
        camera = selectors.camera_get(org=self.org, camera_id=camera_id)
        serializer = CameraInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.camera_update(actor=self.actor, camera=camera, data=serializer.validated_data)
        return Response(CameraOutputSerializer(selectors.camera_get(org=self.org, camera_id=camera_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, camera_id: int) -> Response:
        services.camera_delete(actor=self.actor, camera=selectors.camera_get(org=self.org, camera_id=camera_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class CameraFrameApi(TrafficApi):
    @extend_schema(responses={(200, "image/jpeg"): OpenApiTypes.BINARY})
    def get(self, request: Request, camera_id: int) -> FileResponse:
        return _stored_file(selectors.camera_get(org=self.org, camera_id=camera_id).last_frame)


class CameraCountsApi(TrafficApi):
    @extend_schema(parameters=[CountsFilterSerializer], responses=CountsOutputSerializer)
    def get(self, request: Request, camera_id: int) -> Response:
        camera = selectors.camera_get(org=self.org, camera_id=camera_id)
        filters = CountsFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        counts = selectors.camera_counts(org=self.org, camera=camera, **filters.validated_data)
        return Response(CountsOutputSerializer(counts).data)


# --- Image detection -------------------------------------------------------------------------------


class DetectionListApi(TrafficApi):
    parser_classes = MULTIPART

    @extend_schema(parameters=[DetectionFilterSerializer], responses=DetectionRunOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = DetectionFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        runs = selectors.detection_run_list(
            org=self.org,
            camera_id=params.get("camera"),
            start=params.get("start"),
            end=params.get("end"),
            class_name=params.get("class_name"),
        )
        return self.paginate(request, runs, DetectionRunOutputSerializer)

    @extend_schema(
        request={"multipart/form-data": DetectionInputSerializer},
        responses={201: DetectionRunOutputSerializer, 404: referenced_not_found("the `camera` or `model`")},
    )
    def post(self, request: Request) -> Response:
        serializer = DetectionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        camera = selectors.camera_get(org=self.org, camera_id=data["camera"]) if data.get("camera") else None
        run = detection.detection_run_create(
            actor=self.actor,
            upload=data["image"],
            camera=camera,
            model_name=data.get("model") or None,
            version_number=data.get("version"),
            conf=data["conf"],
            imgsz=data.get("imgsz"),
            classes=[c.strip() for c in (data.get("classes") or "").split(",") if c.strip()],
            captured_at=data.get("captured_at"),
        )
        return Response(DetectionRunOutputSerializer(run).data, status=status.HTTP_201_CREATED)


class DetectionDetailApi(TrafficApi):
    @extend_schema(responses=DetectionRunOutputSerializer)
    def get(self, request: Request, run_id: int) -> Response:
        return Response(DetectionRunOutputSerializer(selectors.detection_run_get(org=self.org, run_id=run_id)).data)


class DetectionAnnotatedImageApi(TrafficApi):
    @extend_schema(responses={(200, "image/jpeg"): OpenApiTypes.BINARY})
    def get(self, request: Request, run_id: int) -> FileResponse:
        run = selectors.detection_run_get(org=self.org, run_id=run_id)
        return _stored_file(detection.detection_annotated_image(org=self.org, run=run))


class DetectionImageApi(TrafficApi):
    @extend_schema(responses={(200, "image/*"): OpenApiTypes.BINARY})
    def get(self, request: Request, run_id: int) -> FileResponse:
        return _stored_file(selectors.detection_run_get(org=self.org, run_id=run_id).image)


# --- Video -----------------------------------------------------------------------------------------


class VideoListApi(TrafficApi):
    parser_classes = MULTIPART

    @extend_schema(parameters=[VideoFilterSerializer], responses=VideoOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = VideoFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        videos = selectors.video_list(org=self.org, camera_id=filters.validated_data.get("camera"))
        return self.paginate(request, videos, VideoOutputSerializer)

    @extend_schema(
        request={"multipart/form-data": VideoInputSerializer},
        responses={202: VideoOutputSerializer, 404: referenced_not_found("the `camera` or `model`")},
    )
    def post(self, request: Request) -> Response:
        serializer = VideoInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        camera = selectors.camera_get(org=self.org, camera_id=data["camera"])
        video = video_analysis.video_analysis_create(
            actor=self.actor,
            upload=data["video"],
            camera=camera,
            model_name=data.get("model") or None,
            version_number=data.get("version"),
            conf=data["conf"],
            imgsz=data.get("imgsz"),
            anti_flicker_frames=data["anti_flicker_frames"],
            frame_stride=data["frame_stride"],
            recorded_at=data.get("recorded_at"),
        )
        video = selectors.video_get(org=self.org, video_id=video.pk)
        return Response(VideoOutputSerializer(video).data, status=status.HTTP_202_ACCEPTED)


class VideoDetailApi(TrafficApi):
    @extend_schema(responses=VideoOutputSerializer)
    def get(self, request: Request, video_id: int) -> Response:
        return Response(VideoOutputSerializer(selectors.video_get(org=self.org, video_id=video_id)).data)


class VideoCrossingsApi(TrafficApi):
    @extend_schema(responses=CrossingOutputSerializer(many=True))
    def get(self, request: Request, video_id: int) -> Response:
        video = selectors.video_get(org=self.org, video_id=video_id)
        return self.paginate(request, selectors.crossing_list(org=self.org, video=video), CrossingOutputSerializer)


# --- Models: training and class maps ---------------------------------------------------------------


class TrainingRunListApi(TrafficApi):
    parser_classes = MULTIPART

    @extend_schema(
        request={"multipart/form-data": TrainingInputSerializer},
        responses={
            202: OpenApiResponse(
                DetectorTrainingRunOutputSerializer, description="The training run and its Job on the `training` queue."
            ),
            404: referenced_not_found("the model of `base_version`"),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = TrainingInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = training.detector_training_start(
            actor=self.actor,
            upload=data["dataset"],
            model_name=data["model"],
            epochs=data["epochs"],
            imgsz=data["imgsz"],
            batch=data["batch"],
            base_version=data.get("base_version"),
            architecture=data.get("architecture"),
            promote=data["promote"],
        )
        run = training_run_get(org=self.org, run_id=run.pk)
        return Response(DetectorTrainingRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class TrainingRunDetailApi(TrafficApi):
    @extend_schema(responses=DetectorTrainingRunOutputSerializer)
    def get(self, request: Request, run_id: int) -> Response:
        run = training_run_get(org=self.org, run_id=run_id)
        if run.kind != services.MODEL_KIND:
            raise NotFound("Training run not found.")
        return Response(DetectorTrainingRunOutputSerializer(run).data)


class ClassMapApi(TrafficApi):
    parser_classes = (JSONParser,)

    def _body(self, name: str) -> dict[str, Any]:
        model = registered_model_get(org=self.org, name=name, domain=DOMAIN)
        mapping = selectors.class_map_effective(org=self.org, registered_model=model)
        return {"model": model.name, "mapping": mapping, "categories": list(Category.values)}

    @extend_schema(responses=ClassMapOutputSerializer)
    def get(self, request: Request, name: str) -> Response:
        return Response(ClassMapOutputSerializer(self._body(name)).data)

    @extend_schema(request=ClassMapInputSerializer, responses=ClassMapOutputSerializer)
    def put(self, request: Request, name: str) -> Response:
        serializer = ClassMapInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = registered_model_get(org=self.org, name=name, domain=DOMAIN)
        services.class_map_update(
            actor=self.actor, registered_model=model, mapping=serializer.validated_data["mapping"]
        )
        return Response(ClassMapOutputSerializer(self._body(name)).data)

    patch = put
