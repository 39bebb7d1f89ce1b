from core.apps import DomainAppConfig


class FinanceConfig(DomainAppConfig):
    default = True
    name = "apps.finance"
    label = "finance"
    verbose_name = "Credit risk"
    domain = "finance"
    roles = ("credit_analyst",)
    nav_label = ""  # shown in the portal once the app has pages
