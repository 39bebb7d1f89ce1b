"""Org-scoped reads of the retail app. Another organization's row is "not found", never forbidden.

Items and customers are looked up by the merchant's own id inside the caller's organization, so
another organization's id is simply unknown here.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import connection, connections
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from apps.retail.bulk_sql import binding_cursor, column_of, table_name
from apps.retail.choices import DEFAULT_EVENT_WEIGHTS, DEFAULT_FALLBACK_DAYS
from apps.retail.models import (
    Customer,
    Event,
    Item,
    Recommendation,
    RecommendationExport,
    RetailImport,
    RetailSettings,
    TrafficSplit,
)
from core.errors import NotFound
from core.tenancy.models import Organization

T = TypeVar("T")


def available_items(*, org: Organization, now: datetime | None = None) -> QuerySet[Item]:
    """Items that may be recommended: active and not past `available_until`."""
    moment = now or timezone.now()
    return Item.objects.filter(organization=org, active=True).filter(
        Q(available_until__isnull=True) | Q(available_until__gt=moment)
    )


def item_list(*, org: Organization, search: str = "", category: str = "", active: bool | None = None) -> QuerySet[Item]:
    items = Item.objects.filter(organization=org)
    if search:
        items = items.filter(Q(external_id__icontains=search) | Q(title__icontains=search))
    if category:
        items = items.filter(category_rows__name=category)
    if active is not None:
        items = items.filter(active=active)
    return items


def item_get(*, org: Organization, item_id: str) -> Item:
    try:
        return Item.objects.get(organization=org, external_id=item_id)
    except Item.DoesNotExist as exc:
        raise NotFound(f"Item {item_id!r} not found.") from exc


def customer_get(*, org: Organization, customer_id: str) -> Customer:
    try:
        return Customer.objects.get(organization=org, external_id=customer_id)
    except Customer.DoesNotExist as exc:
        raise NotFound(f"Customer {customer_id!r} not found.") from exc


def customer_list(*, org: Organization, search: str = "") -> QuerySet[Customer]:
    customers = Customer.objects.filter(organization=org).annotate(
        event_count=Count("events"), last_event=Max("events__timestamp")
    )
    if search:
        customers = customers.filter(external_id__icontains=search)
    return customers.order_by("-last_event", "external_id")


def event_list(
    *, org: Organization, customer: str = "", item: str = "", event_type: str = "", recomm_id: uuid.UUID | None = None
) -> QuerySet[Event]:
    events = Event.objects.filter(organization=org).select_related("customer", "item")
    if customer:
        events = events.filter(customer__external_id=customer)
    if item:
        events = events.filter(item__external_id=item)
    if event_type:
        events = events.filter(type=event_type)
    if recomm_id is not None:
        events = events.filter(recomm_id=recomm_id)
    return events


def settings_get(*, org: Organization) -> RetailSettings:
    """The organization's retail settings; an unsaved default when it never changed them."""
    found = RetailSettings.objects.filter(organization=org).first()
    return found if found is not None else RetailSettings(organization=org, fallback_days=DEFAULT_FALLBACK_DAYS)


def event_weights_get(*, org: Organization) -> dict[str, float]:
    """Confidence per event type: the defaults overlaid with the organization's own weights."""
    return {**DEFAULT_EVENT_WEIGHTS, **settings_get(org=org).event_weights}


@dataclass(frozen=True)
class ServingSettings:
    """What every recommendation answer reads besides the model: weights, fallback window, A/B splits."""

    event_weights: dict[str, float]
    fallback_days: int
    splits: dict[str, dict[str, int]]  # model name → {alias: percentage}
    history_revision: int = 0  # `RetailSettings.history_revision`


