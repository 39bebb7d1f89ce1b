"""Rolled-up telemetry of the platform: HTTP requests and jobs per minute, process heartbeats.

`MinuteRollup` is the abstract per-minute bucket other apps reuse (`ml.PredictionRollup`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models
from django.utils import timezone

from core.telemetry.rollups import merged_buckets

if TYPE_CHECKING:
    from core.telemetry.rollups import MinuteAggregate


class MinuteRollup(models.Model):
    """One minute of one key: count, errors, items (inputs, rows), latency sum, max and buckets.

    `latency_buckets` counts events per `core.telemetry.rollups.LATENCY_BUCKETS_MS` bucket
    (plus one overflow bucket), which is what p50/p99 are read from.
    """

    minute = models.DateTimeField(db_index=True)
    count = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    items = models.PositiveBigIntegerField(default=0)
    latency_ms_sum = models.FloatField(default=0.0)
    latency_ms_max = models.FloatField(default=0.0)
    latency_buckets = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        ordering = ["minute"]

    def merge(self, aggregate: MinuteAggregate) -> None:
        """Add one process's aggregate of this minute to the row (not saved)."""
        self.count += aggregate.count
        self.errors += aggregate.errors
        self.items += aggregate.items
        self.latency_ms_sum += aggregate.latency_ms_sum
        self.latency_ms_max = max(self.latency_ms_max, aggregate.latency_ms_max)
        self.latency_buckets = merged_buckets(self.latency_buckets or [], aggregate.latency_buckets)


class HttpRollup(MinuteRollup):
    """HTTP requests of one minute per resolved route (the URL pattern, never the raw path), method and status."""

    route = models.CharField(max_length=300)
    method = models.CharField(max_length=10)
    status = models.PositiveSmallIntegerField()

    class Meta(MinuteRollup.Meta):
        constraints = [
            models.UniqueConstraint(fields=["minute", "route", "method", "status"], name="http_rollup_unique_minute")
        ]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.method} {self.route} {self.status}: {self.count}"


class JobRollup(MinuteRollup):
    """Jobs that ended in one minute per organization, queue, kind and outcome; latency is the run time."""

    organization = models.ForeignKey("core.Organization", on_delete=models.CASCADE, related_name="+")
    queue = models.CharField(max_length=32)
    kind = models.CharField(max_length=100)
    outcome = models.CharField(max_length=16)

    class Meta(MinuteRollup.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["minute", "organization", "queue", "kind", "outcome"], name="job_rollup_unique_minute"
            )
        ]
        indexes = [models.Index(fields=["organization", "minute"])]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.queue}/{self.kind} {self.outcome}: {self.count}"


class ProcessHeartbeat(models.Model):
    """A serving process (gunicorn worker, Celery pool process) alive at `seen_at`.

    Written by the process's telemetry flusher at every flush, so a process that stopped
    flushing (dead, hung) shows an old `seen_at`.
    """

    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    role = models.CharField(max_length=16)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["role", "host", "pid"]
        constraints = [
            models.UniqueConstraint(fields=["host", "pid", "started_at"], name="process_heartbeat_unique_process")
        ]

    def __str__(self) -> str:
        return f"{self.role} {self.host}:{self.pid}"
