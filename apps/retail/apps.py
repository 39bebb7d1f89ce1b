from __future__ import annotations

from typing import TYPE_CHECKING

from core.apps import DomainAppConfig

if TYPE_CHECKING:
    from core.tenancy.models import Organization


class RetailConfig(DomainAppConfig):
    default = True
    name = "apps.retail"
    label = "retail"
    verbose_name = "Recommendations"
    domain = "retail"
    roles = ("merchant",)
    nav_label = "Recommendations"
    api_urls = "apps.retail.urls"
    portal_urls = "apps.retail.portal_urls"

    def ready(self) -> None:
        from apps.retail import ml, tasks  # noqa: F401  (registers the ModelKinds and the job functions)
        from apps.retail.training_data import interactions_matrix
        from ml.kinds import kind_names, training_data_register

        # every retail kind trains on the organization's aggregated events; kinds never read the ORM
        for kind in kind_names(domain=self.domain):
            training_data_register(kind=kind, loader=interactions_matrix)

    def seed_demo(self, *, org: Organization, stdout: object) -> None:
        from apps.retail.demo import retail_demo_seed

        retail_demo_seed(org=org, stdout=stdout)
