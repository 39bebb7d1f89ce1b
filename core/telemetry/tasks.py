"""Periodic telemetry work of the workers: prune old rollups (Celery beat, `telemetry-prune`)."""

from __future__ import annotations

from celery import shared_task

from core.telemetry.rollups import telemetry_prune


@shared_task(name="core.telemetry.tasks.prune_telemetry")
def prune_telemetry() -> int:
    return telemetry_prune()
