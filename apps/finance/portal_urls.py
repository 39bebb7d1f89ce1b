"""`/portal/finance/…`: the credit analyst portal."""

from django.urls import path

from apps.finance import views

app_name = "finance"

urlpatterns = [
    path("", views.home, name="home"),
    path("datasets/new/", views.dataset_upload, name="dataset-upload"),
    path("datasets/<int:dataset_id>/", views.dataset_detail, name="dataset-detail"),
    path("training-runs/<int:run_id>/", views.training_run, name="training-run"),
    path("models/<str:name>/", views.model_detail, name="model-detail"),
    path("models/<str:name>/v<int:number>/", views.model_detail, name="model-version"),
    path("models/<str:name>/compare/", views.model_compare, name="model-compare"),
    path("models/<str:name>/monitoring/", views.monitoring, name="monitoring"),
    path("score/", views.score, name="score"),
    path("decisions/", views.decision_list, name="decision-list"),
    path("decisions/<str:decision_id>/", views.decision_detail, name="decision-detail"),
    path("batches/", views.batch_list, name="batch-list"),
    path("batches/<int:batch_id>/", views.batch_detail, name="batch-detail"),
    path("batches/<int:batch_id>/results.csv", views.batch_results, name="batch-results"),
    path("policy/", views.policy, name="policy"),
]
