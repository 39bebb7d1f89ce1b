"""gunicorn settings of `make run`: `gunicorn -c python:scripts.gunicorn_conf core.wsgi:application`.

The bind address, workers and threads are given on the command line (`scripts/run_local.py`);
this module holds what every Tessera gunicorn should do: a readable access log on stdout and
the production models warmed in each worker as soon as it has loaded the application.
"""

from __future__ import annotations

from typing import Any

from ml.signals import warm_up_in_background

# One line per request: client, request line, status, bytes, time in milliseconds.
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)sB %(M)sms'
errorlog = "-"
# Uploads (videos, dataset zips) and a cold model load can take longer than gunicorn's 30 s.
timeout = 120
graceful_timeout = 15


def post_worker_init(worker: Any) -> None:
    """Warm the production versions in the background: the worker serves requests meanwhile."""
    worker.ml_warm_up = warm_up_in_background()
