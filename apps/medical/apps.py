from core.apps import DomainAppConfig


class MedicalConfig(DomainAppConfig):
    default = True
    name = "apps.medical"
    label = "medical"
    verbose_name = "Medical imaging"
    domain = "medical"
    roles = ("clinician",)
    nav_label = ""  # shown in the portal once the app has pages
    api_urls = "apps.medical.urls"
