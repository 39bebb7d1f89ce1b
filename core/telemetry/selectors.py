"""Reads of the platform's telemetry for the operations page; job rows are always org-scoped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from core.jobs.choices import JobStatus
from core.jobs.models import Job
from core.telemetry.models import JobRollup, ProcessHeartbeat
from core.telemetry.rollups import latency_quantile_ms, merged_buckets
from core.tenancy.models import Organization


def job_queue_depths(*, org: Organization) -> dict[str, dict[str, int]]:
    """Per queue, the organization's jobs waiting (`queued`) and running now (from the jobs table)."""
    depths: dict[str, dict[str, int]] = {}
    rows = (
        Job.objects.filter(organization=org, status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
        .order_by()
        .values("queue", "status")
        .annotate(n=Count("id"))
    )
    for row in rows:
        depths.setdefault(row["queue"], {"queued": 0, "running": 0})[row["status"]] = row["n"]
    return depths


@dataclass(frozen=True)
class JobDurations:
    """Executions of one queue/kind that ended in the window, with their run-time quantiles."""

    queue: str
    kind: str
    outcomes: dict[str, int]
    p50_s: float | None
    p99_s: float | None

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())


def job_durations(*, org: Organization, since: datetime) -> list[JobDurations]:
    """The organization's job executions since `since` per queue and kind (from the rollups)."""
    grouped: dict[tuple[str, str], list[JobRollup]] = {}
    for row in JobRollup.objects.filter(organization=org, minute__gte=since):
        grouped.setdefault((row.queue, row.kind), []).append(row)
    summaries = []
    for (queue, kind), rows in sorted(grouped.items()):
        outcomes: dict[str, int] = {}
        for row in rows:
            outcomes[row.outcome] = outcomes.get(row.outcome, 0) + row.count
        buckets = merged_buckets(*(row.latency_buckets for row in rows))
        maximum = max(row.latency_ms_max for row in rows)
        p50, p99 = (latency_quantile_ms(buckets, q, maximum=maximum) for q in (0.5, 0.99))
        summaries.append(
            JobDurations(
                queue=queue,
                kind=kind,
                outcomes=outcomes,
                p50_s=None if p50 is None else p50 / 1000,
                p99_s=None if p99 is None else p99 / 1000,
            )
        )
    return summaries


@dataclass(frozen=True)
class Heartbeat:
    """A serving process and how long ago it last reported."""

    role: str
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime
    age_s: float
    alive: bool


def process_heartbeats(*, now: datetime | None = None) -> list[Heartbeat]:
    """The platform's web and worker processes seen in the last day (they serve every organization;
    no organization's data is in them). Alive: reported within three flush intervals."""
    now = now or timezone.now()
    window = max(float(settings.TELEMETRY_FLUSH_SECONDS), 1.0) * 3
    rows = ProcessHeartbeat.objects.filter(seen_at__gte=now - timedelta(days=1)).order_by("role", "-seen_at")
    return [
        Heartbeat(
            role=row.role,
            host=row.host,
            pid=row.pid,
            started_at=row.started_at,
            seen_at=row.seen_at,
            age_s=(now - row.seen_at).total_seconds(),
            alive=(now - row.seen_at).total_seconds() <= window,
        )
        for row in rows[:50]
    ]


def running_jobs(*, org: Organization) -> list[Job]:
    """The organization's running jobs with their last heartbeat (stale ones are taken over)."""
    return list(Job.objects.filter(organization=org, status=JobStatus.RUNNING).order_by("heartbeat_at")[:50])
