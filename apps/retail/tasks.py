"""Job functions of the retail app (transport only: ids in, a service call, the result out)."""

from __future__ import annotations

from typing import Any

from apps.retail import ingest, services
from apps.retail.choices import IMPORT_EVENTS_JOB_KIND, IMPORT_ITEMS_JOB_KIND, PRECOMPUTE_JOB_KIND
from core.jobs.choices import JobQueue
from core.jobs.runner import JobContext, job_function


@job_function(IMPORT_EVENTS_JOB_KIND, queue=JobQueue.DEFAULT)
def events_import(ctx: JobContext) -> dict[str, Any]:
    return ingest.import_execute(import_id=int(ctx.params["import_id"]), actor=ctx.actor, report=ctx.report)


@job_function(IMPORT_ITEMS_JOB_KIND, queue=JobQueue.DEFAULT)
def items_import(ctx: JobContext) -> dict[str, Any]:
    return ingest.import_execute(import_id=int(ctx.params["import_id"]), actor=ctx.actor, report=ctx.report)


@job_function(PRECOMPUTE_JOB_KIND, queue=JobQueue.INFERENCE)
def precompute(ctx: JobContext) -> dict[str, Any]:
    return services.precompute_execute(
        export_id=int(ctx.params["export_id"]),
        actor=ctx.actor,
        alias=str(ctx.params.get("alias", "")),
        report=ctx.report,
    )
