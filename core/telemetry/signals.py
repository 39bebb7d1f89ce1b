"""Process hooks: Celery pool processes flush telemetry in the background and on shutdown.

gunicorn does the same from `scripts/gunicorn_conf.py` (post_worker_init, worker_exit, child_exit).
"""

from __future__ import annotations

import os
from typing import Any

from celery.signals import worker_process_init, worker_process_shutdown
from django.core.checks import CheckMessage, Error, register

from core.telemetry import recording, tasks  # noqa: F401  (the buffers exist in every process; the prune task)
from core.telemetry.prometheus import process_dead
from core.telemetry.rollups import start_flusher, stop_flusher


@worker_process_init.connect
def _start_worker_flusher(**_: Any) -> None:
    start_flusher(role="worker")


@worker_process_shutdown.connect
def _flush_worker(**_: Any) -> None:
    stop_flusher()
    process_dead(os.getpid())


@register()
def check_metrics_networks(**_: Any) -> list[CheckMessage]:
    """A malformed METRICS_ALLOWED_NETWORKS stops the process at start, not at the first scrape."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from core.telemetry.access import parse_networks

    try:
        parse_networks(tuple(settings.METRICS_ALLOWED_NETWORKS))
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="core.telemetry.E001")]
    return []
