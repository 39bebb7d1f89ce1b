"""When a worker starts, re-send jobs orphaned by a worker that died (e.g. SIGKILL, OOM).

Two sweeps run per worker start:

- at once, for jobs whose heartbeat is already stale;
- once more after `JOB_STALE_SECONDS + JOB_HEARTBEAT_SECONDS`, as a delayed `requeue_stale_jobs`
  task. A worker restarted faster than the stale window (the common case after a crash) finds
  its dead predecessor's job still looking alive: the first sweep skips it and a redelivered
  message is dropped by the claim, so without the second sweep the job would stay `running`
  until the periodic reaper (beat) runs, and forever where no beat runs.

Both sweeps only publish; the atomic claim in `core.jobs.runner.job_claim` drops every delivery
that is not needed, so a job still finishes exactly once.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready

logger = logging.getLogger(__name__)


@worker_ready.connect
def requeue_orphans_on_start(**kwargs: Any) -> None:
    from django.conf import settings

    from core.jobs.runner import jobs_requeue_stale
    from core.jobs.tasks import requeue_stale_jobs

    try:
        jobs_requeue_stale()
        requeue_stale_jobs.apply_async(
            countdown=settings.JOB_STALE_SECONDS + settings.JOB_HEARTBEAT_SECONDS, queue="default"
        )
    except Exception:  # pragma: no cover - a worker must start even if the database is briefly away
        logger.exception("Could not re-send stale jobs at worker start.")
