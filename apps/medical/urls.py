"""`/api/v1/medical/…`"""

from django.urls import include, path

from apps.medical import analysis_apis, apis, report_apis, training_apis
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
    path("studies/<str:study_uid>/reports/", report_apis.StudyReportListApi.as_view(), name="medical-study-reports"),
    path("reports/<int:report_id>/", report_apis.ReportDetailApi.as_view(), name="medical-report-detail"),
    path("reports/<int:report_id>/sign/", report_apis.ReportSignApi.as_view(), name="medical-report-sign"),
    path("reports/<int:report_id>/amend/", report_apis.ReportAmendApi.as_view(), name="medical-report-amend"),
    path("training-runs/", training_apis.TrainingRunListApi.as_view(), name="medical-training-run-list"),
    path(
        "training-runs/<int:run_id>/", training_apis.TrainingRunDetailApi.as_view(), name="medical-training-run-detail"
    ),
    path("models/", training_apis.ModelListApi.as_view(), name="medical-model-list"),
    path("models/<str:name>/", training_apis.ModelDetailApi.as_view(), name="medical-model-detail"),
    path(
        "models/<str:name>/versions/<int:number>/",
        training_apis.ModelVersionDetailApi.as_view(),
        name="medical-model-version-detail",
    ),
    path("studies/<str:study_uid>/analyses/", analysis_apis.AnalysisListApi.as_view(), name="medical-analysis-list"),
    path(
        "studies/<str:study_uid>/analyses/<int:analysis_id>/",
        analysis_apis.AnalysisDetailApi.as_view(),
        name="medical-analysis-detail",
    ),
    path(
        "studies/<str:study_uid>/analyses/<int:analysis_id>/findings/<int:finding_id>/saliency.png",
        analysis_apis.AnalysisSaliencyApi.as_view(),
        name="medical-analysis-saliency",
    ),
    path("routing-rules/", analysis_apis.RoutingRuleListApi.as_view(), name="medical-routing-rule-list"),
    path(
        "routing-rules/<int:rule_id>/", analysis_apis.RoutingRuleDetailApi.as_view(), name="medical-routing-rule-detail"
    ),
]
