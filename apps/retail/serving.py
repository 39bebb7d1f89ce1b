"""Serving recommendations: for a customer, similar items, batches, with filters, fallback and attribution.

Every answer goes through `ml.runtime` (the version stays loaded per process) and is logged as a
`Recommendation` whose `recomm_id` the shop sends back with the events it leads to; that is how
clicks and purchases are attributed to the version and alias that produced them.

Which version answers: `model` (default: the organization's `recommendations`, else its retail
model whose alias moved last) at `alias`; without an alias, the model's traffic split picks one
per customer (sticky: a hash of organization, model and customer), else `production`.

What is never shown: items that are inactive, past `available_until` or deleted; the customer's
own items unless `include_seen`; the `exclude` list; outside `category` when given. The model is
asked for a few more items than needed and the candidates are checked against the catalogue in
one query (asking again for more in the rare case too many were hidden). When the model has too
few (a cold customer, a small catalogue, an item nobody interacted with), the fallback fills the
rest: the items most customers touched in the `fallback_days` before the latest event
(`source: "popular"`), then the newest items (`source: "latest"`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.db import connection, transaction

from apps.retail import selectors
from apps.retail.bulk_sql import binding_cursor, column_of, table_name
from apps.retail.choices import DEFAULT_MODEL_NAME, DOMAIN, RecommendationKind, Source
from apps.retail.ml import ExplainRequest, IdMaps, Recommended, RecommendRequest, SimilarRequest
from apps.retail.models import Item, ItemCategory, Recommendation
from apps.retail.selectors import ServingSettings
from core.errors import NotFound, ValidationFailed
from core.tenancy.actors import Actor
from core.tenancy.models import Organization
from ml import runtime
from ml.choices import PRODUCTION_ALIAS
from ml.models import ModelVersion
from ml.selectors import serving_version_get

OVERFETCH = 10  # extra candidates asked of the model, so a few hidden items cost no second call
MAX_ROUNDS = 3
VERBS = {"purchase": "bought", "cart": "added to your cart", "rating": "rated", "click": "looked at", "view": "viewed"}
NOT_NEEDED = ("params", "metrics", "model_card", "input_schema", "manifest")


@dataclass(slots=True)
class ShownItem:
    id: str
    title: str
    score: float | None
    source: str
    reason: str | None = None
    because: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Answer:
    recomm_id: uuid.UUID
    version: ModelVersion | None
    alias: str
    items: list[ShownItem]


@dataclass(frozen=True)
class Filters:
    n: int = 10
    offset: int = 0
    category: str = ""
    exclude: tuple[str, ...] = ()
    include_seen: bool = False

    @property
    def wanted(self) -> int:
        return self.offset + self.n


# --- Which version ---------------------------------------------------------------------------------


def sticky_bucket(*, org: Organization, model_name: str, customer: str) -> int:
    """0-99, the same for a customer and model every time (the A/B split's assignment)."""
    digest = hashlib.sha256(f"{org.pk}:{model_name}:{customer}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def alias_for(*, org: Organization, served: ServingSettings, model_name: str, customer: str) -> str:
    """The alias serving `customer`: the model's traffic split when it has one, else production."""
    split = served.splits.get(model_name)
    if not split:
        return PRODUCTION_ALIAS
    bucket, total = sticky_bucket(org=org, model_name=model_name, customer=customer), 0
    for alias, share in sorted(split.items()):
        total += int(share)
        if bucket < total:
            return alias
    return PRODUCTION_ALIAS


def version_for(
    *, org: Organization, served: ServingSettings, model: str, alias: str, customer: str = ""
) -> tuple[ModelVersion | None, str]:
    """(version, alias) that answers; (None, alias) when the organization has no retail model at all.

    A named model, or a named alias, that does not exist is a 404: the caller asked for it.
    """
    chosen = alias or alias_for(org=org, served=served, model_name=model or DEFAULT_MODEL_NAME, customer=customer)
    return _version_at(org=org, model=model, alias=chosen, asked=bool(model or alias))


def _version_at(*, org: Organization, model: str, alias: str, asked: bool) -> tuple[ModelVersion | None, str]:
    try:
        version = serving_version_get(
            org=org, name=model or None, alias=alias, domain=DOMAIN, default_name=DEFAULT_MODEL_NAME, defer=NOT_NEEDED
        )
    except NotFound as exc:
        if asked or exc.code != "no_model":
            raise
        return None, alias
    return version, alias


# --- The catalogue side ------------------------------------------------------------------------------


def _shown(org: Organization, ids: Iterable[str]) -> dict[str, str]:
    """{id: title} of those `ids` that may be shown (active, not expired, still in the catalogue)."""
    return selectors.shown_titles(org=org, ids=list(dict.fromkeys(ids)))


def _category_ids(org: Organization, category: str) -> set[str]:
    return set(ItemCategory.objects.filter(organization=org, name=category).values_list("item__external_id", flat=True))


def _fallback(
    org: Organization, *, days: int, blocked: set[str], allowed: set[str] | None, count: int, taken: Sequence[str]
) -> list[ShownItem]:
    """Popular, then latest items, none of `blocked` or `taken`, within `allowed` when given."""
    out: list[ShownItem] = []
    skip = blocked | set(taken)
    popular = [item for item in selectors.popular_item_ids(org=org) if item not in skip]
    if allowed is not None:
        popular = [item for item in popular if item in allowed]
    titles = _shown(org, popular[: count + 50])
    for rank, item in enumerate(item for item in popular[: count + 50] if item in titles):
        if len(out) >= count:
            return out
        out.append(
            ShownItem(
                id=item,
                title=titles[item],
                score=None,
                source=Source.POPULAR,
                reason=f"Popular in the last {days} days (#{rank + 1})",
            )
        )
        skip.add(item)
    latest = selectors.available_items(org=org).exclude(external_id__in=skip).order_by("-created_at", "-id")
    if allowed is not None:
        latest = latest.filter(external_id__in=allowed)
    for item, title in latest.values_list("external_id", "title")[: count - len(out)]:
        out.append(ShownItem(id=item, title=title, score=None, source=Source.LATEST, reason="New in the catalogue"))
    return out


def _model_items(
    org: Organization,
    version: ModelVersion,
    ids: IdMaps,
    request: RecommendRequest | SimilarRequest,
    wanted: int,
    *,
    first_check: Callable[[list[str]], dict[str, str]] | None = None,
) -> list[ShownItem]:
    """The model's items for `request`, hidden ones dropped (asking again for more if needed).

    `first_check` replaces the catalogue check of the first round (`_LoggedCheck`: the check and
    the attribution log row in one statement).
    """
    hidden: set[int] = set()
    fetch = wanted + OVERFETCH
    good: list[ShownItem] = []
    for round_number in range(MAX_ROUNDS):
        asked = _with(request, n=fetch, exclude=tuple(sorted({*request.exclude, *hidden})))
        result = runtime.predict(version, [asked]).outputs[0]
        candidates = [ids.items[row] for row in result.items.tolist()]
        titles = first_check(candidates) if first_check is not None and round_number == 0 else _shown(org, candidates)
        good = [
            ShownItem(id=item, title=titles[item], score=round(float(score), 6), source=Source.MODEL)
            for item, score in zip(candidates, result.scores.tolist(), strict=True)
            if item in titles
        ]
        hidden |= {ids.item_rows[item] for item in candidates if item not in titles}
        if len(good) >= wanted or len(candidates) < fetch:
            break
        fetch *= 4
    return good[:wanted]


def _with(request: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(request, **changes)


# --- Customers' live interactions ------------------------------------------------------------------


def snapshot_after(ids: IdMaps | None, current: ServingSettings) -> int | None:
    """The event id after which a customer's events are not in the version's stored rows.

    None when serving must read customers' whole histories: a version stored without its rows
    (trained before they were kept, or on a `since` window), event weights changed since, or
    events removed since (`history_revision`).
    """
    if ids is None or ids.seen is None or ids.history is None:
        return None
    history = ids.history
    if history["event_weights"] != current.event_weights or history["history_revision"] != current.history_revision:
        return None
    return int(history["through_event"])


class Histories:
    """Some customers' live interactions for one version: rows in its item space, and what they saw.

    Read whole from the events (`customer_weights`), or, where the version stored its training
    rows (`snapshot_after`), as stored row + the events after the snapshot: then a customer
    without newer events keeps the factors the version solved for them (`stored`).
    """

    def __init__(
        self, org: Organization, current: ServingSettings, ids: IdMaps | None, customers: Sequence[str]
    ) -> None:
        self.ids, self.customers = ids, list(customers)
        after = snapshot_after(ids, current)
        weights = selectors.customer_weights(
            org=org, customer_ids=self.customers, weights=current.event_weights, after_event=after or 0
        )
        self._weights = [weights[customer] for customer in self.customers]
        self._whole = after is None
        self.rows: sp.csr_matrix | None = None
        self.stored = np.zeros(len(self.customers), dtype=bool)
        if ids is not None and self._whole:
            self.rows = ids.live_rows(self._weights)
        elif ids is not None:
            self.rows, changed = ids.rows_with(self.customers, self._weights)
            self.stored = ~changed & np.fromiter(
                (customer in ids.customer_rows for customer in self.customers), bool, len(self.customers)
            )

    def row(self, position: int) -> sp.csr_matrix:
        assert self.rows is not None
        return self.rows if len(self.customers) == 1 else _row(self.rows, position)

    def seen(self, position: int) -> set[str]:
        """Ids of the items the customer at `position` interacted with (positive confidence)."""
        weights = self._weights[position]
        if self._whole or self.ids is None:
            return set(weights)
        assert self.rows is not None
        start, end = self.rows.indptr[position], self.rows.indptr[position + 1]
        items = self.ids.items
        out = {items[column] for column in self.rows.indices[start:end].tolist()}
        # items the version lacks have no event before its snapshot: their new sum is their whole
        out.update(item for item, weight in weights.items() if weight > 0 and item not in self.ids.item_rows)
        return out


# --- Answers ---------------------------------------------------------------------------------------


def filters_check(*, n: int, offset: int, exclude: Sequence[str]) -> None:
    if len(exclude) > 1000:
        raise ValidationFailed("At most 1,000 excluded items.", fields={"exclude": ["Too many."]})


def customer_recommend(
    *,
    actor: Actor,
    customer: str,
    filters: Filters,
    model: str = "",
    alias: str = "",
    explain: bool = False,
) -> Answer:
    """The top `filters.n` items for `customer` after `filters.offset` (see the module docstring)."""
    org = actor.organization
    current = selectors.serving_settings(org=org)
    version, chosen_alias = version_for(org=org, served=current, model=model, alias=alias, customer=customer)
    ids = runtime.preprocessor(version) if version is not None else None
    history = Histories(org, current, ids, [customer])
    blocked = set(filters.exclude) | (set() if filters.include_seen else history.seen(0))
    allowed = _category_ids(org, filters.category) if filters.category else None
    picked: list[ShownItem] = []
    row = None
    logged: _LoggedCheck | None = None
    if version is not None and ids is not None:
        row = history.row(0)
        if row.nnz or ids.customer_rows.get(customer) is not None:
            request = RecommendRequest(
                user_items=row,
                customer_row=ids.customer_rows.get(customer),
                n=filters.wanted,
                filter_seen=not filters.include_seen,
                exclude=tuple(sorted(ids.item_rows_of(filters.exclude))),
                items=None if allowed is None else tuple(sorted(ids.item_rows_of(sorted(allowed)))),
                stored_factors=bool(history.stored[0]),
            )
            if connection.vendor == "postgresql":
                logged = _LoggedCheck(org=org, version=version, alias=chosen_alias, customer=customer, filters=filters)
            first_check = logged.check if logged is not None else None
            picked = _model_items(org, version, ids, request, filters.wanted, first_check=first_check)
    if len(picked) < filters.wanted:
        picked += _fallback(
            org,
            days=current.fallback_days,
            blocked=blocked,
            allowed=allowed,
            count=filters.wanted - len(picked),
            taken=[item.id for item in picked],
        )
    page = picked[filters.offset : filters.wanted]
    if explain and version is not None and ids is not None and row is not None and row.nnz:
        _explain(org, version, ids, row, customer, page)
    if logged is not None and logged.inserted:
        if [shown.id for shown in page] != logged.page:  # the log row holds exactly what is answered
            raise RuntimeError(f"Logged {logged.page}, answering {[shown.id for shown in page]}")
        return Answer(recomm_id=logged.recomm_id, version=version, alias=chosen_alias, items=page)
    return _logged(org, RecommendationKind.CUSTOMER, version, chosen_alias, page, customer=customer, item="")


def item_similar(*, actor: Actor, item_id: str, filters: Filters, model: str = "", alias: str = "") -> Answer:
    """Items like `item_id` (never itself); an item the model never saw gets the fallback."""
    org = actor.organization
    selectors.item_get(org=org, item_id=item_id)  # 404 for an unknown item
    current = selectors.serving_settings(org=org)
    version, chosen_alias = version_for(org=org, served=current, model=model, alias=alias)
    blocked = {*filters.exclude, item_id}
    allowed = _category_ids(org, filters.category) if filters.category else None
    picked: list[ShownItem] = []
    if version is not None:
        ids = runtime.preprocessor(version)
        row = ids.item_rows.get(item_id)
        if row is not None:
            request = SimilarRequest(
                item_row=row,
                n=filters.wanted,
                exclude=tuple(sorted(ids.item_rows_of(filters.exclude))),
                items=None if allowed is None else tuple(sorted(ids.item_rows_of(sorted(allowed)))),
            )
            picked = _model_items(org, version, ids, request, filters.wanted)
    if len(picked) < filters.wanted:
        picked += _fallback(
            org,
            days=current.fallback_days,
            blocked=blocked,
            allowed=allowed,
            count=filters.wanted - len(picked),
            taken=[item.id for item in picked],
        )
    page = picked[filters.offset : filters.wanted]
    return _logged(org, RecommendationKind.SIMILAR, version, chosen_alias, page, customer="", item=item_id)


@dataclass(frozen=True)
class _LogRow:
    """One answer for the attribution log (`Recommendation`), without a model instance per answer."""

    kind: str
    version: ModelVersion | None
    alias: str
    items: list[ShownItem]
    customer: str = ""
    item: str = ""
    recomm_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def answer(self) -> Answer:
        return Answer(recomm_id=self.recomm_id, version=self.version, alias=self.logged_alias, items=self.items)

    @property
    def logged_alias(self) -> str:
        return self.alias if self.version is not None else ""


def _logged(
    org: Organization,
    kind: str,
    version: ModelVersion | None,
    alias: str,
    items: list[ShownItem],
    *,
    customer: str,
    item: str,
) -> Answer:
    row = _LogRow(kind=kind, version=version, alias=alias, items=items, customer=customer, item=item)
    _log(org, [row])
    return row.answer()


def _explain(
    org: Organization, version: ModelVersion, ids: IdMaps, row: Any, customer: str, page: list[ShownItem]
) -> None:
    """Fill `reason` and `because` of the model's items: the customer's past items behind each."""
    model_items = [shown for shown in page if shown.source == Source.MODEL]
    if not model_items:
        return
    request = ExplainRequest(user_items=row, item_rows=tuple(ids.item_rows[shown.id] for shown in model_items))
    contributions = runtime.explain(version, [request]).outputs[0]
    past_ids = {ids.items[past] for pairs in contributions for past, _ in pairs}
    titles = dict(Item.objects.filter(organization=org, external_id__in=past_ids).values_list("external_id", "title"))
    verbs = _strongest_verbs(org, customer, past_ids)
    for shown, pairs in zip(model_items, contributions, strict=True):
        total = sum(score for _, score in pairs) or 1.0
        shown.because = [
            {"id": ids.items[past], "title": titles.get(ids.items[past], ""), "share": round(score / total, 4)}
            for past, score in pairs
        ]
        if shown.because:
            shown.reason = _because_sentence(shown.because, verbs)


def _strongest_verbs(org: Organization, customer: str, items: set[str]) -> dict[str, str]:
    from apps.retail.models import Event

    rank = list(VERBS)
    out: dict[str, str] = {}
    events = Event.objects.filter(organization=org, customer__external_id=customer, item__external_id__in=items)
    for item, event_type in events.values_list("item__external_id", "type").order_by():
        current = out.get(item)
        if current is None or (
            event_type in rank and (current not in rank or rank.index(event_type) < rank.index(current))
        ):
            out[item] = event_type
    return out


def _because_sentence(because: list[dict[str, Any]], verbs: dict[str, str]) -> str:
    parts: list[str] = []
    for verb in dict.fromkeys(VERBS.get(verbs.get(entry["id"], ""), "interacted with") for entry in because):
        names = [
            entry["title"] or entry["id"]
            for entry in because
            if VERBS.get(verbs.get(entry["id"], ""), "interacted with") == verb
        ]
        parts.append(f"{verb} {_join(names)}")
    return "Because you " + "; and ".join(parts)


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# --- Many customers at once ------------------------------------------------------------------------


def _row(matrix: sp.csr_matrix, position: int) -> sp.csr_matrix:
    """Row `position` of a CSR matrix as a 1 x n CSR (views of its arrays, without scipy's indexing machinery)."""
    start, end = matrix.indptr[position], matrix.indptr[position + 1]
    return sp.csr_matrix(
        (matrix.data[start:end], matrix.indices[start:end], np.array([0, end - start], dtype=matrix.indptr.dtype)),
        shape=(1, matrix.shape[1]),
    )


def customers_recommend_batch(
    *, actor: Actor, customers: Sequence[str], filters: Filters, model: str = "", alias: str = ""
) -> list[tuple[str, Answer]]:
    """`customer_recommend` for many customers with one batched model call per serving version."""
    org = actor.organization
    unique = list(dict.fromkeys(customers))
    current = selectors.serving_settings(org=org)
    allowed = _category_ids(org, filters.category) if filters.category else None
    by_version: dict[int | None, tuple[ModelVersion | None, str, list[str]]] = {}
    resolved: dict[str, tuple[ModelVersion | None, str]] = {}  # one lookup per alias, not per customer
    for customer in unique:
        wanted = alias or alias_for(org=org, served=current, model_name=model or DEFAULT_MODEL_NAME, customer=customer)
        if wanted not in resolved:
            resolved[wanted] = _version_at(org=org, model=model, alias=wanted, asked=bool(model or alias))
        version, chosen = resolved[wanted]
        key = version.pk if version is not None else None
        by_version.setdefault(key, (version, chosen, []))[2].append(customer)
    picked: dict[str, list[ShownItem]] = {customer: [] for customer in unique}
    aliases: dict[str, tuple[ModelVersion | None, str]] = {}
    seen: dict[str, Callable[[], set[str]]] = {}
    for version, chosen, group in by_version.values():
        for customer in group:
            aliases[customer] = (version, chosen)
        ids = runtime.preprocessor(version) if version is not None else None
        history = Histories(org, current, ids, group)
        for position, customer in enumerate(group):
            seen[customer] = functools.partial(history.seen, position)
        if version is None or ids is None:
            continue
        exclude = tuple(sorted(ids.item_rows_of(filters.exclude)))
        items = None if allowed is None else tuple(sorted(ids.item_rows_of(sorted(allowed))))
        assert history.rows is not None
        requests = [
            RecommendRequest(
                user_items=history.rows,
                row=position,
                customer_row=ids.customer_rows.get(customer),
                n=filters.wanted + OVERFETCH,
                filter_seen=not filters.include_seen,
                exclude=exclude,
                items=items,
                stored_factors=bool(history.stored[position]),
            )
            for position, customer in enumerate(group)
        ]
        counts = np.diff(history.rows.indptr)
        served = [(c, r) for c, r in zip(group, requests, strict=True) if counts[r.row] or r.customer_row is not None]
        outputs = runtime.predict(version, [request for _, request in served]).outputs if served else []
        for customer, shown in _shown_of_each(org, ids, outputs, [c for c, _ in served], filters.wanted).items():
            picked[customer] = shown
    rows: list[_LogRow] = []
    for customer in unique:
        shown = picked[customer]
        if len(shown) < filters.wanted:
            blocked = set(filters.exclude) | (set() if filters.include_seen else seen[customer]())
            shown += _fallback(
                org,
                days=current.fallback_days,
                blocked=blocked,
                allowed=allowed,
                count=filters.wanted - len(shown),
                taken=[item.id for item in shown],
            )
        version, chosen = aliases[customer]
        page = shown[filters.offset : filters.wanted]
        rows.append(
            _LogRow(kind=RecommendationKind.BATCH, version=version, alias=chosen, items=page, customer=customer)
        )
    _log(org, rows)
    return [(row.customer, row.answer()) for row in rows]


def _shown_of_each(
    org: Organization, ids: IdMaps, outputs: Sequence[Recommended], customers: Sequence[str], wanted: int
) -> dict[str, list[ShownItem]]:
    """Each customer's first `wanted` candidates that may be shown, one catalogue check for all of them.

    In numpy over the candidates' item rows: for 10,000 customers the Python objects of every
    candidate (20 each) cost more than the model's call.
    """
    if not outputs:
        return {}
    width = max(len(output.items) for output in outputs)
    rows = np.full((len(outputs), width), -1, dtype=np.int64)
    scores = np.zeros((len(outputs), width), dtype=np.float64)
    for at, output in enumerate(outputs):
        rows[at, : len(output.items)] = output.items
        scores[at, : len(output.scores)] = output.scores
    asked = np.unique(rows[rows >= 0])
    titles = _shown(org, (ids.items[row] for row in asked.tolist()))
    shown_rows = np.fromiter((ids.items[row] in titles for row in asked.tolist()), bool, len(asked))
    may = np.zeros(len(ids.items), dtype=bool)
    may[asked[shown_rows]] = True
    ok = (rows >= 0) & may[np.maximum(rows, 0)]
    order = np.argsort(~ok, axis=1, kind="stable")[:, :wanted]  # the shown ones first, in the model's order
    counts = np.minimum(ok.sum(axis=1), wanted).tolist()
    rows = np.take_along_axis(rows, order, axis=1).tolist()
    scores = np.round(np.take_along_axis(scores, order, axis=1), 6).tolist()
    items = ids.items
    out: dict[str, list[ShownItem]] = {}
    for customer, count, row_ids, row_scores in zip(customers, counts, rows, scores, strict=True):
        out[customer] = [
            ShownItem(id=items[row], title=titles[items[row]], score=score, source=Source.MODEL)
            for row, score in zip(row_ids[:count], row_scores[:count], strict=True)
        ]
    return out


def _log(org: Organization, rows: Sequence[_LogRow]) -> None:
    """Store answers in the attribution log: one statement for any number on PostgreSQL."""
    if connection.vendor == "postgresql":
        _log_insert_postgres(org, rows)
        return
    records = [
        Recommendation(
            recomm_id=row.recomm_id,
            organization=org,
            kind=row.kind,
            customer_external_id=row.customer,
            item_external_id=row.item,
            model_version=row.version,
            model_name=row.version.registered_model.name if row.version else "",
            model_version_number=row.version.number if row.version else None,
            alias=row.logged_alias,
            items=[shown.id for shown in row.items],
            sources=[shown.source for shown in row.items],
        )
        for row in rows
    ]
    with transaction.atomic():
        Recommendation.objects.bulk_create(records, batch_size=2000)


LOGGED = (  # the attribution log's columns, as `_log_insert_postgres` writes them
    "recomm_id",
    "organization",
    "kind",
    "customer_external_id",
    "item_external_id",
    "model_version",
    "model_name",
    "model_version_number",
    "alias",
    "items",
    "sources",
    "created_at",
)


LOGGED_ONCE = ("organization", "created_at")  # one value for the whole batch


def _log_insert_postgres(org: Organization, rows: Sequence[_LogRow]) -> None:
    """Answers into the attribution log in one statement (`bulk_create`: 4x the time for a batch).

    Columns as arrays in `LOGGED`'s order; the two JSON lists go as JSON text (cast to jsonb by
    the statement), which psycopg sends several times faster than a `Jsonb` wrapper per value.
    """
    from django.utils import timezone

    now = timezone.now()
    names = {version.pk: version.registered_model.name for version in {row.version for row in rows} if version}
    values: dict[str, Any] = {
        "recomm_id": [row.recomm_id for row in rows],
        "organization": org.pk,
        "kind": [str(row.kind) for row in rows],
        "customer_external_id": [row.customer for row in rows],
        "item_external_id": [row.item for row in rows],
        "model_version": [row.version.pk if row.version else None for row in rows],
        "model_name": [names[row.version.pk] if row.version else "" for row in rows],
        "model_version_number": [row.version.number if row.version else None for row in rows],
        "alias": [row.logged_alias for row in rows],
        "items": [json.dumps([shown.id for shown in row.items]) for row in rows],
        "sources": [json.dumps([str(shown.source) for shown in row.items]) for row in rows],
        "created_at": now,
    }
    once = [values[name] for name in LOGGED if name in LOGGED_ONCE]  # the statement's order
    with binding_cursor() as cursor:
        cursor.execute(_log_sql(), [*once, *(values[name] for name in LOGGED if name not in LOGGED_ONCE)])


@functools.cache
def _log_sql() -> str:
    """One row per answer from arrays, the same organization and time for all (`_log_insert_postgres`)."""
    columns = {name: column_of(Recommendation, name) for name in LOGGED}
    per_row = [name for name in LOGGED if name not in LOGGED_ONCE]
    selected = [
        f"%b::{columns[name][1]}" if name in LOGGED_ONCE else f"u.{name}::{columns[name][1]}" for name in LOGGED
    ]
    return (  # names from _meta, every value a bound parameter
        f"INSERT INTO {table_name(Recommendation)} ({', '.join(column for column, _ in columns.values())}) "  # noqa: S608
        f"SELECT {', '.join(selected)} FROM unnest("
        f"{', '.join(f'%b::{_sent_as(columns[name][1])}[]' for name in per_row)}) AS u({', '.join(per_row)})"
    )


def _sent_as(kind: str) -> str:
    """The array type a column's values are sent as: JSON as text (see `_log_insert_postgres`)."""
    return "text" if kind == "jsonb" else kind


class _LoggedCheck:
    """A single answer's catalogue check and attribution log row in one PostgreSQL statement.

    The statement finds which candidates may be shown (as `selectors.shown_titles`) and, when at
    least `filters.wanted` of them may, inserts the answer's log row: the shown candidates in the
    model's order, `filters.offset` to `filters.wanted`, every source `model`. That is exactly the
    page `customer_recommend` then answers (asserted), so the row is committed before the answer
    leaves, one round trip fewer. With too few shown (another model round or the fallback
    follows) nothing is inserted and the answer is logged as usual.
    """

    def __init__(self, *, org: Organization, version: ModelVersion, alias: str, customer: str, filters: Filters):
        self.org, self.version, self.alias, self.customer, self.filters = org, version, alias, customer, filters
        self.recomm_id = uuid.uuid4()
        self.inserted = False
        self.page: list[str] = []

    def check(self, candidates: list[str]) -> dict[str, str]:
        from django.utils import timezone

        now = timezone.now()
        version = self.version
        with binding_cursor() as cursor:
            cursor.execute(
                _checked_log_sql(),
                {
                    "org": self.org.pk,
                    "now": now,
                    "candidates": candidates,
                    "offset": self.filters.offset,
                    "n": self.filters.n,
                    "wanted": self.filters.wanted,
                    "recomm_id": self.recomm_id,
                    "kind": str(RecommendationKind.CUSTOMER),
                    "customer": self.customer,
                    "item": "",
                    "version": version.pk,
                    "model_name": version.registered_model.name,
                    "number": version.number,
                    "alias": self.alias,
                    "source": str(Source.MODEL),
                },
            )
            rows = cursor.fetchall()
        titles = {item: title for item, title, _ in rows}
        self.inserted = bool(rows) and bool(rows[0][2])
        if self.inserted:
            shown = [item for item, _, _ in rows]
            self.page = shown[self.filters.offset : self.filters.wanted]
        return titles


@functools.cache
def _checked_log_sql() -> str:
    """`_shown_sql`'s check and `_log_sql`'s insert of one answer as one statement (see `_LoggedCheck`)."""
    item = {name: column_of(Item, name)[0] for name in ("organization", "external_id", "title", "active")}
    until = column_of(Item, "available_until")[0]
    kind_of_id = column_of(Item, "external_id")[1]
    logged = {name: column_of(Recommendation, name) for name in LOGGED}
    values = {
        "recomm_id": "%(recomm_id)b",
        "organization": "%(org)b",
        "kind": "%(kind)b",
        "customer_external_id": "%(customer)b",
        "item_external_id": "%(item)b",
        "model_version": "%(version)b",
        "model_name": "%(model_name)b",
        "model_version_number": "%(number)b",
        "alias": "%(alias)b",
        "items": "(SELECT coalesce(jsonb_agg(page.id ORDER BY page.ord), '[]'::jsonb) FROM page)",
        "sources": "(SELECT coalesce(jsonb_agg(%(source)b::text), '[]'::jsonb) FROM page)",
        "created_at": "%(now)b",
    }
    return (  # names from _meta, every value a bound parameter
        f"WITH candidates AS (SELECT c.id, c.ord FROM unnest(%(candidates)b::{kind_of_id}[]) "  # noqa: S608
        "WITH ORDINALITY AS c (id, ord)), "
        f"shown AS (SELECT candidates.id, candidates.ord, i.{item['title']} AS title FROM candidates "
        f"JOIN {table_name(Item)} i ON i.{item['organization']} = %(org)b AND i.{item['external_id']} = candidates.id "
        f"WHERE i.{item['active']} AND (i.{until} IS NULL OR i.{until} > %(now)b)), "
        "page AS (SELECT id, ord FROM shown ORDER BY ord OFFSET %(offset)b LIMIT %(n)b), "
        f"logged AS (INSERT INTO {table_name(Recommendation)} "
        f"({', '.join(column for column, _ in logged.values())}) "
        f"SELECT {', '.join(f'{values[name]}::{kind}' for name, (_, kind) in logged.items())} "
        "WHERE (SELECT count(*) FROM shown) >= %(wanted)b RETURNING 1) "
        "SELECT shown.id, shown.title, (SELECT count(*) FROM logged) FROM shown ORDER BY shown.ord"
    )
