"""The platform's Prometheus metrics and their exposition (`/metrics`).

Multiprocess mode: when `PROMETHEUS_MULTIPROC_DIR` is set (it must be, before the process
imports `prometheus_client`, for gunicorn with several workers and for Celery pool processes),
every process writes its values to memory-mapped files in that folder and `registry()` sums
the files of every process, dead ones included (counters keep their totals). The folder must
be emptied before the fleet of a host starts (`make run` does); gunicorn's `child_exit` calls
`process_dead` (scripts/gunicorn_conf.py), Celery pool processes do it on shutdown.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.registry import REGISTRY

from core.telemetry.rollups import LATENCY_BUCKETS_MS

LATENCY_BUCKETS_S: tuple[float, ...] = tuple(edge / 1000 for edge in LATENCY_BUCKETS_MS)
JOB_DURATION_BUCKETS_S: tuple[float, ...] = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 3 * 3600)

HTTP_REQUESTS = Counter(
    "tessera_http_requests",
    "HTTP requests by resolved route (URL pattern), method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "tessera_http_request_duration_seconds",
    "HTTP request latency (until the response is returned) by route and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS_S,
)
JOBS = Counter("tessera_jobs", "Job executions by queue, kind and outcome.", ["queue", "kind", "outcome"])
JOB_DURATION = Histogram(
    "tessera_job_duration_seconds",
    "Run time of job executions by queue, kind and outcome.",
    ["queue", "kind", "outcome"],
    buckets=JOB_DURATION_BUCKETS_S,
)


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()


def registry() -> CollectorRegistry:
    """What a scrape reports: every process's files in multiprocess mode, else this process."""
    folder = multiprocess_dir()
    if not folder:
        return REGISTRY
    collecting = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(collecting, path=folder)
    return collecting


def exposition() -> bytes:
    """The Prometheus text format of `registry()`."""
    return generate_latest(registry())


def process_dead(pid: int) -> None:
    """Forget a dead process's live gauges (multiprocess mode; counters keep their totals)."""
    if multiprocess_dir():
        prometheus_multiprocess.mark_process_dead(pid)
