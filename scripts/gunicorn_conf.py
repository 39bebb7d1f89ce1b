"""gunicorn settings of `make run`: `gunicorn -c python:scripts.gunicorn_conf core.wsgi:application`.

The bind address, workers and threads are given on the command line (`scripts/run_local.py`);
this module holds what every Tessera gunicorn should do: a readable access log on stdout, the
production models warmed in each worker as soon as it has loaded the application, and the
serving telemetry: each worker flushes its rollups in the background (and once more when it
exits), and with `PROMETHEUS_MULTIPROC_DIR` set (multiprocess mode, required with more than one
worker) a dead worker's live values are dropped from the shared folder (`child_exit`).
"""

from __future__ import annotations

import os
from typing import Any

from ml.signals import warm_up_in_background

# One line per request: client, request line, status, bytes, time in milliseconds.
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)sB %(M)sms'
errorlog = "-"
# Uploads (videos, dataset zips) and a cold model load can take longer than gunicorn's 30 s.
timeout = 120
graceful_timeout = 15

# prometheus_client reads the folder when first imported (in the workers); it must exist by then.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip():
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


def post_worker_init(worker: Any) -> None:
    """Warm the production versions in the background: the worker serves requests meanwhile."""
    from core.telemetry.rollups import start_flusher

    worker.ml_warm_up = warm_up_in_background()
    start_flusher(role="web")


def worker_exit(server: Any, worker: Any) -> None:
    """In the exiting worker: write the telemetry it still buffers."""
    from core.telemetry.rollups import stop_flusher

    stop_flusher()


def child_exit(server: Any, worker: Any) -> None:
    """In the master, after a worker died: multiprocess mode forgets its live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
