"""The Celery app of `make run`'s worker: `celery -A scripts.celery_worker worker …`.

Core's app (`core.celery.app`) plus one hook: each pool process warms the production model
versions when it starts (`worker_process_init`), so the first inference job does not pay for
the load. The hook lives here, not in `core/` (the platform knows no models).
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init

from core.celery import app
from scripts.serving import warm_up_in_background

__all__ = ["app"]


@worker_process_init.connect
def warm_up_models(**kwargs: Any) -> None:
    """Start loading the production versions in this pool process, in the background."""
    warm_up_in_background()
