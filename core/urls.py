"""Root URLs. Apps plug in their API and portal pages through `core.apps.PortalAppConfig`."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.apps import portal_app_configs
from core.health import healthz
from core.telemetry.views import metrics_view

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("core.api.urls")),
]
for config in portal_app_configs():
    if config.api_urls:
        urlpatterns.append(path(config.api_url_prefix(), include(config.api_urls)))
    if config.portal_urls:
        urlpatterns.append(path(config.portal_url_prefix(), include(config.portal_urls)))
urlpatterns.append(path("", include("core.portal.urls")))

handler404 = "core.api.handlers.not_found"
handler500 = "core.api.handlers.server_failure"
