from core.apps import PortalAppConfig


class MlConfig(PortalAppConfig):
    """The shared ML layer; plugs the model registry's portal pages (org admins) and API into the platform."""

    default = True
    name = "ml"
    label = "ml"
    verbose_name = "Model registry"
    portal_urls = "ml.portal_urls"
    portal_prefix = "models/"
    api_urls = "ml.urls"
    api_prefix = "api/v1/ml/"
    nav_key = "models"
    nav_label = "Models"
    nav_admin_only = True
    nav_order = 200  # after the domains (100), before the platform's API keys and Audit

    def ready(self) -> None:
        from ml import signals, training  # noqa: F401  (the ml.train job function, the worker warm-up hook)
