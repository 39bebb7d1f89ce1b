"""Catalogue and interaction ingest: bulk upserts, idempotent event batches, CSV imports as jobs.

Rows of a batch are independent: a bad row is that row's error (with its index and field
messages) and the others are stored; a request refused as a whole (not a list, too many rows)
stores nothing. Validation is hand-written rather than one serializer per row so a 10,000-row
batch costs a few queries: one to find the batch's items, one for its known customers, one
for already-stored event ids, then bulk inserts. On PostgreSQL each is one statement with one
array parameter per column (`= ANY(...)`, `unnest(...)`): the ORM's per-row work would cost more
than the database does.

CSV imports stream the stored file in chunks through the same functions (each chunk in its own
transaction; events are idempotent by `event_id`, items by id, so a job re-run after a crash
stores nothing twice).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from django.core.files.storage import default_storage
from django.db import connection, models, transaction
from django.utils import timezone

from apps.retail import selectors
from apps.retail.bulk_sql import binding_cursor, column_of, table_name
from apps.retail.choices import IMPORT_EVENTS_JOB_KIND, IMPORT_ITEMS_JOB_KIND, MAX_BULK_ROWS
from apps.retail.models import Customer, Event, Item, ItemCategory, RetailImport, RetailSettings
from core.audit.services import audit_record
from core.errors import PayloadTooLarge, ValidationFailed
from core.jobs.runner import job_enqueue, job_params_set
from core.storage import media_name, stored_files
from core.tenancy.actors import Actor
from core.tenancy.models import Organization

MAX_ID = 200
MAX_TITLE = 500
MAX_CATEGORIES = 50
MAX_ERRORS_LISTED = 100
CSV_CHUNK_ROWS = 5_000
MAX_CSV_BYTES = 2 * 1024 * 1024 * 1024
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_-]{0,49}$")
ITEM_FIELDS = ("title", "categories", "attributes", "active", "available_until")


class RowError(Exception):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in fields.items()))
        self.fields = fields


@dataclass
class BatchResult:
    """What a batch did: counts and the first `MAX_ERRORS_LISTED` refused rows."""

    created: int = 0
    updated: int = 0
    duplicates: int = 0
    refused: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def refuse(self, index: int, row_id: Any, fields: dict[str, str]) -> None:
        self.refused += 1
        if len(self.errors) < MAX_ERRORS_LISTED:
            self.errors.append({"index": index, "id": row_id, "fields": fields})

    def add(self, other: BatchResult, *, offset: int) -> None:
        self.created += other.created
        self.updated += other.updated
        self.duplicates += other.duplicates
        for error in other.errors:
            if len(self.errors) < MAX_ERRORS_LISTED:
                self.errors.append({**error, "index": error["index"] + offset})
        self.refused += other.refused

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "duplicates": self.duplicates,
            "refused": self.refused,
            "errors": self.errors,
        }


def rows_check(rows: Any, *, what: str) -> Sequence[Any]:
    """The request as a whole: a JSON array of at most MAX_BULK_ROWS objects (else nothing is stored)."""
    if not isinstance(rows, list):
        raise ValidationFailed(f"Send a JSON array (or NDJSON) of {what}.", code="not_a_list")
    if not rows:
        raise ValidationFailed(f"The batch has no {what}.", code="empty_batch")
    if len(rows) > MAX_BULK_ROWS:
        raise PayloadTooLarge(
            f"At most {MAX_BULK_ROWS} {what} per request ({len(rows)} sent); upload a CSV for more.",
            code="batch_too_large",
        )
    return rows


# --- Field parsers (raise RowError) ----------------------------------------------------------------


def _identifier(value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowError({name: "required: a string of 1-200 characters"})
    text = str(value).strip()
    if not text or len(text) > MAX_ID or "\x00" in text:
        raise RowError({name: "required: a string of 1-200 characters"})
    return text


def parse_datetime_value(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise RowError({name: "an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z"})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise RowError({name: "an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z"}) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not 1970 <= moment.year <= 9000:
        raise RowError({name: "out of range"})
    return moment


def _item_fields(row: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """The item fields present in `row`, validated (all with defaults unless `partial`)."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    unknown = set(row) - {"id", *ITEM_FIELDS}
    if unknown:
        errors["non_field_errors"] = f"unknown field(s): {', '.join(sorted(map(str, unknown)))}"
    if "title" in row or not partial:
        title = row.get("title", "")
        if title is None:
            title = ""
        if not isinstance(title, str) or len(title) > MAX_TITLE or "\x00" in title:
            errors["title"] = f"a string of at most {MAX_TITLE} characters"
        out["title"] = title
    if "categories" in row or not partial:
        categories = row.get("categories") or []
        if (
            not isinstance(categories, list)
            or len(categories) > MAX_CATEGORIES
            or not all(isinstance(c, str) and 0 < len(c.strip()) <= MAX_ID and "\x00" not in c for c in categories)
        ):
            errors["categories"] = f"a list of at most {MAX_CATEGORIES} non-empty strings (≤ {MAX_ID} characters)"
        else:
            out["categories"] = list(dict.fromkeys(c.strip() for c in categories))
    if "attributes" in row or not partial:
        attributes = row.get("attributes") or {}
        if (
            not isinstance(attributes, dict)
            or len(json.dumps(attributes)) > 20_000
            or "\\u0000" in json.dumps(attributes)
        ):
            errors["attributes"] = "an object (at most 20 kB of JSON)"
        out["attributes"] = attributes
    if "active" in row or not partial:
        active = row.get("active", True)
        if not isinstance(active, bool):
            errors["active"] = "true or false"
        out["active"] = active
    if "available_until" in row or not partial:
        until = row.get("available_until")
        if until is None:
            out["available_until"] = None
        else:
            try:
                out["available_until"] = parse_datetime_value(until, "available_until")
            except RowError as exc:
                errors.update(exc.fields)
    if errors:
        raise RowError(errors)
    return out


