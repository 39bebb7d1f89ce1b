"""Warming the production model versions when a serving process starts.

`ml.runtime.warm_up_production()` loads every organization's production versions into this
process's cache (unless `ML_WARM_UP=off`), so the first request is as fast as the rest. It is
called from a background thread: the process accepts requests at once, and a request for a
version that is still loading waits for that one load (the runtime never loads a version twice
and serves versions already loaded meanwhile).

Hooked into the gunicorn workers by `scripts/gunicorn_conf.py` (`post_worker_init`) and into the
Celery pool processes by `scripts/celery_worker.py` (`worker_process_init`).
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("tessera.serving")

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
