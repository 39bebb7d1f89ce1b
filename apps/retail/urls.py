"""`/api/v1/retail/…`"""

from django.urls import path

from apps.retail import apis

urlpatterns = [
    path("items/", apis.ItemListApi.as_view(), name="retail-item-list"),
    path("items/import/", apis.ItemImportApi.as_view(), name="retail-item-import"),
    path("items/<str:item_id>/", apis.ItemDetailApi.as_view(), name="retail-item-detail"),
    path("items/<str:item_id>/similar/", apis.ItemSimilarApi.as_view(), name="retail-item-similar"),
    path("events/", apis.EventListApi.as_view(), name="retail-event-list"),
    path("events/import/", apis.EventImportApi.as_view(), name="retail-event-import"),
    path("imports/", apis.ImportListApi.as_view(), name="retail-import-list"),
    path("imports/<int:import_id>/", apis.ImportDetailApi.as_view(), name="retail-import-detail"),
    path("customers/", apis.CustomerListApi.as_view(), name="retail-customer-list"),
    path(
        "customers/<str:customer_id>/recommendations/",
        apis.CustomerRecommendationsApi.as_view(),
        name="retail-customer-recommendations",
    ),
    path("recommendations/batch/", apis.RecommendationBatchApi.as_view(), name="retail-recommendation-batch"),
    path("recommendations/<str:recomm_id>/", apis.RecommendationDetailApi.as_view(), name="retail-recommendation"),
    path("exports/", apis.ExportListApi.as_view(), name="retail-export-list"),
    path("exports/<int:export_id>/", apis.ExportDetailApi.as_view(), name="retail-export-detail"),
    path("exports/<int:export_id>/download/", apis.ExportDownloadApi.as_view(), name="retail-export-download"),
    path("settings/", apis.SettingsApi.as_view(), name="retail-settings"),
    path("training-runs/", apis.TrainingRunListApi.as_view(), name="retail-training-run-list"),
    path("training-runs/<int:run_id>/", apis.TrainingRunDetailApi.as_view(), name="retail-training-run-detail"),
    path("models/", apis.ModelListApi.as_view(), name="retail-model-list"),
    path("models/<str:name>/", apis.ModelDetailApi.as_view(), name="retail-model-detail"),
    path("models/<str:name>/versions/<int:number>/", apis.ModelVersionDetailApi.as_view(), name="retail-version"),
    path("models/<str:name>/aliases/", apis.ModelAliasApi.as_view(), name="retail-model-aliases"),
    path("models/<str:name>/traffic-split/", apis.TrafficSplitApi.as_view(), name="retail-traffic-split"),
    path("models/<str:name>/online-report/", apis.OnlineReportApi.as_view(), name="retail-online-report"),
]