# --- Items ----------------------------------------------------------------------------------------


def items_upsert(*, actor: Actor, rows: Sequence[Any], audit: bool = True) -> BatchResult:
    """Create or update catalogue items by id; fields a row leaves out keep their value (or default)."""
    org = actor.organization
    result = BatchResult()
    valid: dict[str, dict[str, Any]] = {}
    for index, row in enumerate(rows):
        row_id = row.get("id") if isinstance(row, dict) else None
        try:
            if not isinstance(row, dict):
                raise RowError({"non_field_errors": "each item is an object"})
            item_id = _identifier(row.get("id"), "id")
            if item_id in valid:
                raise RowError({"id": "appears twice in this batch"})
            valid[item_id] = _item_fields(row, partial=True)
        except RowError as exc:
            result.refuse(index, row_id, exc.fields)
    if not valid:
        return result
    with transaction.atomic():
        existing = {item.external_id: item for item in Item.objects.filter(organization=org, external_id__in=valid)}
        now = timezone.now()
        new = []
        for item_id, fields in valid.items():
            item = existing.get(item_id)
            if item is None:
                new.append(Item(organization=org, external_id=item_id, created_at=now, updated_at=now, **fields))
                continue
            for name, value in fields.items():
                setattr(item, name, value)
            item.updated_at = now
        Item.objects.bulk_create(new, batch_size=2000)
        changed = [item for item_id, item in existing.items() if valid[item_id]]
        if changed:
            Item.objects.bulk_update(changed, [*ITEM_FIELDS, "updated_at"], batch_size=1000)
        result.created, result.updated = len(new), len(existing)
        with_categories = {item_id for item_id, fields in valid.items() if "categories" in fields}
        if with_categories:
            categories_sync(org=org, item_ids=with_categories)
        if audit:
            audit_record(
                actor=actor,
                action="retail.items.upsert",
                obj=None,
                details={"created": result.created, "updated": result.updated, "refused": result.refused},
            )
    return result


