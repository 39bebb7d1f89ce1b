"""Job functions of the finance app (transport only: ids in, a service call, the result out)."""

from __future__ import annotations

from typing import Any

from apps.finance import services
from apps.finance.choices import BATCH_JOB_KIND, MONITORING_JOB_KIND
from core.jobs.choices import JobQueue
from core.jobs.runner import JobContext, job_function


@job_function(BATCH_JOB_KIND, queue=JobQueue.INFERENCE)
def batch_score(ctx: JobContext) -> dict[str, Any]:
    return services.batch_execute(batch_id=int(ctx.params["batch_id"]), report=ctx.report)


@job_function(MONITORING_JOB_KIND, queue=JobQueue.DEFAULT)
def monitoring_snapshot(ctx: JobContext) -> dict[str, Any]:
    snapshot = services.monitoring_snapshot_create(
        actor=ctx.actor,
        name=str(ctx.params["model"]),
        window_days=int(ctx.params.get("window_days", 30)),
        job_id=ctx.job.pk,
    )
    return {"snapshot_id": snapshot.pk, "score_psi": snapshot.score_psi, "band": snapshot.band}
