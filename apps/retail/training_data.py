"""The retail training-data loader: an organization's events → the aggregated interaction table.

Registered for every retail kind (`ml.kinds.training_data_register`). The database does the
aggregation: one grouped query sums each (customer, item) pair's confidence with the
organization's event weights (a rating counts its value times the rating weight) and takes the
pair's first event time, so Python only ever sees one row per pair, read in chunks into numpy
arrays, never one object per event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
from django.db.models import Case, Count, F, FloatField, Max, Min, Sum, Value, When
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce
from django.utils.dateparse import parse_datetime

from apps.retail.choices import DEFAULT_CUSTOM_WEIGHT, VALUE_WEIGHTED_TYPES
from apps.retail.evaluation import InteractionTable
from apps.retail.ml import Interactions
from apps.retail.models import Customer, Event, Item
from apps.retail.selectors import event_weights_get
from core.tenancy.models import Organization
from ml.kinds import TrainingRequest

CHUNK = 50_000


def weight_expression(weights: Mapping[str, float]) -> Case:
    """SQL for one event's confidence: its type's weight (x value for value-weighted types)."""
    whens = []
    for event_type, weight in weights.items():
        then: Combinable = Value(float(weight))
        if event_type in VALUE_WEIGHTED_TYPES:
            then = Coalesce(F("value"), Value(1.0)) * Value(float(weight))
        whens.append(When(type=event_type, then=then))
    return Case(*whens, default=Value(DEFAULT_CUSTOM_WEIGHT), output_field=FloatField())


def _arrays(rows: Iterable[tuple[int, int, float, Any]]) -> tuple[np.ndarray, ...]:
    customers: list[np.ndarray] = []
    items: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    seen: list[np.ndarray] = []
    chunk: list[tuple[int, int, float, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            _flush(chunk, customers, items, weights, seen)
            chunk = []
    _flush(chunk, customers, items, weights, seen)
    if not customers:
        return (np.empty(0, np.int64),) * 2 + (np.empty(0, np.float32), np.empty(0, np.int64))
    return np.concatenate(customers), np.concatenate(items), np.concatenate(weights), np.concatenate(seen)


def _flush(chunk: list[tuple[int, int, float, Any]], *outs: list[np.ndarray]) -> None:
    if not chunk:
        return
    customers, items, weights, seen = outs
    customers.append(np.fromiter((row[0] for row in chunk), dtype=np.int64, count=len(chunk)))
    items.append(np.fromiter((row[1] for row in chunk), dtype=np.int64, count=len(chunk)))
    weights.append(np.fromiter((row[2] for row in chunk), dtype=np.float32, count=len(chunk)))
    seen.append(np.fromiter((_epoch(row[3]) for row in chunk), dtype=np.int64, count=len(chunk)))


def _epoch(moment: Any) -> int:
    if isinstance(moment, str):  # SQLite hands aggregated datetimes back as text
        moment = parse_datetime(moment)
    return int(moment.timestamp()) if isinstance(moment, datetime) else 0


def interactions_load(*, org: Organization, since: datetime | None = None) -> Interactions:
    """The organization's (customer, item) confidences since `since`, ready for `ModelKind.train`."""
    weights = event_weights_get(org=org)
    events = Event.objects.filter(organization=org)
    if since is not None:
        events = events.filter(timestamp__gte=since)
    pairs = (
        events.order_by()
        .values("customer_id", "item_id")
        .annotate(weight=Sum(weight_expression(weights)), first_seen=Min("timestamp"))
        .filter(weight__gt=0)
        .values_list("customer_id", "item_id", "weight", "first_seen")
    )
    customer_pk, item_pk, confidence, first_seen = _arrays(pairs.iterator(chunk_size=CHUNK))
    customer_keys, customer_rows = np.unique(customer_pk, return_inverse=True)
    item_keys, item_rows = np.unique(item_pk, return_inverse=True)
    customer_names = dict(Customer.objects.filter(organization=org).values_list("pk", "external_id"))
    item_names = dict(Item.objects.filter(organization=org).values_list("pk", "external_id"))
    summary = events.aggregate(events=Count("id"), last=Max("id"), latest=Max("timestamp"))
    fingerprint = hashlib.sha256(
        json.dumps([summary["events"], summary["last"], weights, since.isoformat() if since else ""]).encode()
    ).hexdigest()
    table = InteractionTable(
        customers=customer_rows.astype(np.int32),
        items=item_rows.astype(np.int32),
        weights=confidence,
        first_seen=first_seen,
        n_customers=len(customer_keys),
        n_items=len(item_keys),
    )
    latest = summary["latest"]
    return Interactions(
        table=table,
        customer_ids=[customer_names[int(pk)] for pk in customer_keys],
        item_ids=[item_names[int(pk)] for pk in item_keys],
        fingerprint=fingerprint,
        description={
            "events": summary["events"],
            "interactions": len(table),
            "since": since.isoformat() if since else None,
            "latest_event": latest.isoformat() if latest else None,
            "event_weights": weights,
        },
    )


def interactions_matrix(request: TrainingRequest) -> Interactions:
    """The loader every retail kind registers: `data = {"since": ISO 8601 or null}`."""
    since_text = request.data.get("since")
    since = parse_datetime(since_text) if since_text else None
    return interactions_load(org=request.organization, since=since)
