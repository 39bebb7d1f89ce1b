"""Root URLs. Domain apps plug in through `DomainAppConfig.api_urls` / `portal_urls`."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.apps import domain_app_configs
from core.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("core.api.urls")),
    path("api/v1/ml/", include("ml.urls")),
]
for config in domain_app_configs():
    if config.api_urls:
        urlpatterns.append(path(f"api/v1/{config.domain}/", include(config.api_urls)))
    if config.portal_urls:
        urlpatterns.append(path(f"portal/{config.domain}/", include(config.portal_urls)))
urlpatterns.append(path("", include("core.portal.urls")))

handler404 = "core.api.handlers.not_found"
handler500 = "core.api.handlers.server_failure"
