"""`/api/v1/medical/…`"""

from django.urls import include, path

from apps.medical import apis
from apps.medical.monitoring_apis import ModelMonitoringApi
from apps.medical.node_apis import DicomNodeDetailApi, DicomNodeListApi

urlpatterns = [
    path("dicomweb/", include("apps.medical.dicomweb.urls")),
    path("dicom-nodes/", DicomNodeListApi.as_view(), name="medical-dicom-node-list"),
    path("dicom-nodes/<int:node_id>/", DicomNodeDetailApi.as_view(), name="medical-dicom-node-detail"),
    path("studies/", apis.StudyListApi.as_view(), name="medical-study-list"),
    path("studies/<str:study_uid>/", apis.StudyDetailApi.as_view(), name="medical-study-detail"),
    path(
        "studies/<str:study_uid>/series/<str:series_uid>/",
        apis.SeriesDetailApi.as_view(),
        name="medical-series-detail",
    ),
    path("settings/", apis.SettingsApi.as_view(), name="medical-settings"),
    path("access-log/", apis.AccessLogApi.as_view(), name="medical-access-log"),
    path("access-log/export/", apis.AccessLogExportApi.as_view(), name="medical-access-log-export"),
    path("exports/", apis.ExportListApi.as_view(), name="medical-export-list"),
    path("exports/<int:export_id>/", apis.ExportDetailApi.as_view(), name="medical-export-detail"),
    path("exports/<int:export_id>/download/", apis.ExportDownloadApi.as_view(), name="medical-export-download"),
    path("models/<str:name>/monitoring/", ModelMonitoringApi.as_view(), name="medical-model-monitoring"),
]
