"""Job functions of the finance app (transport only: ids in, a service call, the result out)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.finance import batch_scoring, monitoring
from apps.finance.choices import BATCH_JOB_KIND, MODEL_KIND, MONITORING_JOB_KIND
from core.jobs.choices import JobQueue
from core.jobs.runner import JobContext, job_function
from core.tenancy.actors import Actor
from ml.choices import PRODUCTION_ALIAS
from ml.models import ModelAlias

MONITORING_SWEEP_TASK = "apps.finance.tasks.monitoring_sweep"


@job_function(BATCH_JOB_KIND, queue=JobQueue.INFERENCE)
def batch_score(ctx: JobContext) -> dict[str, Any]:
    return batch_scoring.batch_execute(batch_id=int(ctx.params["batch_id"]), report=ctx.report)


@job_function(MONITORING_JOB_KIND, queue=JobQueue.DEFAULT)
def monitoring_snapshot(ctx: JobContext) -> dict[str, Any]:
    snapshot = monitoring.monitoring_snapshot_create(
        actor=ctx.actor,
        name=str(ctx.params["model"]),
        window_days=int(ctx.params.get("window_days", 30)),
        job_id=ctx.job.pk,
    )
    return {"snapshot_id": snapshot.pk, "score_psi": snapshot.score_psi, "band": snapshot.band}


@shared_task(name=MONITORING_SWEEP_TASK)
def monitoring_sweep() -> list[int]:
    """Scheduled by Celery beat (daily): one monitoring job per production credit model."""
    aliases = ModelAlias.objects.filter(name=PRODUCTION_ALIAS, registered_model__kind=MODEL_KIND).select_related(
        "registered_model__organization"
    )
    return [
        monitoring.monitoring_enqueue(
            actor=Actor.system(alias.registered_model.organization), name=alias.registered_model.name
        ).pk
        for alias in aliases
    ]
