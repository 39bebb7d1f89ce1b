"""The imaging lead's model pages: list, version metrics, model card, monitoring; tenancy and roles."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest

from apps.medical.classifier_metrics import classification_metrics
from apps.medical.models import Analysis, Patient, Report, Study
from core.jobs.models import Job
from ml.models import ModelAlias, ModelVersion, RegisteredModel

pytestmark = pytest.mark.django_db

KIND = "medical.image_classifier"
CLASSES = ["no finding", "nodule"]


def _metrics() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 20)
    positive = np.clip(labels * 0.6 + rng.uniform(0, 0.4, len(labels)), 0, 1)
    metrics = classification_metrics(np.stack([1 - positive, positive], axis=1), labels, CLASSES)
    metrics["split"] = {
        "method": "split by patient",
        "train": {"patients": 60, "images": 60},
        "validation": {"patients": 40, "images": 40},
        "patients_in_both": 0,
    }
    metrics["epochs"] = [{"epoch": 1, "loss": 0.7, "val_auc": 0.6}, {"epoch": 2, "loss": 0.4, "val_auc": 0.9}]
    return metrics


@pytest.fixture
def chest(org: Any) -> RegisteredModel:
    model = RegisteredModel.objects.create(organization=org, name="chest", kind=KIND)
    version = ModelVersion.objects.create(
        registered_model=model,
        number=1,
        kind=KIND,
        artifact_format="torch-state-dict",
        artifact_path="x/1",
        artifact_sha256="ab" * 32,
        source="trained",
        metrics=_metrics(),
        input_schema={"classes": CLASSES},
        model_card={
            "intended_use": "Decision support for the demo.",
            "training_data": {"classes": CLASSES, "images_per_class": {"nodule": 50}},
            "limits": ["Synthetic images only."],
        },
    )
    ModelAlias.objects.create(registered_model=model, name="production", version=version)
    patient = Patient.objects.create(organization=org, patient_id="P1")
    study = Study.objects.create(organization=org, patient=patient, study_instance_uid="1.2.3")
    now = dt.datetime.now(dt.UTC)
    analysis = Analysis.objects.create(
        organization=org,
        study=study,
        job=Job.objects.create(organization=org, kind="medical.analysis", domain="medical", status="succeeded"),
        model_version=version,
        suggested_label="nodule",
        probability=0.8,
        completed_at=now,
    )
    Report.objects.create(
        organization=org, study=study, analysis=analysis, status="signed", ai_decision="accepted", signed_at=now
    )
    return model


def test_model_list_and_detail_show_metrics_card_and_monitoring(client_for: Any, org: Any, chest: Any) -> None:
    client = client_for(org, "clinician")

    listing = client.get("/portal/medical/models/")
    assert listing.status_code == 200
    assert b"chest" in listing.content and b"nodule" in listing.content

    page = client.get("/portal/medical/models/chest/")
    assert page.status_code == 200, page.content[:500]
    html = page.content.decode()
    for testid in (
        "validation-metrics",
        "class-metrics",
        "confusion-matrix",
        "roc-chart",
        "calibration-chart",
        "training-chart",
        "monitoring",
        "shares-chart",
        "agreement-chart",
        "model-card",
        "split",
    ):
        assert f'data-testid="{testid}"' in html, testid
    assert "validation 40 patients (40 images) · 0 patients in both" in html
    assert "Synthetic images only." in html
    assert "<svg" in html
    # the version page by number answers the same version
    assert client.get("/portal/medical/models/chest/v1/").status_code == 200


def test_model_pages_are_the_organizations_and_the_clinicians(
    client_for: Any, org: Any, other_org: Any, chest: Any
) -> None:
    RegisteredModel.objects.create(organization=org, name="credit", kind="finance.credit_xgboost")
    clinician = client_for(org, "clinician")

    assert client_for(other_org, "clinician").get("/portal/medical/models/chest/").status_code == 404
    assert b"chest" not in client_for(other_org, "clinician").get("/portal/medical/models/").content
    assert clinician.get("/portal/medical/models/credit/").status_code == 404  # another domain's model
    assert clinician.get("/portal/medical/models/chest/v9/").status_code == 404
    assert client_for(org, "credit_analyst").get("/portal/medical/models/chest/").status_code in {302, 403}
