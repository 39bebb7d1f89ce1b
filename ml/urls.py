"""`/api/v1/ml/…`: the model registry's partner API (see `ml.apis`)."""

from django.urls import path

from ml.apis import (
    ModelAliasApi,
    ModelAliasHistoryApi,
    ModelDetailApi,
    ModelListApi,
    ModelVersionArtifactApi,
    ModelVersionDetailApi,
    ModelVersionImportApi,
)

urlpatterns = [
    path("models/", ModelListApi.as_view(), name="ml-model-list"),
    path("models/<str:name>/", ModelDetailApi.as_view(), name="ml-model-detail"),
    path("models/<str:name>/versions/", ModelVersionImportApi.as_view(), name="ml-version-import"),
    path("models/<str:name>/versions/<int:number>/", ModelVersionDetailApi.as_view(), name="ml-version-detail"),
    path(
        "models/<str:name>/versions/<int:number>/artifact/",
        ModelVersionArtifactApi.as_view(),
        name="ml-version-artifact",
    ),
    # Before `aliases/<alias>/`, so `history` reads as the history, not an alias named so.
    path("models/<str:name>/aliases/history/", ModelAliasHistoryApi.as_view(), name="ml-alias-history"),
    path("models/<str:name>/aliases/<str:alias>/", ModelAliasApi.as_view(), name="ml-alias-set"),
]
