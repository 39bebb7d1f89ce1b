"""Job functions of the medical app (transport only: ids in, a service call, the result out)."""

from __future__ import annotations

from typing import Any

from apps.medical import exports
from core.jobs.choices import JobQueue
from core.jobs.runner import JobContext, job_function


@job_function(exports.EXPORT_JOB_KIND, queue=JobQueue.DEFAULT)
def deid_export(ctx: JobContext) -> dict[str, Any]:
    return exports.export_execute(export_id=int(ctx.params["export_id"]), report=ctx.report)
