"""`/api/v1/finance/…`"""

from django.urls import path

from apps.finance import apis

urlpatterns = [
    path("datasets/", apis.DatasetListApi.as_view(), name="finance-dataset-list"),
    path("datasets/<int:dataset_id>/", apis.DatasetDetailApi.as_view(), name="finance-dataset-detail"),
    path("training-runs/", apis.TrainingRunListApi.as_view(), name="finance-training-run-list"),
    path("training-runs/<int:run_id>/", apis.TrainingRunDetailApi.as_view(), name="finance-training-run-detail"),
    path("models/", apis.ModelListApi.as_view(), name="finance-model-list"),
    path("models/<str:name>/", apis.ModelDetailApi.as_view(), name="finance-model-detail"),
    path("models/<str:name>/versions/<int:number>/", apis.ModelVersionDetailApi.as_view(), name="finance-version"),
    path("models/<str:name>/promote/", apis.ModelPromoteApi.as_view(), name="finance-model-promote"),
    path("models/<str:name>/monitoring/", apis.ModelMonitoringApi.as_view(), name="finance-model-monitoring"),
    path("policy/", apis.PolicyApi.as_view(), name="finance-policy"),
    path("scores/", apis.ScoreApi.as_view(), name="finance-score"),
    path("decisions/", apis.DecisionListApi.as_view(), name="finance-decision-list"),
    path("decisions/<str:decision_id>/", apis.DecisionDetailApi.as_view(), name="finance-decision-detail"),
    path("decisions/<str:decision_id>/replay/", apis.DecisionReplayApi.as_view(), name="finance-decision-replay"),
    path("batches/", apis.BatchListApi.as_view(), name="finance-batch-list"),
    path("batches/<int:batch_id>/", apis.BatchDetailApi.as_view(), name="finance-batch-detail"),
    path("batches/<int:batch_id>/results/", apis.BatchResultsApi.as_view(), name="finance-batch-results"),
]
