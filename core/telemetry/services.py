"""Writes of the platform's telemetry: rollup rows (from the flusher) and process heartbeats."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from datetime import datetime

from django.utils import timezone

from core.telemetry.models import HttpRollup, JobRollup, ProcessHeartbeat
from core.telemetry.rollups import Key, MinuteAggregate, rollup_rows_merge, rollup_rows_prune


def http_rollups_write(items: Mapping[tuple[int, Key], MinuteAggregate]) -> None:
    rollup_rows_merge(HttpRollup, items, key_fields=("route", "method", "status"))


def http_rollups_prune(before: datetime) -> int:
    return rollup_rows_prune(HttpRollup, before)


def job_rollups_write(items: Mapping[tuple[int, Key], MinuteAggregate]) -> None:
    rollup_rows_merge(JobRollup, items, key_fields=("organization_id", "queue", "kind", "outcome"))


def job_rollups_prune(before: datetime) -> int:
    return rollup_rows_prune(JobRollup, before)


def process_heartbeat_record(*, role: str, started_at: datetime) -> None:
    """This process is alive now (one row per process, updated in place)."""
    ProcessHeartbeat.objects.update_or_create(
        host=socket.gethostname()[:255],
        pid=os.getpid(),
        started_at=started_at,
        defaults={"role": role, "seen_at": timezone.now()},
    )


def process_heartbeats_prune(*, before: datetime) -> int:
    return int(ProcessHeartbeat.objects.filter(seen_at__lt=before).delete()[0])
