"""Process start hooks of the ML layer: serving processes load the production versions at once.

`ml.runtime.warm_up_production()` loads every organization's production versions into the
process's cache (unless `ML_WARM_UP=off`), so the first request is as fast as the rest. It runs
on a background thread: the process accepts requests and jobs at once, and a request for a
version still loading waits for that one load (the runtime never loads a version twice and
serves versions already loaded meanwhile).

- Celery: every worker pool process warms up when it starts (`worker_process_init`, connected
  here when the `ml` app loads, so any `celery -A core worker` does it).
- gunicorn: a configuration's `post_worker_init` calls `warm_up_in_background()`
  (`scripts/gunicorn_conf.py` does).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import worker_process_init

logger = logging.getLogger(__name__)

WARM_UP_THREAD_NAME = "ml-warm-up"


def warm_up_in_background() -> threading.Thread:
    """Start loading the production versions on a daemon thread; returns the (started) thread."""

    def warm_up() -> None:
        from django.db import connection

        from ml import runtime

        try:
            warmed = runtime.warm_up_production()
            if warmed:
                logger.info("Warmed %d production model version(s): %s", len(warmed), warmed)
        except Exception:  # a broken registry must not take the serving process down with it
            logger.exception("Warming the production model versions failed")
        finally:
            connection.close()  # this thread's own database connection

    thread = threading.Thread(target=warm_up, name=WARM_UP_THREAD_NAME, daemon=True)
    thread.start()
    return thread


@worker_process_init.connect
def _warm_up_worker_process(**_: Any) -> None:
    warm_up_in_background()
