"""The retail training-data loader: an organization's events → the aggregated interaction table.

Registered for every retail kind (`ml.kinds.training_data_register`). Each (customer, item)
pair's confidence is the sum of its events' weights (a rating counts its value times the rating
weight) and its first event time is kept as whole epoch seconds. On PostgreSQL the database
weighs each event and packs the rows as fixed-width binary read straight into numpy, which sums
the pairs; elsewhere one grouped query does the sums and a raw cursor reads them in chunks. Either
way Python never holds one object per event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
from django.db import NotSupportedError, OperationalError, connection, connections, transaction
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

from apps.retail.bulk_sql import table_name
from apps.retail.choices import DEFAULT_CUSTOM_WEIGHT, VALUE_WEIGHTED_TYPES
from apps.retail.evaluation import InteractionTable
from apps.retail.ml import Interactions
from apps.retail.models import Customer, Event, Item
from apps.retail.selectors import event_weights_get, settings_get
from core.tenancy.models import Organization
from ml.kinds import TrainingRequest

CHUNK = 50_000
WATERMARK_LOCK_TIMEOUT = "30s"


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


_ROW_COLUMNS = (("customer_id", ">i8"), ("item_id", ">i8"), ("weight", ">f8"), ("first_seen", ">i8"))
_ROW = np.dtype([("customer", np.int64), ("item", np.int64), ("weight", np.float64), ("first_seen", np.int64)])


_PACKED_ROW = np.dtype([(name, kind) for name, kind in _ROW_COLUMNS])  # int8send/float8send: big-endian
_PACKED_GROUPS = 64  # result rows: each a 64th of the events, far under bytea's 1 GB for any shop


def _rows_postgres(queryset: QuerySet[Any, Any]) -> np.ndarray:
    """`_rows` on PostgreSQL: the database packs the rows as fixed-width binary, numpy reads them.

    Each event's four numbers are concatenated server-side in their binary send format
    (`int8send`, `float8send`) and aggregated into `_PACKED_GROUPS` bytea values, read straight
    into numpy: no Python object per event, and a few messages instead of one per row (a binary
    COPY sends a message per row: for MovieLens its loop cost twice this). A NULL would silently
    drop its row from `string_agg`, so each group's count is checked.
    """
    connection = connections[queryset.db]
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    names = [name for name, _ in _ROW_COLUMNS]
    packed = " || ".join(
        f"{'float8send' if name == 'weight' else 'int8send'}({name}::{'float8' if name == 'weight' else 'int8'})"
        for name in names
    )
    statement = (  # the ORM's own SQL inside, every value a parameter
        f"SELECT count(*), string_agg({packed}, ''::bytea) FROM ({sql}) AS pairs({', '.join(names)}) "  # noqa: S608
        f"GROUP BY mod(customer_id, {_PACKED_GROUPS})"
    )
    parts: list[np.ndarray] = []
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        for count, data in cursor.fetchall():
            part = np.frombuffer(bytes(data or b""), dtype=_PACKED_ROW)
            if len(part) != count:
                raise ValueError("Unexpected NULL in the interaction rows")
            parts.append(part)
    out = np.empty(sum(len(part) for part in parts), dtype=_ROW)
    at = 0
    for part in parts:
        for name, (column, _) in zip(("customer", "item", "weight", "first_seen"), _ROW_COLUMNS, strict=True):
            out[name][at : at + len(part)] = part[column]
        at += len(part)
    return out


def _pairs_summed(events: np.ndarray) -> np.ndarray:
    """Per-event rows → one row per (customer, item): the weights summed, the earliest first_seen.

    The grouping of the SQL path, in numpy: on PostgreSQL, hashing 100,000 pairs cost more than
    sending every event (0.2 s vs 0.05 s for MovieLens). The minimum of the truncated seconds is
    the truncated minimum (truncation never reorders).
    """
    if len(events) == 0:
        return np.empty(0, dtype=_ROW)
    events = events[np.lexsort((events["item"], events["customer"]))]
    starts = np.flatnonzero(
        np.concatenate(([True], (np.diff(events["customer"]) != 0) | (np.diff(events["item"]) != 0)))
    )
    pairs = np.empty(len(starts), dtype=_ROW)
    pairs["customer"] = events["customer"][starts]
    pairs["item"] = events["item"][starts]
    pairs["weight"] = np.add.reduceat(events["weight"], starts)
    pairs["first_seen"] = np.minimum.reduceat(events["first_seen"], starts)
    return pairs


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


def events_watermark(*, org: Organization) -> int | None:
    """The id up to which every event of `org` is committed, and above which every later one falls.

    On PostgreSQL ids are handed out in insert order but committed in any order: the highest id
    visible now may sit above an id whose batch is still being stored. A SHARE lock waits for
    the inserts in flight (and holds new ones back for that instant), so the highest id read
    under it is a clean cut: a version trained on the events up to it and serving's events after
    it (`customer_weights(after_event=)`) cover every event exactly once. None when the lock is
    not granted within `WATERMARK_LOCK_TIMEOUT` (serving then reads every customer's events).
    SQLite commits one writer at a time, so its highest id is such a cut already.
    """
    events = Event.objects.filter(organization=org)
    if connection.vendor != "postgresql":
        return events.aggregate(last=Max("id"))["last"] or 0
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{WATERMARK_LOCK_TIMEOUT}'")
            cursor.execute(f"LOCK TABLE {table_name(Event)} IN SHARE MODE")
            return events.aggregate(last=Max("id"))["last"] or 0
    except OperationalError:  # lock_timeout: a long import holds the table
        return None


def interactions_load(*, org: Organization, since: datetime | None = None) -> Interactions:
    """The organization's (customer, item) confidences since `since`, ready for `ModelKind.train`.

    Only the events up to `events_watermark`: `description["through_event"]` says where the
    version's stored rows end, for serving to read what came after.
    """
    weights = event_weights_get(org=org)
    revision = settings_get(org=org).history_revision
    through = events_watermark(org=org)
    events = Event.objects.filter(organization=org)
    if through is not None:
        events = events.filter(id__lte=through)
    if since is not None:
        events = events.filter(timestamp__gte=since)
    pairs = (
        events.order_by()
        .values("customer_id", "item_id")
        .annotate(weight=Sum(weight_expression(weights)), first_seen=EpochSeconds(Min("timestamp")))
        .values_list("customer_id", "item_id", "weight", "first_seen")
    )
    if connections[pairs.db].vendor == "postgresql":
        per_event = (
            events.order_by()
            .annotate(weight=weight_expression(weights), first_seen=EpochSeconds(F("timestamp")))
            .values_list("customer_id", "item_id", "weight", "first_seen")
        )
        rows = _pairs_summed(_rows_postgres(per_event))
    else:
        rows = _rows(pairs)
    positive = rows["weight"] > 0  # a pair whose events sum to nothing or less is no interaction
    dropped = int(len(rows) - np.count_nonzero(positive))
    rows = rows[positive]
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
            "through_event": through,
            "history_revision": revision,
            "pairs_not_positive": dropped,
        },
    )


def interactions_matrix(request: TrainingRequest) -> Interactions:
    """The loader every retail kind registers: `data = {"since": ISO 8601 or null}`."""
    since_text = request.data.get("since")
    since = parse_datetime(since_text) if since_text else None
    return interactions_load(org=request.organization, since=since)
