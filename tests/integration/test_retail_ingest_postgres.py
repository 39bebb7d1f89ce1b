"""Event ingest on PostgreSQL: the one-statement path of `events_ingest` (unnest + ON CONFLICT).

The fast suite checks the same API on SQLite, through the ORM path; here the PostgreSQL path
must give the same answers: exact created/duplicate counts (also for a retried batch and for a
retry racing the first request), per-row errors with their indexes, customers created once,
and every stored field read back as it was sent.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime
from typing import Any

import pytest
from django.db import connection, connections, transaction

from apps.retail.ingest import events_ingest
from apps.retail.models import Customer, Event
from core.audit.models import AuditEvent
from core.tenancy.actors import Actor
from tests.realservices import RealServices
from tests.retail.conftest import load, movielens_subset

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ITEMS = "/api/v1/retail/items/"
EVENTS = "/api/v1/retail/events/"
BATCH = 10_000


@pytest.fixture
def postgres(real_services: RealServices) -> None:
    assert connection.vendor == "postgresql", connection.vendor


@pytest.fixture
def movielens_batch(api: Any) -> list[dict[str, Any]]:
    """10,000 real MovieLens ratings, their films already in the catalogue (PUT /items/)."""
    items, events = movielens_subset(customers=80)
    batch = events[:BATCH]
    assert len(batch) == BATCH
    rated = {event["item"] for event in batch}
    load(api, [item for item in items if item["id"] in rated], [])
    return batch


def _post(api: Any, rows: list[Any]) -> dict[str, Any]:
    response = api.post(EVENTS, rows, format="json")
    assert response.status_code == 200, response.content[:800]
    body: dict[str, Any] = response.json()
    return body


def _read_back(api: Any, customer: str) -> dict[str, dict[str, Any]]:
    """Every event of `customer` through GET /events/?customer=, by event id."""
    found: dict[str, dict[str, Any]] = {}
    page = 1
    while True:
        response = api.get(EVENTS, {"customer": customer, "page": page, "page_size": 500})
        assert response.status_code == 200, response.content[:500]
        body = response.json()
        found |= {event["event_id"]: event for event in body["results"]}
        if not body["next"]:
            return found
        page += 1


def _ingest_audits(org: Any) -> list[dict[str, Any]]:
    return list(
        AuditEvent.objects.filter(organization=org, action="retail.events.ingest")
        .order_by("id")
        .values_list("details", flat=True)
    )


def test_a_movielens_batch_is_stored_once_and_its_retry_stores_nothing(
    postgres: None, api: Any, org: Any, movielens_batch: list[dict[str, Any]]
) -> None:
    customers = {event["customer"] for event in movielens_batch}

    first = _post(api, movielens_batch)

    assert first == {"created": BATCH, "updated": 0, "duplicates": 0, "refused": 0, "errors": []}
    assert Event.objects.filter(organization=org).count() == BATCH
    assert set(Customer.objects.filter(organization=org).values_list("external_id", flat=True)) == customers
    assert _ingest_audits(org) == [{"created": BATCH, "duplicates": 0, "refused": 0}]

    retry = _post(api, movielens_batch)

    assert retry == {"created": 0, "updated": 0, "duplicates": BATCH, "refused": 0, "errors": []}
    assert Event.objects.filter(organization=org).count() == BATCH
    assert Customer.objects.filter(organization=org).count() == len(customers)
    assert len(_ingest_audits(org)) == 1  # nothing stored, nothing audited (as on SQLite)

    # every field of one customer's real ratings, read back through the API
    someone = movielens_batch[0]["customer"]
    sent = {event["event_id"]: event for event in movielens_batch if event["customer"] == someone}
    stored = _read_back(api, someone)
    assert stored.keys() == sent.keys()
    for event_id, event in sent.items():
        back = stored[event_id]
        assert (back["customer"], back["item"], back["type"], back["value"], back["recomm_id"]) == (
            someone,
            event["item"],
            "rating",
            event["value"],
            None,
        )
        assert datetime.fromisoformat(back["timestamp"]) == datetime.fromisoformat(event["timestamp"])


def test_a_mixed_batch_counts_new_duplicate_and_unknown_item_rows_exactly(postgres: None, api: Any, org: Any) -> None:
    response = api.put(ITEMS, [{"id": "a"}, {"id": "b"}], format="json")
    assert response.status_code == 200, response.content
    before = _post(
        api,
        [
            {"event_id": "e1", "customer": "old", "item": "a", "type": "view"},
            {"event_id": "e2", "customer": "old", "item": "b", "type": "view"},
        ],
    )
    assert before["created"] == 2

    body = _post(
        api,
        [
            {"event_id": "e1", "customer": "old", "item": "a", "type": "view"},  # 0: stored before
            {"event_id": "e3", "customer": "new", "item": "a", "type": "cart"},  # 1: new, new customer
            {"event_id": "e3", "customer": "new", "item": "a", "type": "cart"},  # 2: twice in this request
            {"event_id": "e4", "customer": "ghost", "item": "zz", "type": "view"},  # 3: unknown item
            {"event_id": "e5", "customer": "new", "item": "b", "type": "purchase", "value": 9.5},  # 4: new
            {"event_id": "e2", "customer": "old", "item": "zz", "type": "view"},  # 5: stored before (item moot)
            {"event_id": "e6", "customer": "new", "item": "a", "type": "View"},  # 6: a bad type
            {"event_id": "e4", "customer": "late", "item": "b", "type": "view"},  # 7: e4, now a known item
        ],
    )

    assert (body["created"], body["duplicates"], body["refused"]) == (3, 3, 2), body
    assert [(error["index"], error["id"], sorted(error["fields"])) for error in body["errors"]] == [
        (6, "e6", ["type"]),
        (3, "e4", ["item"]),
    ]
    assert "unknown item 'zz'" in body["errors"][1]["fields"]["item"]
    stored = dict(Event.objects.filter(organization=org).values_list("event_id", "item__external_id"))
    assert stored == {"e1": "a", "e2": "b", "e3": "a", "e4": "b", "e5": "b"}
    assert sorted(Customer.objects.filter(organization=org).values_list("external_id", flat=True)) == [
        "late",
        "new",
        "old",
    ]  # not "ghost": a refused row creates no customer
    assert _ingest_audits(org)[-1] == {"created": 3, "duplicates": 3, "refused": 2}


def test_every_field_round_trips(postgres: None, api: Any, org: Any) -> None:
    response = api.put(ITEMS, [{"id": "film-1"}, {"id": "film-2"}], format="json")
    assert response.status_code == 200, response.content
    recomm = str(uuid.uuid4())
    sent: list[dict[str, Any]] = [
        {
            "event_id": "r-1",
            "customer": "ana",
            "item": "film-1",
            "type": "rating",
            "value": 4.5,
            "timestamp": "2025-03-01T10:20:30.123456+05:30",
            "recomm_id": recomm,
        },
        {
            "event_id": "r-2",
            "customer": "ana",
            "item": "film-2",
            "type": "add-to-list",
            "timestamp": "2025-03-02T00:00:00",
        },
        {"event_id": "r-3", "customer": "ana", "item": "film-1", "type": "purchase", "value": -0.25, "recomm_id": ""},
    ]
    started = time.time()

    body = _post(api, sent)

    assert (body["created"], body["refused"]) == (3, 0), body
    back = _read_back(api, "ana")
    assert back["r-1"] | {"created_at": None} == {
        "event_id": "r-1",
        "customer": "ana",
        "item": "film-1",
        "type": "rating",
        "value": 4.5,
        "timestamp": back["r-1"]["timestamp"],
        "recomm_id": recomm,
        "created_at": None,
    }
    assert datetime.fromisoformat(back["r-1"]["timestamp"]) == datetime.fromisoformat(sent[0]["timestamp"])
    assert datetime.fromisoformat(back["r-2"]["timestamp"]) == datetime.fromisoformat("2025-03-02T00:00:00+00:00")
    assert (back["r-2"]["type"], back["r-2"]["value"], back["r-2"]["recomm_id"]) == ("add-to-list", None, None)
    assert (back["r-3"]["value"], back["r-3"]["recomm_id"]) == (-0.25, None)
    for event in back.values():  # no timestamp sent: now; created_at: now
        assert abs(datetime.fromisoformat(event["created_at"]).timestamp() - started) < 60
    assert abs(datetime.fromisoformat(back["r-3"]["timestamp"]).timestamp() - started) < 60
    assert Customer.objects.filter(organization=org, external_id="ana").count() == 1


def test_a_retry_racing_the_first_request_stores_each_event_once(postgres: None, api: Any, org: Any) -> None:
    response = api.put(ITEMS, [{"id": f"i{n}"} for n in range(5)], format="json")
    assert response.status_code == 200, response.content
    rows = [{"event_id": f"race-{n}", "customer": f"c{n % 7}", "item": f"i{n % 5}", "type": "view"} for n in range(300)]
    actor = Actor.system(org)
    outcome: dict[str, Any] = {}

    def retry() -> None:  # another connection: it can't see the first request's rows before its commit
        try:
            outcome["result"] = events_ingest(actor=actor, rows=rows).as_dict()
        except Exception as exc:  # noqa: BLE001  # reported below
            outcome["error"] = exc
        finally:
            connections.close_all()

    with transaction.atomic():
        first = events_ingest(actor=actor, rows=rows)
        racer = threading.Thread(target=retry)
        racer.start()
        time.sleep(1.0)  # the retry now waits on this transaction's unique keys
        assert racer.is_alive()
    racer.join(timeout=30)

    assert not racer.is_alive() and "error" not in outcome, outcome
    assert (first.created, first.duplicates) == (300, 0)
    assert outcome["result"] == {"created": 0, "updated": 0, "duplicates": 300, "refused": 0, "errors": []}
    assert Event.objects.filter(organization=org).count() == 300
    assert Customer.objects.filter(organization=org).count() == 7
    assert len(_ingest_audits(org)) == 1


def test_the_training_watermark_waits_for_a_batch_still_being_stored(postgres: None, api: Any, org: Any) -> None:
    """Ids are handed out at insert and committed in any order: the cut waits for the batch in flight.

    Without the wait, a batch holding lower ids than one already committed would fall below the
    cut unseen by the training read, and serving (which reads only events after the cut) would
    never count it.
    """
    from apps.retail.training_data import events_watermark

    response = api.put(ITEMS, [{"id": f"i{n}"} for n in range(3)], format="json")
    assert response.status_code == 200, response.content
    actor = Actor.system(org)
    events_ingest(actor=actor, rows=[{"event_id": "before", "customer": "c", "item": "i0", "type": "view"}])
    outcome: dict[str, Any] = {}

    def watermark() -> None:  # another connection, as the training job is
        try:
            outcome["cut"] = events_watermark(org=org)
        finally:
            connections.close_all()

    with transaction.atomic():  # a batch stored but not yet committed
        events_ingest(actor=actor, rows=[{"event_id": "in-flight", "customer": "c", "item": "i1", "type": "view"}])
        in_flight = Event.objects.get(event_id="in-flight").pk
        reader = threading.Thread(target=watermark)
        reader.start()
        time.sleep(1.0)
        assert reader.is_alive()  # waiting for this transaction, not cutting below or above it
    reader.join(timeout=30)

    assert outcome["cut"] == in_flight