def categories_sync(*, org: Organization, item_ids: set[str]) -> None:
    """Rewrite the category rows of `item_ids` from their `categories` lists."""
    items = list(Item.objects.filter(organization=org, external_id__in=item_ids).values_list("pk", "categories"))
    ItemCategory.objects.filter(item_id__in=[pk for pk, _ in items]).delete()
    ItemCategory.objects.bulk_create(
        [ItemCategory(organization=org, item_id=pk, name=name) for pk, names in items for name in names or []],
        batch_size=5000,
    )


def item_update(*, actor: Actor, item: Item, changes: Mapping[str, Any]) -> Item:
    """PATCH one item (the fields given); validation errors are a 400 naming the fields."""
    try:
        fields = _item_fields({key: value for key, value in changes.items() if key != "id"}, partial=True)
    except RowError as exc:
        raise ValidationFailed(
            "Invalid item.", fields={name: [message] for name, message in exc.fields.items()}
        ) from exc
    with transaction.atomic():
        for name, value in fields.items():
            setattr(item, name, value)
        item.save()
        if "categories" in fields:
            categories_sync(org=actor.organization, item_ids={item.external_id})
        audit_record(actor=actor, action="retail.item.update", obj=item, details={"fields": sorted(fields)})
    return item


@transaction.atomic
def item_delete(*, actor: Actor, item: Item) -> None:
    """Remove an item from the catalogue (its events go with it: it can no longer be recommended).

    Removing events moves the organization's `history_revision` on: versions trained before no
    longer stand for the live interactions, so serving reads each customer's events again.
    """
    audit_record(actor=actor, action="retail.item.delete", obj=item, details={"id": item.external_id})
    had_events = item.events.exists()
    item.delete()
    if had_events:
        history_revision_bump(org=actor.organization)


def history_revision_bump(*, org: Organization) -> None:
    """Mark the organization's stored events as changed other than by appending (see `RetailSettings`)."""
    RetailSettings.objects.get_or_create(organization=org)
    RetailSettings.objects.filter(organization=org).update(history_revision=models.F("history_revision") + 1)
    selectors.serving_settings_clear()
    transaction.on_commit(selectors.serving_settings_clear)


# --- Events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _EventRow:
    event_id: str
    customer: str
    item: str
    type: str
    value: float | None
    timestamp: datetime
    recomm_id: uuid.UUID | None


def _event_row(row: Any, now: datetime) -> _EventRow:
    if not isinstance(row, dict):
        raise RowError({"non_field_errors": "each event is an object"})
    errors: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    for name in ("event_id", "customer", "item"):
        try:
            parsed[name] = _identifier(row.get(name), name)
        except RowError as exc:
            errors.update(exc.fields)
    event_type = row.get("type")
    if not isinstance(event_type, str) or not EVENT_TYPE.match(event_type):
        errors["type"] = "view, click, cart, purchase, rating or a custom lower-case name (≤ 50 characters)"
    value = row.get("value")
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    ):
        errors["value"] = "a finite number"
    elif value is not None and abs(value) > 1e9:
        errors["value"] = "out of range"
    if event_type == "rating" and value is None:
        errors["value"] = "a rating needs its value"
    timestamp = now
    if row.get("timestamp") is not None:
        try:
            timestamp = parse_datetime_value(row["timestamp"], "timestamp")
        except RowError as exc:
            errors.update(exc.fields)
    recomm_id = None
    if row.get("recomm_id") not in (None, ""):
        try:
            recomm_id = uuid.UUID(str(row["recomm_id"]))
        except ValueError:
            errors["recomm_id"] = "the recomm_id of a recommendation answer (a UUID)"
    unknown = set(row) - {"event_id", "customer", "item", "type", "value", "timestamp", "recomm_id"}
    if unknown:
        errors["non_field_errors"] = f"unknown field(s): {', '.join(sorted(map(str, unknown)))}"
    if errors:
        raise RowError(errors)
    return _EventRow(
        event_id=parsed["event_id"],
        customer=parsed["customer"],
        item=parsed["item"],
        type=str(event_type),
        value=None if value is None else float(value),
        timestamp=timestamp,
        recomm_id=recomm_id,
    )


