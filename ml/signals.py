"""Process start hooks of the ML layer: serving processes load the production versions at once.

A Celery worker process warms up when it starts (`worker_process_init`), in a background thread
so it takes jobs immediately; a job for a version still loading waits for that one load (see
`ml.runtime`). Web processes warm up from the gunicorn configuration (`post_worker_init`).
`ML_WARM_UP=off` turns both off.
"""

from __future__ import annotations

import threading
from typing import Any

from celery.signals import worker_process_init


def warm_up_in_background() -> threading.Thread:
    """Start loading the production versions in a daemon thread; returns the thread."""
    from ml.runtime import warm_up_production

    thread = threading.Thread(target=warm_up_production, name="ml-warm-up", daemon=True)
    thread.start()
    return thread


@worker_process_init.connect
def _warm_up_worker_process(**_: Any) -> None:
    warm_up_in_background()
