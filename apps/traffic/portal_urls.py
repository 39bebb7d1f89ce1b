from django.urls import path

from apps.traffic import views

app_name = "traffic"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("cameras/<int:camera_id>/", views.camera_detail, name="camera-detail"),
    path("cameras/<int:camera_id>/video/", views.video_upload, name="video-upload"),
    path("detect/", views.detect, name="detect"),
    path("detections/<int:run_id>/", views.detection_detail, name="detection-detail"),
    path("videos/<int:video_id>/", views.video_detail, name="video-detail"),
    path("models/<str:name>/", views.model_detail, name="model-detail"),
    path("train/", views.train, name="train"),
    path("training-runs/<int:run_id>/", views.training_run, name="training-run"),
]