def events_ingest(*, actor: Actor, rows: Sequence[Any], audit: bool = True) -> BatchResult:
    """Store a batch of events; idempotent by `event_id` (a retried batch stores nothing twice).

    Unknown items are that row's error; customers are created on first sight.
    """
    org = actor.organization
    result = BatchResult()
    now = timezone.now()
    parsed: list[tuple[int, _EventRow]] = []
    for index, row in enumerate(rows):
        try:
            parsed.append((index, _event_row(row, now)))
        except RowError as exc:
            result.refuse(index, row.get("event_id") if isinstance(row, dict) else None, exc.fields)
    if not parsed:
        return result
    with transaction.atomic():
        item_ids = _pks_by_key(Item, org=org, key="external_id", values={e.item for _, e in parsed})
        stored = set(_pks_by_key(Event, org=org, key="event_id", values=[e.event_id for _, e in parsed]))
        accepted: list[_EventRow] = []
        for index, event in parsed:
            if event.event_id in stored:
                result.duplicates += 1
            elif event.item not in item_ids:
                result.refuse(index, event.event_id, {"item": f"unknown item {event.item!r}: add it to the catalogue"})
            else:
                stored.add(event.event_id)
                accepted.append(event)
        customers = _customers_ensure(org=org, ids={event.customer for event in accepted}, now=now)
        if accepted and connection.vendor == "postgresql":
            result.created = _events_insert_postgres(
                org=org, events=accepted, customers=customers, items=item_ids, now=now
            )
            result.duplicates += len(accepted) - result.created  # a concurrent request stored them first
        else:
            Event.objects.bulk_create(
                [
                    Event(
                        organization=org,
                        event_id=event.event_id,
                        customer_id=customers[event.customer],
                        item_id=item_ids[event.item],
                        type=event.type,
                        value=event.value,
                        timestamp=event.timestamp,
                        recomm_id=event.recomm_id,
                        created_at=now,
                    )
                    for event in accepted
                ],
                batch_size=5000,
                ignore_conflicts=True,  # a concurrent retry of the same batch: the unique key keeps one copy
            )
            result.created = len(accepted)
        if audit and result.created:
            audit_record(
                actor=actor,
                action="retail.events.ingest",
                obj=None,
                details={"created": result.created, "duplicates": result.duplicates, "refused": result.refused},
            )
    return result


def _events_insert_postgres(
    *,
    org: Organization,
    events: Sequence[_EventRow],
    customers: Mapping[str, int],
    items: Mapping[str, int],
    now: datetime,
) -> int:
    """Insert `events` with one statement (one array per column, `unnest`); the number actually stored.

    Why not `bulk_create`: for a 10,000-row batch the ORM's per-row work (model instances,
    `get_db_prep_save` per field, a 45,000-parameter statement to compile and bind) costs about
    three times what the database spends storing the rows. `ON CONFLICT DO NOTHING` keeps a
    concurrent retry idempotent, and the row count it reports is exactly the rows that were new.
    """
    arrays: dict[str, list[Any]] = {  # field → the values of every event, in order
        "event_id": [e.event_id for e in events],
        "customer": [customers[e.customer] for e in events],
        "item": [items[e.item] for e in events],
        "type": [e.type for e in events],
        "value": [e.value for e in events],
        "timestamp": [e.timestamp for e in events],
        "recomm_id": [e.recomm_id for e in events],
    }
    columns = {name: column_of(Event, name) for name in ["organization", *arrays, "created_at"]}
    sql = (  # names from _meta, every value a bound parameter
        f"INSERT INTO {table_name(Event)} ({', '.join(column for column, _ in columns.values())}) "  # noqa: S608
        f"SELECT %b, rows.*, %b FROM unnest({', '.join(f'%b::{columns[name][1]}[]' for name in arrays)}) AS rows "
        f"ON CONFLICT ({columns['organization'][0]}, {columns['event_id'][0]}) DO NOTHING"
    )
    with binding_cursor() as cursor:
        cursor.execute(sql, [org.pk, now, *arrays.values()])
        return int(cursor.rowcount)  # the rows inserted, conflicts not counted


