from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.apps import DomainAppConfig

if TYPE_CHECKING:
    from core.tenancy.models import Organization


class TrafficConfig(DomainAppConfig):
    default = True
    name = "apps.traffic"
    label = "traffic"
    verbose_name = "Traffic"
    domain = "traffic"
    roles = ("traffic_operator",)
    nav_label = "Traffic"
    api_urls = "apps.traffic.urls"
    portal_urls = "apps.traffic.portal_urls"

    def ready(self) -> None:
        from apps.traffic import ml, tasks  # noqa: F401  (registers the ModelKind and the job function)
        from apps.traffic.choices import MODEL_KIND
        from apps.traffic.datasets import detector_training_data
        from ml.kinds import training_data_register

        # How a training run's stored dataset zip becomes what the kind trains on.
        training_data_register(kind=MODEL_KIND, loader=detector_training_data)

    def seed_demo(self, *, org: Organization, stdout: Any) -> None:
        """A demo camera with a counting line and a small detector trained from scratch on generated frames."""
        from apps.traffic.demo import traffic_demo_seed

        traffic_demo_seed(org=org, stdout=stdout)
