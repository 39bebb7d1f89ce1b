from __future__ import annotations

from typing import TYPE_CHECKING

from core.apps import DomainAppConfig

if TYPE_CHECKING:
    from core.tenancy.models import Organization


class FinanceConfig(DomainAppConfig):
    default = True
    name = "apps.finance"
    label = "finance"
    verbose_name = "Credit risk"
    domain = "finance"
    roles = ("credit_analyst",)
    nav_label = "Credit risk"
    api_urls = "apps.finance.urls"
    portal_urls = "apps.finance.portal_urls"

    def ready(self) -> None:
        from apps.finance import ml, tasks  # noqa: F401  (registers the ModelKind and the job functions)
        from apps.finance.choices import MODEL_KIND
        from apps.finance.training_data import credit_training_data
        from core.celery import app
        from ml.kinds import training_data_register

        # The kind trains on what this loader materialises; it never reads the ORM or storage.
        training_data_register(kind=MODEL_KIND, loader=credit_training_data)

        # PSI/CSI drift snapshots of every production credit model, once a day.
        app.conf.beat_schedule = {
            **(app.conf.beat_schedule or {}),
            "finance-monitoring-daily": {
                "task": tasks.MONITORING_SWEEP_TASK,
                "schedule": 24 * 3600,
                "options": {"queue": "default"},
            },
        }

    def seed_demo(self, *, org: Organization, stdout: object) -> None:
        from apps.finance.demo import finance_demo_seed

        finance_demo_seed(org=org, stdout=stdout)
