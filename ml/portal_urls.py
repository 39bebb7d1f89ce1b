"""Org-admin portal pages of the model registry, mounted at `/models/` by `MlConfig.portal_prefix`."""

from django.urls import path

from ml import operations_views, views

app_name = "ml"

urlpatterns = [
    path("", views.model_list_view, name="model-list"),
    path("-/operations/", operations_views.operations_view, name="operations"),
    path("<str:name>/", views.model_detail_view, name="model-detail"),
    path("<str:name>/versions/<int:number>/", views.model_version_view, name="model-version"),
    path("<str:name>/aliases/", views.model_alias_set_view, name="model-alias-set"),
]
