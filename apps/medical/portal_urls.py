"""`/portal/medical/…`: the clinician portal, and the OHIF viewer when installed."""

from django.urls import path

from apps.medical import views

app_name = "medical"

_STUDY = "studies/<str:study_uid>/"

urlpatterns = [
    path("", views.study_list, name="study-list"),
    path("upload/", views.upload, name="upload"),
    path("dicom-nodes/", views.dicom_nodes, name="dicom-nodes"),
    path(_STUDY, views.study_detail, name="study-detail"),
    path(f"{_STUDY}delete/", views.study_delete, name="study-delete"),
    path(f"{_STUDY}export/", views.study_export, name="study-export"),
    path("exports/<int:export_id>/", views.export_detail, name="export-detail"),
    path(f"{_STUDY}series/<str:series_uid>/", views.series_viewer, name="series-viewer"),
    path("ohif/app-config.js", views.ohif_app_config, name="ohif-config"),
    path("ohif/", views.ohif_files, name="ohif"),
    path("ohif/<path:path>", views.ohif_files, name="ohif-files"),
]
