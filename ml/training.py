"""Training runs: a service that enqueues them and the `ml.train` job that executes them.

Domain apps call `training_run_create` with their kind and a JSON `data` reference (a dataset
id, a stored zip); the job turns that reference into materialised data with the loader the
domain registered for the kind (`ml.kinds.training_data_register`), in a private scratch folder
removed afterwards, loads the parent version for a warm start when the run has one, calls
`kind.train(data=..., params=..., report=..., parent=...)`, streams progress and live metrics
into the Job and the run, and registers the result as a new ModelVersion. A run re-executed
after a crash reuses the version it already created (versions are keyed by training run), so a
run yields at most one version.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.audit.services import audit_record
from core.jobs.choices import JobQueue
from core.jobs.runner import JobContext, job_domain_of, job_enqueue, job_function, job_params_set
from core.storage import scratch_directory
from core.tenancy.actors import Actor
from ml.kinds import TrainingRequest, get_kind, training_data_load
from ml.models import ModelVersion, TrainingRun
from ml.runtime import loaded_for_training
from ml.services import model_version_from_trained, registered_model_ensure

TRAIN_JOB_KIND = "ml.train"
MAX_LIVE_METRICS = 2000


@transaction.atomic
def training_run_create(
    *,
    actor: Actor,
    model_name: str,
    kind: str,
    data: dict[str, Any],
    params: dict[str, Any] | None = None,
    promote: bool = False,
    parent_version: ModelVersion | None = None,
) -> TrainingRun:
    """Register a training request and enqueue it on the `training` queue (on commit)."""
    registered_model = registered_model_ensure(actor=actor, name=model_name, kind=kind)
    # The job belongs to the trained kind's domain: its result and metrics describe that domain's data.
    job = job_enqueue(actor=actor, kind=TRAIN_JOB_KIND, domain=job_domain_of(kind))
    run = TrainingRun.objects.create(
        organization=actor.organization,
        registered_model=registered_model,
        job=job,
        kind=kind,
        data=data,
        params=params or {},
        promote=promote,
        parent_version=parent_version,
        created_by=actor.user,
    )
    job_params_set(job=job, params={"training_run_id": run.pk})
    audit_record(actor=actor, action="ml.training_run.create", obj=run, details={"model": model_name, "kind": kind})
    return run


@job_function(TRAIN_JOB_KIND, queue=JobQueue.TRAINING)
def train(ctx: JobContext) -> dict[str, Any]:
    run = TrainingRun.objects.select_related("registered_model", "organization").get(pk=ctx.params["training_run_id"])
    existing = ModelVersion.objects.filter(training_run=run).first()
    if existing is not None:  # this run already produced its version before a crash
        return {"model": run.registered_model.name, "version": existing.number, "metrics": existing.metrics}

    kind = get_kind(run.kind)

    def report(
        *, progress: float | None = None, message: str | None = None, metrics: Mapping[str, Any] | None = None
    ) -> None:
        ctx.report(progress=None if progress is None else 0.95 * progress, message=message)
        if metrics:
            entry = {"at": timezone.now().isoformat(), **metrics}
            run.live_metrics = [*run.live_metrics[-(MAX_LIVE_METRICS - 1) :], entry]
            TrainingRun.objects.filter(pk=run.pk).update(live_metrics=run.live_metrics)

    ctx.report(progress=0.0, message="Training started")
    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(scratch_directory(prefix=f"train-{run.pk}-"))
        data = training_data_load(
            run.kind, TrainingRequest(organization=run.organization, data=run.data, params=run.params, scratch=scratch)
        )
        parent = stack.enter_context(loaded_for_training(run.parent_version)) if run.parent_version else None
        trained = kind.train(data=data, params=run.params, report=report, parent=parent)
    ctx.report(progress=0.96, message="Saving the new version")
    version = model_version_from_trained(
        actor=ctx.actor,
        registered_model=run.registered_model,
        trained=trained,
        parent=run.parent_version,
        training_run=run,
        promote=run.promote,
        kind_name=run.kind,
    )
    return {"model": run.registered_model.name, "version": version.number, "metrics": version.metrics}
