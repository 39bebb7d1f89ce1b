"""Job functions of the traffic app (transport only: ids in, a service call out)."""

from __future__ import annotations

from typing import Any

from apps.traffic.choices import VIDEO_JOB_KIND
from apps.traffic.video_analysis import video_analysis_process
from core.jobs.choices import JobQueue
from core.jobs.runner import JobContext, job_function


@job_function(VIDEO_JOB_KIND, queue=JobQueue.INFERENCE)
def video_count(ctx: JobContext) -> dict[str, Any]:
    return video_analysis_process(video_id=int(ctx.params["video_id"]), report=ctx.report)