def _customers_ensure(*, org: Organization, ids: set[str], now: datetime) -> dict[str, int]:
    """`{external id: pk}` of the customers `ids`, creating the ones never seen."""
    if not ids:
        return {}
    known = _pks_by_key(Customer, org=org, key="external_id", values=ids)
    missing = ids - known.keys()
    if not missing:
        return known
    if connection.vendor == "postgresql":
        known |= _customers_insert_postgres(org=org, ids=missing, now=now)
        missing -= known.keys()  # left: the ones a concurrent request created first
    else:
        Customer.objects.bulk_create(
            [Customer(organization=org, external_id=customer) for customer in missing],
            batch_size=5000,
            ignore_conflicts=True,
        )
    if missing:
        known |= _pks_by_key(Customer, org=org, key="external_id", values=missing)
    return known


def _customers_insert_postgres(*, org: Organization, ids: Collection[str], now: datetime) -> dict[str, int]:
    """Insert the customers `ids` in one statement, as `_events_insert_postgres`; `{id: pk}` of the new ones."""
    (organization, _), (external_id, text), (created_at, _), (pk, _) = (
        column_of(Customer, name) for name in ("organization", "external_id", "created_at", "pk")
    )
    sql = (  # names from _meta, every value a bound parameter
        f"INSERT INTO {table_name(Customer)} ({organization}, {external_id}, {created_at}) "  # noqa: S608
        f"SELECT %b, ids.id, %b FROM unnest(%b::{text}[]) AS ids (id) "
        f"ON CONFLICT ({organization}, {external_id}) DO NOTHING RETURNING {external_id}, {pk}"
    )
    with binding_cursor() as cursor:
        cursor.execute(sql, [org.pk, now, list(ids)])
        return dict(cursor.fetchall())


def _pks_by_key(model: type[models.Model], *, org: Organization, key: str, values: Collection[str]) -> dict[str, int]:
    """`{key: pk}` of the rows of `org` whose `key` is one of `values`.

    On PostgreSQL one array parameter (`= ANY(...)`) rather than the ORM's `IN (%s, ...)` with a
    parameter per value (10,000 in a full batch, each prepared and bound one by one).
    """
    if connection.vendor != "postgresql":
        return dict(model._default_manager.filter(organization=org, **{f"{key}__in": values}).values_list(key, "pk"))
    (column, kind), (pk, _), (organization, _) = (column_of(model, name) for name in (key, "pk", "organization"))
    sql = (  # names from _meta, every value a bound parameter
        f"SELECT {column}, {pk} FROM {table_name(model)} "  # noqa: S608
        f"WHERE {organization} = %b AND {column} = ANY(%b::{kind}[])"
    )
    with binding_cursor() as cursor:
        cursor.execute(sql, [org.pk, list(values)])
        return dict(cursor.fetchall())


def ndjson_rows(raw: bytes) -> list[Any]:
    """Parse NDJSON (one JSON object per line; blank lines skipped); a bad line refuses the request."""
    rows = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationFailed(f"Line {number} is not JSON: {exc}", code="parse_error") from exc
        if len(rows) > MAX_BULK_ROWS:
            raise PayloadTooLarge(f"At most {MAX_BULK_ROWS} events per request.", code="batch_too_large")
    return rows


# --- CSV imports (jobs) ---------------------------------------------------------------------------

EVENT_COLUMNS = ("event_id", "customer", "item", "type")
ITEM_COLUMNS = ("id",)


