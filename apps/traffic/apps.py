from core.apps import DomainAppConfig


class TrafficConfig(DomainAppConfig):
    default = True
    name = "apps.traffic"
    label = "traffic"
    verbose_name = "Traffic"
    domain = "traffic"
    roles = ("traffic_operator",)
    nav_label = ""  # shown in the portal once the app has pages