class _PerOrganization(Generic[T]):
    """A per-process cache of one value per organization, each kept for `ttl()` seconds (0: off)."""

    def __init__(self, ttl: Callable[[], float]) -> None:
        self._ttl = ttl
        self._values: dict[int, tuple[float, T]] = {}
        self._lock = threading.Lock()

    def get(self, org: Organization, compute: Callable[[], T]) -> T:
        ttl = self._ttl()
        with self._lock:
            cached = self._values.get(org.pk)
        if ttl > 0 and cached is not None and time.monotonic() - cached[0] < ttl:
            return cached[1]
        value = compute()
        if ttl > 0:
            with self._lock:
                self._values[org.pk] = (time.monotonic(), value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


# Like ml's "which version serves" (and for the same ML_SERVING_CACHE_SECONDS): two queries fewer
# per answer. A change made in this process applies at once (`serving_settings_clear` on commit);
# other processes follow within the TTL.
_serving_settings: _PerOrganization[ServingSettings] = _PerOrganization(
    lambda: float(getattr(settings, "ML_SERVING_CACHE_SECONDS", 0) or 0)
)


def serving_settings(*, org: Organization) -> ServingSettings:
    return _serving_settings.get(org, lambda: _serving_settings_read(org))


def _serving_settings_read(org: Organization) -> ServingSettings:
    stored = settings_get(org=org)
    return ServingSettings(
        event_weights={**DEFAULT_EVENT_WEIGHTS, **stored.event_weights},
        fallback_days=stored.fallback_days,
        history_revision=stored.history_revision,
        splits={
            name: dict(weights)
            for name, weights in TrafficSplit.objects.filter(organization=org).values_list("model_name", "weights")
            if weights
        },
    )


def serving_settings_clear() -> None:
    _serving_settings.clear()


def customer_weights(
    *, org: Organization, customer_ids: list[str], weights: dict[str, float], after_event: int = 0
) -> dict[str, dict[str, float]]:
    """Each customer's live confidence per item id (every event up to now, `weights` per type), in one query.

    With `after_event`, only the events stored after that event id (what came since a version's
    training snapshot, `IdMaps.history`); the sums may then be negative or zero, and are kept.

    The weighting is the training matrix's (`training_data.weight_expression`), applied here in
    Python: for one customer, compiling that SQL expression costs more (4 ms) than summing their
    events. The rows come through a plain cursor: for a batch of customers they are 100,000, where
    the ORM's per-row work would dominate.
    """
    from apps.retail.choices import DEFAULT_CUSTOM_WEIGHT, VALUE_WEIGHTED_TYPES

    out: dict[str, dict[str, float]] = {customer: {} for customer in customer_ids}
    for customer, item, event_type, value in _customer_events(org=org, customer_ids=customer_ids, after=after_event):
        weight = weights.get(event_type, DEFAULT_CUSTOM_WEIGHT)
        if event_type in VALUE_WEIGHTED_TYPES:
            weight *= 1.0 if value is None else value
        row = out[customer]
        row[item] = row.get(item, 0.0) + weight
    if after_event:
        return out
    return {customer: {item: w for item, w in row.items() if w > 0} for customer, row in out.items()}


def _customer_events(
    *, org: Organization, customer_ids: list[str], after: int = 0
) -> list[tuple[str, str, str, float | None]]:
    """(customer id, item id, type, value) of every event of `customer_ids`, from a plain cursor.

    By the customer's organization, not the event's: with both, PostgreSQL may AND the whole
    organization's index into every customer's lookup (29 ms instead of 4 ms for ten customers).
    On PostgreSQL the statement is written once per process (one array parameter for any number
    of customers): on the serving path the ORM's compiling cost as much as the query.
    """
    if connection.vendor == "postgresql":
        with binding_cursor() as cursor:
            cursor.execute(_customer_events_sql(), [org.pk, customer_ids, after])
            return cursor.fetchall()
    events = (
        Event.objects.filter(customer__organization=org, customer__external_id__in=customer_ids, pk__gt=after)
        .order_by()
        .values_list("customer__external_id", "item__external_id", "type", "value")
    )
    sql, params = events.query.sql_with_params()
    with connections[events.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@functools.cache
def _customer_events_sql() -> str:
    event, customer, item = table_name(Event), table_name(Customer), table_name(Item)
    pk, external_id, organization = column_of(Customer, "pk")[0], *column_of(Customer, "external_id")
    return (  # names from _meta, every value a bound parameter
        f"SELECT c.{external_id}, i.{column_of(Item, 'external_id')[0]}, e.{column_of(Event, 'type')[0]}, "  # noqa: S608
        f"e.{column_of(Event, 'value')[0]} FROM {event} e "
        f"JOIN {customer} c ON c.{pk} = e.{column_of(Event, 'customer')[0]} "
        f"JOIN {item} i ON i.{column_of(Item, 'pk')[0]} = e.{column_of(Event, 'item')[0]} "
        f"WHERE c.{column_of(Customer, 'organization')[0]} = %b AND c.{external_id} = ANY(%b::{organization}[]) "
        f"AND e.{column_of(Event, 'pk')[0]} > %b"
    )


def shown_titles(*, org: Organization, ids: list[str]) -> dict[str, str]:
    """{id: title} of those `ids` that may be shown now (active, not expired, still in the catalogue)."""
    if not ids:
        return {}
    if connection.vendor == "postgresql":
        with binding_cursor() as cursor:
            cursor.execute(_shown_sql(), [org.pk, timezone.now(), ids])
            return dict(cursor.fetchall())
    return dict(available_items(org=org).filter(external_id__in=ids).values_list("external_id", "title"))


@functools.cache
def _shown_sql() -> str:
    """`available_items(...).filter(external_id__in=...)` as one statement for any number of ids."""
    (external_id, kind), (title, _) = column_of(Item, "external_id"), column_of(Item, "title")
    until = column_of(Item, "available_until")[0]
    return (  # names from _meta, every value a bound parameter
        f"SELECT {external_id}, {title} FROM {table_name(Item)} "  # noqa: S608
        f"WHERE {column_of(Item, 'organization')[0]} = %b AND {column_of(Item, 'active')[0]} "
        f"AND ({until} IS NULL OR {until} > %b) AND {external_id} = ANY(%b::{kind}[])"
    )


def customer_history(*, org: Organization, customer_id: str, limit: int = 50) -> list[Event]:
    return list(event_list(org=org, customer=customer_id)[:limit])


# --- The fallback: popular in the last N days before the latest event, then latest ----------------

_popular: _PerOrganization[list[str]] = _PerOrganization(
    lambda: float(getattr(settings, "RETAIL_POPULAR_CACHE_SECONDS", 60))
)
POPULAR_DEPTH = 500


def popular_item_ids(*, org: Organization) -> list[str]:
    """Ids of the items most customers interacted with in the `fallback_days` before the latest event.

    Reused by this process for `RETAIL_POPULAR_CACHE_SECONDS`; the caller filters out what it
    may not show (inactive, seen, excluded), so a cached list never leaks a hidden item.
    """
    return _popular.get(org, lambda: _popular_read(org))


def _popular_read(org: Organization) -> list[str]:
    events = Event.objects.filter(organization=org)
    latest = events.aggregate(latest=Max("timestamp"))["latest"]
    if latest is None:
        return []
    days = settings_get(org=org).fallback_days
    return list(
        events.filter(timestamp__gte=latest - timedelta(days=days))
        .order_by()
        .values("item__external_id")
        .annotate(customers=Count("customer_id", distinct=True), events=Count("id"))
        .order_by("-customers", "-events", "item__external_id")
        .values_list("item__external_id", flat=True)[:POPULAR_DEPTH]
    )


def popular_cache_clear() -> None:
    _popular.clear()


def latest_items(*, org: Organization, limit: int) -> QuerySet[Item]:
    return available_items(org=org).order_by("-created_at", "-id")[:limit]


# --- A/B, imports, exports -------------------------------------------------------------------------


def traffic_split_get(*, org: Organization, model_name: str) -> dict[str, int]:
    split = TrafficSplit.objects.filter(organization=org, model_name=model_name).values_list("weights", flat=True)
    return dict(split.first() or {})


def recommendation_get(*, org: Organization, recomm_id: uuid.UUID) -> Recommendation:
    try:
        return Recommendation.objects.get(organization=org, recomm_id=recomm_id)
    except Recommendation.DoesNotExist as exc:
        raise NotFound("Recommendation not found.") from exc


def import_get(*, org: Organization, import_id: Any) -> RetailImport:
    try:
        return RetailImport.objects.select_related("job").get(organization=org, pk=int(import_id))
    except (RetailImport.DoesNotExist, TypeError, ValueError) as exc:
        raise NotFound("Import not found.") from exc


def import_list(*, org: Organization) -> QuerySet[RetailImport]:
    return RetailImport.objects.filter(organization=org).select_related("job")


def export_get(*, org: Organization, export_id: Any) -> RecommendationExport:
    try:
        return RecommendationExport.objects.select_related("job").get(organization=org, pk=int(export_id))
    except (RecommendationExport.DoesNotExist, TypeError, ValueError) as exc:
        raise NotFound("Export not found.") from exc


def export_list(*, org: Organization) -> QuerySet[RecommendationExport]:
    return RecommendationExport.objects.filter(organization=org).select_related("job")