def import_start(*, actor: Actor, target: str, upload: Any) -> RetailImport:
    """Store an uploaded CSV of `items` or `events` and enqueue its import job."""
    if upload.size > MAX_CSV_BYTES:
        raise PayloadTooLarge("The CSV is larger than 2 GB.", code="file_too_large")
    head = upload.read(64 * 1024)
    upload.seek(0)
    header = _csv_header(head)
    required = EVENT_COLUMNS if target == "events" else ITEM_COLUMNS
    missing = [column for column in required if column not in header]
    if missing:
        raise ValidationFailed(
            f"The CSV lacks the column(s) {', '.join(missing)}; it has {', '.join(header) or 'none'}.",
            code="bad_csv",
            fields={"file": [f"Missing: {', '.join(missing)}."]},
        )
    kind = IMPORT_EVENTS_JOB_KIND if target == "events" else IMPORT_ITEMS_JOB_KIND
    with stored_files() as files, transaction.atomic():
        name = files.save(
            media_name(org_id=actor.organization.pk, domain="retail", folder="imports", suffix=".csv"), upload
        )
        job = job_enqueue(actor=actor, kind=kind)
        record = RetailImport.objects.create(
            organization=actor.organization,
            job=job,
            target=target,
            file_path=name,
            file_size=upload.size,
            created_by=actor.user,
        )
        job_params_set(job=job, params={"import_id": record.pk})
        audit_record(actor=actor, action=f"retail.{target}.import", obj=record, details={"bytes": upload.size})
    return record


def _csv_header(head: bytes) -> list[str]:
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed("The CSV is not UTF-8 text.", code="bad_csv", fields={"file": ["Not UTF-8."]}) from exc
    first = text.splitlines()[0] if text else ""
    return [column.strip() for column in next(csv.reader([first]), [])]


def _csv_value(column: str, text: str) -> Any:
    text = text.strip()
    if text == "":
        return None
    if column == "value":
        try:
            return float(text)
        except ValueError:
            return text  # the row's validation names it
    if column == "categories":
        return [part for part in (piece.strip() for piece in text.split("|")) if part]
    if column == "attributes":
        try:
            return json.loads(text)
        except ValueError:
            return text
    if column == "active":
        lowered = text.lower()
        return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(lowered, text)
    return text


def _csv_chunks(handle: IO[bytes], *, report: Callable[[int], None]) -> Iterator[list[dict[str, Any]]]:
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    reader = csv.DictReader(text)
    chunk: list[dict[str, Any]] = []
    for row in reader:
        chunk.append(
            {column.strip(): _csv_value(column.strip(), value or "") for column, value in row.items() if column}
        )
        if len(chunk) >= CSV_CHUNK_ROWS:
            report(handle.tell())
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def import_execute(*, import_id: int, actor: Actor, report: Callable[..., None]) -> dict[str, Any]:
    """Run a CSV import: chunked, each chunk through the bulk path in its own transaction."""
    record = RetailImport.objects.get(pk=import_id)
    ingest = events_ingest if record.target == "events" else items_upsert
    total = BatchResult()
    rows = 0
    size = max(record.file_size, 1)
    with default_storage.open(record.file_path, "rb") as handle:
        chunks = _csv_chunks(
            handle, report=lambda at: report(progress=min(at / size, 0.99), message=f"{rows:,} rows read")
        )
        try:
            for chunk in chunks:
                outcome = ingest(actor=actor, rows=chunk, audit=False)
                total.add(outcome, offset=rows)
                rows += len(chunk)
                RetailImport.objects.filter(pk=record.pk).update(
                    rows=rows,
                    created=total.created + total.updated,
                    duplicates=total.duplicates,
                    refused=total.refused,
                    errors=total.errors,
                )
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ValidationFailed(f"The CSV is malformed near row {rows + 1}: {exc}", code="bad_csv") from exc
    audit_record(
        actor=actor, action=f"retail.{record.target}.imported", obj=record, details=total.as_dict() | {"errors": None}
    )
    return {"import_id": record.pk, "rows": rows, **total.as_dict()}
