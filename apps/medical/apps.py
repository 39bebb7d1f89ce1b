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
        from apps.medical import (
            ml,  # noqa: F401  (registers the medical.image_classifier ModelKind)
            tasks,  # noqa: F401  (registers the job functions)
        )
        from apps.medical.ml import MODEL_KIND
        from apps.medical.training_data import classifier_training_data
        from ml.kinds import training_data_register

        # The kind trains on what this loader materialises; it never reads the ORM or storage.
        training_data_register(kind=MODEL_KIND, loader=classifier_training_data)
        from apps.medical import analysis  # noqa: F401  (registers the medical.analysis job function)

    def seed_demo(self, *, org: Organization, stdout: object) -> None:
        from apps.medical.demo import medical_demo_seed
        from apps.medical.diagnosis_demo import diagnosis_demo_seed

        medical_demo_seed(org=org, stdout=stdout)
        diagnosis_demo_seed(org=org, stdout=stdout)
