from django.urls import path

from apps.traffic import apis

urlpatterns = [
    path("cameras/", apis.CameraListApi.as_view(), name="traffic-camera-list"),
    path("cameras/<int:camera_id>/", apis.CameraDetailApi.as_view(), name="traffic-camera-detail"),
    path("cameras/<int:camera_id>/frame/", apis.CameraFrameApi.as_view(), name="traffic-camera-frame"),
    path("cameras/<int:camera_id>/counts/", apis.CameraCountsApi.as_view(), name="traffic-camera-counts"),
    path("detections/", apis.DetectionListApi.as_view(), name="traffic-detection-list"),
    path("detections/<int:run_id>/", apis.DetectionDetailApi.as_view(), name="traffic-detection-detail"),
    path("detections/<int:run_id>/annotated/", apis.DetectionAnnotatedImageApi.as_view(), name="traffic-annotated"),
    path("detections/<int:run_id>/image/", apis.DetectionImageApi.as_view(), name="traffic-detection-image"),
    path("videos/", apis.VideoListApi.as_view(), name="traffic-video-list"),
    path("videos/<int:video_id>/", apis.VideoDetailApi.as_view(), name="traffic-video-detail"),
    path("videos/<int:video_id>/crossings/", apis.VideoCrossingsApi.as_view(), name="traffic-video-crossings"),
    path("training-runs/", apis.TrainingRunListApi.as_view(), name="traffic-training-run-list"),
    path("training-runs/<int:run_id>/", apis.TrainingRunDetailApi.as_view(), name="traffic-training-run-detail"),
    path("models/<str:name>/class-map/", apis.ClassMapApi.as_view(), name="traffic-class-map"),
]
