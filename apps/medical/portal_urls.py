"""`/portal/medical/…`: the clinician portal, and the OHIF viewer when installed."""

from django.urls import path

from apps.medical import diagnosis_views, model_views, views

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
    path("worklist/", diagnosis_views.worklist_page, name="worklist"),
    path(f"{_STUDY}report/", diagnosis_views.study_report, name="study-report"),
    path("reports/<int:report_id>/", diagnosis_views.report_detail, name="report-detail"),
    path("findings/<int:finding_id>/saliency.png", diagnosis_views.finding_saliency, name="finding-saliency"),
    path("models/", model_views.model_list, name="model-list"),
    path("training-runs/new/", model_views.train, name="train"),
    path("training-runs/<int:run_id>/", model_views.training_run, name="training-run"),
    path("routing-rules/", model_views.routing_rules, name="routing-rules"),
    path("routing-rules/<int:rule_id>/", model_views.routing_rule_edit, name="routing-rule-edit"),
    path("routing-rules/<int:rule_id>/delete/", model_views.routing_rule_delete, name="routing-rule-delete"),
    path("models/<str:name>/", model_views.model_detail, name="model-detail"),
    path("models/<str:name>/v<int:number>/", model_views.model_detail, name="model-version"),
]
