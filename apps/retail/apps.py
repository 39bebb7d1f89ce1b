from core.apps import DomainAppConfig


class RetailConfig(DomainAppConfig):
    default = True
    name = "apps.retail"
    label = "retail"
    verbose_name = "Recommendations"
    domain = "retail"
    roles = ("merchant",)
    nav_label = ""  # shown in the portal once the app has pages
