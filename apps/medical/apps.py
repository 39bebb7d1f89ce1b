from __future__ import annotations

from typing import TYPE_CHECKING

from core.apps import DomainAppConfig

if TYPE_CHECKING:
    from core.tenancy.models import Organization


class MedicalConfig(DomainAppConfig):
    default = True
    name = "apps.medical"
    label = "medical"
    verbose_name = "Medical imaging"
    domain = "medical"
    roles = ("clinician",)
    nav_label = "Imaging"
    api_urls = "apps.medical.urls"
    portal_urls = "apps.medical.portal_urls"

    def ready(self) -> None:
        from apps.medical import tasks  # noqa: F401  (registers the job functions)

    def seed_demo(self, *, org: Organization, stdout: object) -> None:
        from apps.medical.demo import medical_demo_seed

        medical_demo_seed(org=org, stdout=stdout)
