"""Recording HTTP requests and jobs: a Prometheus increment and a rollup-buffer update, no I/O.

`telemetry_disabled()` turns every recorder off (the benchmark compares with it); apps that
record their own telemetry (`ml.telemetry`) check `telemetry_enabled()` too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from core.telemetry import prometheus
from core.telemetry.rollups import RollupBuffer
from core.telemetry.services import http_rollups_prune, http_rollups_write, job_rollups_prune, job_rollups_write

http_buffer = RollupBuffer("http", write=http_rollups_write, prune=http_rollups_prune)
job_buffer = RollupBuffer("jobs", write=job_rollups_write, prune=job_rollups_prune)

_enabled = True


def telemetry_enabled() -> bool:
    return _enabled


@contextlib.contextmanager
def telemetry_disabled() -> Iterator[None]:
    """Record nothing inside the block (benchmarks: the same call with and without telemetry)."""
    global _enabled
    previous, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = previous


def http_request_record(*, route: str, method: str, status: int, seconds: float) -> None:
    if not _enabled:
        return
    prometheus.HTTP_REQUESTS.labels(route, method, str(status)).inc()
    prometheus.HTTP_DURATION.labels(route, method).observe(seconds)
    http_buffer.add((route, method, status), ms=seconds * 1000, failed=status >= 500)


def job_record(*, organization_id: int, queue: str, kind: str, outcome: str, seconds: float) -> None:
    """One execution of a job ended with `outcome` (succeeded, failed, cancelled, retry, dropped)."""
    if not _enabled:
        return
    prometheus.JOBS.labels(queue, kind, outcome).inc()
    prometheus.JOB_DURATION.labels(queue, kind, outcome).observe(seconds)
    job_buffer.add((organization_id, queue, kind, outcome), ms=seconds * 1000, failed=outcome == "failed")
