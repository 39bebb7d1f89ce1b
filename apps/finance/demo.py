"""`seed_demo` for finance: a synthetic dataset and a trained, promoted demo credit model."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile

from apps.finance.choices import DEFAULT_MODEL_NAME, ColumnRole
from apps.finance.models import CreditDataset
from apps.finance.services import dataset_create, dataset_schema_update, training_start
from core.jobs.runner import job_execute
from core.tenancy.actors import Actor
from core.tenancy.models import Organization
from ml.models import ModelAlias

DEMO_DATASET = "Demo credit applications (synthetic)"
DEMO_ROWS = 6_000


def finance_demo_seed(*, org: Organization, stdout: Any) -> None:
    """Idempotent: creates the dataset and the model only when they are missing."""
    from fixtures.finance_synthetic import FEATURE_DESCRIPTIONS, generate_credit_applications

    actor = Actor.system(org)
    if ModelAlias.objects.filter(
        registered_model__organization=org, registered_model__name=DEFAULT_MODEL_NAME
    ).exists():
        stdout.write(f"  credit model {DEFAULT_MODEL_NAME!r} already in production")  # type: ignore[attr-defined]
        return
    dataset = CreditDataset.objects.filter(organization=org, name=DEMO_DATASET).first()
    if dataset is None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "demo_credit.csv"
            generate_credit_applications(DEMO_ROWS, seed=7).to_csv(path, index=False)
            upload = SimpleUploadedFile("demo_credit.csv", path.read_bytes(), content_type="text/csv")
        dataset = dataset_create(actor=actor, upload=upload, name=DEMO_DATASET, target="default")
        edits = [
            {"name": c["name"], "description": FEATURE_DESCRIPTIONS[c["name"]]}
            for c in dataset.schema
            if c["role"] == ColumnRole.FEATURE and c["name"] in FEATURE_DESCRIPTIONS
        ]
        dataset = dataset_schema_update(actor=actor, dataset=dataset, columns=edits)
    run = training_start(actor=actor, dataset=dataset, model_name=DEFAULT_MODEL_NAME, params={"n_estimators": 400})
    job_execute(job_id=run.job_id)  # inline, so the demo can score as soon as `make run` is up
    stdout.write(f"  trained credit model {DEFAULT_MODEL_NAME!r} on {dataset.rows} synthetic applications")  # type: ignore[attr-defined]
