"""The retail training-data loader: an organization's events → the aggregated interaction table.

Registered for every retail kind (`ml.kinds.training_data_register`). The database does the
aggregation: one grouped query sums each (customer, item) pair's confidence with the
organization's event weights (a rating counts its value times the rating weight) and takes the
pair's first event time as whole epoch seconds, so Python only ever sees one row of plain numbers
per pair, read with a raw cursor in chunks into numpy arrays, never one object per event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
from django.db import NotSupportedError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    F,
    FloatField,
    Func,
    Max,
    Min,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce
from django.db.models.sql.compiler import SQLCompiler
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


class EpochSeconds(Func):
    """A datetime expression as whole seconds since the epoch (truncated), computed by the database.

    So the aggregated rows come back as plain integers: no per-row datetime parsing or conversion.
    """

    arity = 1
    output_field = BigIntegerField()

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> tuple[str, Any]:
        raise NotSupportedError(f"EpochSeconds is not implemented for {connection.vendor}")

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, Any]:
        template = "TRUNC(EXTRACT(EPOCH FROM %(expressions)s))::bigint"
        return super().as_sql(compiler, connection, template=template, **extra_context)

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, Any]:
        # Django stores 'YYYY-MM-DD HH:MM:SS[.ffffff]' (UTC): cut the fraction off first, since
        # strftime rounds to the millisecond (…:06.9999 would count as :07). '%%%%s' is '%%s' in
        # the SQL, which the backend turns into strftime's '%s' (not a parameter).
        template = "CAST(strftime('%%%%s', SUBSTR(%(expressions)s, 1, 19)) AS INTEGER)"
        return super().as_sql(compiler, connection, template=template, **extra_context)


_ROW = np.dtype([("customer", np.int64), ("item", np.int64), ("weight", np.float64), ("first_seen", np.int64)])


def _rows(queryset: QuerySet[Any, Any]) -> np.ndarray:
    """`queryset`'s (customer, item, weight, first_seen) rows as one structured array.

    Read with a raw DB-API cursor, `CHUNK` rows at a time (a server-side cursor on PostgreSQL
    unless the settings disable them), so no ORM converter runs per row and the whole result set
    is never held as Python objects.
    """
    connection = connections[queryset.db]
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    server_side = connection.features.can_use_chunked_reads and not connection.settings_dict.get(
        "DISABLE_SERVER_SIDE_CURSORS"
    )
    chunks: list[np.ndarray] = []
    with connection.chunked_cursor() if server_side else connection.cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(CHUNK):
            chunks.append(np.fromiter(rows, dtype=_ROW, count=len(rows)))
    return np.concatenate(chunks) if chunks else np.empty(0, dtype=_ROW)


def interactions_load(*, org: Organization, since: datetime | None = None) -> Interactions:
    """The organization's (customer, item) confidences since `since`, ready for `ModelKind.train`."""
    weights = event_weights_get(org=org)
    events = Event.objects.filter(organization=org)
    if since is not None:
        events = events.filter(timestamp__gte=since)
    pairs = (
        events.order_by()
        .values("customer_id", "item_id")
        .annotate(weight=Sum(weight_expression(weights)), first_seen=EpochSeconds(Min("timestamp")))
        .filter(weight__gt=0)
        .values_list("customer_id", "item_id", "weight", "first_seen")
    )
    rows = _rows(pairs)
    customer_keys, customer_rows = np.unique(rows["customer"], return_inverse=True)
    item_keys, item_rows = np.unique(rows["item"], return_inverse=True)
    customer_names = dict(Customer.objects.filter(organization=org).values_list("pk", "external_id"))
    item_names = dict(Item.objects.filter(organization=org).values_list("pk", "external_id"))
    summary = events.aggregate(events=Count("id"), last=Max("id"), latest=Max("timestamp"))
    fingerprint = hashlib.sha256(
        json.dumps([summary["events"], summary["last"], weights, since.isoformat() if since else ""]).encode()
    ).hexdigest()
    table = InteractionTable(
        customers=customer_rows.astype(np.int32),
        items=item_rows.astype(np.int32),
        weights=rows["weight"].astype(np.float32),
        first_seen=rows["first_seen"].copy(),
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
