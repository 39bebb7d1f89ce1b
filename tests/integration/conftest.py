"""Helpers of the integration suite: enqueue a job for the real worker, wait for conditions.

Every module here sets `pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]`:
the marker selects the suite (`make test` runs it with `-m integration` against PostgreSQL and
Redis, see tests/realservices.py), and transactional tests commit their rows so the worker
process sees them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from tests.realservices import RealWorker

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
    worker: RealWorker | None = None,
) -> T:
    """Call `probe` until it returns something truthy (returned); fail after `timeout` seconds.

    The failure message ends with the tail of `worker`'s log, read at the moment of failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = f"\n--- worker log (tail) ---\n{worker.logs()[-8000:]}" if worker else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
        time.sleep(interval)


@pytest.fixture
def enqueue_job(org: Any) -> Callable[..., Any]:
    """`enqueue_job(kind, **params)` → the Job, created and published after a committed transaction."""
    from django.db import transaction

    from core.jobs.runner import job_enqueue
    from core.tenancy.actors import Actor

    def enqueue(kind: str = "core.countdown", **params: Any) -> Any:
        with transaction.atomic():
            job = job_enqueue(actor=Actor.system(org), kind=kind, params=params)
        return job  # published by on_commit when the block above committed

    return enqueue


def job_row(job_id: int) -> Any:
    from core.jobs.models import Job

    return Job.objects.get(pk=job_id)


def audit_actions(job_id: int) -> list[str]:
    from core.audit.models import AuditEvent

    return list(
        AuditEvent.objects.filter(object_type="core.job", object_id=str(job_id))
        .order_by("id")
        .values_list("action", flat=True)
    )
