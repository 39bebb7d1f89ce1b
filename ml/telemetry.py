"""Serving telemetry of `ml.runtime`: every predict/explain/stream call, per organization, model,
version, alias and device.

Per call (`record_call`, from `ml.runtime`): one Prometheus counter increment (plus errors), two
histogram observations (latency, batch size), and a dict update of this process's rollup buffer,
flushed to `PredictionRollup` in the background (`core.telemetry.rollups`). No I/O per call: the
labels of a version (organization slug, model name, number) are looked up once per process.

Alias. The runtime is handed a version, not how it was chosen. The registry's serving selector
(`ml.selectors.serving_version_get`) notes which alias it resolved for which version in a
context variable (`alias_note`); the runtime reads it when the same version is then called in
the same context (request thread, job). A version asked for by number, or obtained any other
way, is recorded with alias "" (pinned). A note is kept until the next resolution in that
context, so a job that resolves once and predicts in chunks attributes every chunk, and is
forgotten when the next request or Celery task starts in the thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

from celery.signals import task_prerun
from django.core.signals import request_started
from django.db import DatabaseError
from django.dispatch import receiver
from prometheus_client import Counter, Histogram

from core.telemetry.prometheus import LATENCY_BUCKETS_S
from core.telemetry.recording import telemetry_enabled
from core.telemetry.rollups import Key, MinuteAggregate, RollupBuffer, rollup_rows_merge, rollup_rows_prune

if TYPE_CHECKING:
    from ml.models import ModelVersion

logger = logging.getLogger(__name__)

PINNED = ""  # the alias label of a version requested by number
_LABELS = ["organization", "model", "version", "alias", "method", "device"]
BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536)

PREDICTIONS = Counter("tessera_ml_predictions", "Calls through ml.runtime (predict, explain, stream).", _LABELS)
PREDICTION_ERRORS = Counter("tessera_ml_prediction_errors", "ml.runtime calls that raised.", _LABELS)
PREDICTION_DURATION = Histogram(
    "tessera_ml_prediction_duration_seconds", "Latency of ml.runtime calls.", _LABELS, buckets=LATENCY_BUCKETS_S
)
PREDICTION_BATCH = Histogram(
    "tessera_ml_prediction_batch_size", "Inputs per ml.runtime call.", _LABELS, buckets=BATCH_BUCKETS
)

# version id → the alias it was last resolved through in this context (a request, a task)
_alias_notes: ContextVar[dict[int, str] | None] = ContextVar("ml_served_aliases", default=None)
MAX_NOTES = 64


def alias_note(version_id: int, alias: str, *, organization_id: int | None = None, slug: str = "") -> None:
    """`version_id` is served through `alias` in this context (`PINNED` when asked by number).

    The selector passes the organization it resolved for, so the organization label is known
    without a query.
    """
    notes = _alias_notes.get()
    if notes is None or len(notes) >= MAX_NOTES:
        notes = {}
        _alias_notes.set(notes)
    notes[version_id] = alias
    if organization_id is not None and slug and _slugs.get(organization_id) != slug:
        _slugs[organization_id] = slug


@receiver(request_started)
@task_prerun.connect
def _forget_alias_note(**_: Any) -> None:
    """A request or task starts afresh: a thread's note from its previous request never carries over."""
    _alias_notes.set(None)


def alias_of(version_id: int) -> str:
    notes = _alias_notes.get()
    return notes.get(version_id, PINNED) if notes is not None else PINNED


def _prediction_rollups_write(items: Mapping[tuple[int, Key], MinuteAggregate]) -> None:
    from ml.models import PredictionRollup

    rollup_rows_merge(
        PredictionRollup,
        items,
        key_fields=("organization_id", "registered_model_id", "version_id", "alias", "device"),
    )


def _prediction_rollups_prune(before: datetime) -> int:
    from ml.models import PredictionRollup

    return rollup_rows_prune(PredictionRollup, before)


prediction_buffer = RollupBuffer("predictions", write=_prediction_rollups_write, prune=_prediction_rollups_prune)


class _VersionLabels:
    """(organization id, model id, organization slug, model name, number) per version id, per process."""

    def __init__(self) -> None:
        self._items: dict[int, tuple[int, int, str, str, str]] = {}
        self._lock = threading.Lock()

    def get(self, version: ModelVersion) -> tuple[int, int, str, str, str]:
        labels = self._items.get(version.pk)
        if labels is None:
            model = version.registered_model  # select_related by the serving selectors
            slug = _organization_slug(model.organization_id)
            labels = (model.organization_id, model.pk, slug, model.name, str(version.number))
            if not slug.startswith("org-"):  # a failed lookup is retried on the next call
                with self._lock:
                    self._items[version.pk] = labels
        return labels

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_slugs: dict[int, str] = {}


def _organization_slug(organization_id: int) -> str:
    """The organization's slug: noted by the serving selector, else looked up once per process."""
    slug = _slugs.get(organization_id)
    if slug is None:
        from core.tenancy.models import Organization

        try:
            slug = str(Organization.objects.filter(pk=organization_id).values_list("slug", flat=True).first() or "")
        except DatabaseError:  # never fail a prediction for a label; try again next call
            logger.warning("Organization %s: slug lookup for telemetry failed", organization_id, exc_info=True)
            return f"org-{organization_id}"
        _slugs[organization_id] = slug
    return slug


version_labels = _VersionLabels()
_children: dict[tuple[str, ...], tuple[Any, Any, Any, Any]] = {}


def record_call(version: ModelVersion, *, method: str, inputs: int, ms: float, failed: bool, device: str) -> None:
    """Count one runtime call of `version` (Prometheus and the per-minute rollup)."""
    if not telemetry_enabled():
        return
    try:
        _record(version, method=method, inputs=inputs, ms=ms, failed=failed, device=device)
    except Exception:  # telemetry never breaks serving
        logger.exception("Recording telemetry of version %s failed", version.pk)


def _record(version: ModelVersion, *, method: str, inputs: int, ms: float, failed: bool, device: str) -> None:
    organization_id, model_id, slug, model_name, number = version_labels.get(version)
    alias = alias_of(version.pk)
    labels = (slug, model_name, number, alias, method, device)
    children = _children.get(labels)
    if children is None:  # `labels()` validates and locks on every call: resolve a series once
        children = _children[labels] = (
            PREDICTIONS.labels(*labels),
            PREDICTION_ERRORS.labels(*labels),
            PREDICTION_DURATION.labels(*labels),
            PREDICTION_BATCH.labels(*labels),
        )
    calls, errors, duration, batch = children
    calls.inc()
    if failed:
        errors.inc()
    duration.observe(ms / 1000)
    batch.observe(inputs)
    prediction_buffer.add((organization_id, model_id, version.pk, alias, device), ms=ms, failed=failed, items=inputs)


def labels_clear() -> None:
    """Forget the per-process labels (tests: primary keys are reused across test databases)."""
    version_labels.clear()
    _slugs.clear()
