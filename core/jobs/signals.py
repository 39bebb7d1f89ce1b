"""When a worker starts, re-send jobs orphaned by a worker that died (e.g. SIGKILL, OOM)."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready

logger = logging.getLogger(__name__)


@worker_ready.connect
def requeue_orphans_on_start(**kwargs: Any) -> None:
    from core.jobs.runner import jobs_requeue_stale

    try:
        jobs_requeue_stale()
    except Exception:  # pragma: no cover - a worker must start even if the database is briefly away
        logger.exception("Could not re-send stale jobs at worker start.")
