"""`seed_demo` for finance: a synthetic dataset, a trained, promoted demo credit model, and a
scored batch of this month's (synthetic) applications, so decisions, reasons and drift have
something to show the moment `make run` is up."""

from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile

from apps.finance.batch_scoring import batch_create
from apps.finance.choices import DEFAULT_MODEL_NAME, ColumnRole
from apps.finance.models import CreditDataset, ScoringBatch
from apps.finance.monitoring import monitoring_snapshot_create
from apps.finance.services import dataset_create, dataset_schema_update, training_start
from core.jobs.runner import job_execute
from core.tenancy.actors import Actor
from core.tenancy.models import Organization
from ml.models import ModelAlias

DEMO_DATASET = "Demo credit applications (synthetic)"
DEMO_ROWS = 6_000
DEMO_BATCH = "Demo: this month's applications (synthetic)"
DEMO_BATCH_ROWS = 500


def finance_demo_seed(*, org: Organization, stdout: Any) -> None:
    """Idempotent: creates the dataset, the model and the scored batch only when they are missing."""
    actor = Actor.system(org)
    if ModelAlias.objects.filter(
        registered_model__organization=org, registered_model__name=DEFAULT_MODEL_NAME
    ).exists():
        stdout.write(f"  credit model {DEFAULT_MODEL_NAME!r} already in production")
    else:
        _demo_model_train(actor=actor, stdout=stdout)
    if not ScoringBatch.objects.filter(organization=org, name=DEMO_BATCH).exists():
        _demo_batch_score(actor=actor, stdout=stdout)


def _demo_model_train(*, actor: Actor, stdout: Any) -> None:
    from fixtures.finance_synthetic import FEATURE_DESCRIPTIONS, generate_credit_applications

    org = actor.organization
    dataset = CreditDataset.objects.filter(organization=org, name=DEMO_DATASET).first()
    if dataset is None:
        csv_bytes = generate_credit_applications(DEMO_ROWS, seed=7).to_csv(index=False).encode()
        upload = SimpleUploadedFile("demo_credit.csv", csv_bytes, content_type="text/csv")
        dataset = dataset_create(actor=actor, upload=upload, name=DEMO_DATASET, target="default")
        edits = [
            {"name": c["name"], "description": FEATURE_DESCRIPTIONS[c["name"]]}
            for c in dataset.schema
            if c["role"] == ColumnRole.FEATURE and c["name"] in FEATURE_DESCRIPTIONS
        ]
        dataset = dataset_schema_update(actor=actor, dataset=dataset, columns=edits)
    run = training_start(actor=actor, dataset=dataset, model_name=DEFAULT_MODEL_NAME, params={"n_estimators": 400})
    job_execute(job_id=run.job_id)  # inline, so the demo can score as soon as `make run` is up
    stdout.write(f"  trained credit model {DEFAULT_MODEL_NAME!r} on {dataset.rows} synthetic applications")


def _demo_batch_score(*, actor: Actor, stdout: Any) -> None:
    """Score a batch of new applicants (same population, other seed) and take a drift snapshot."""
    from fixtures.finance_synthetic import generate_credit_applications

    frame = generate_credit_applications(DEMO_BATCH_ROWS, seed=21, with_target=False)
    upload = SimpleUploadedFile("demo_applications.csv", frame.to_csv(index=False).encode(), content_type="text/csv")
    batch = batch_create(actor=actor, upload=upload, name=DEMO_BATCH)
    job_execute(job_id=batch.job_id)  # inline, like the training above
    batch.refresh_from_db()
    decisions = batch.summary.get("decisions", {})
    snapshot = monitoring_snapshot_create(actor=actor, name=DEFAULT_MODEL_NAME)
    summary = ", ".join(f"{n} {d}" for d, n in decisions.items())
    drift = f"score PSI {snapshot.score_psi} ({snapshot.band})"
    stdout.write(f"  scored {batch.rows} demo applications ({summary}); {drift}")
