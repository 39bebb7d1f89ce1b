"""Every bad input to the retail API answers a clear 4xx in the error shape, and nothing is half-stored.

Batches are per row: a bad row is that row's error and the good rows of the same request are
stored; a request refused as a whole (not a list, too many rows, unparseable) stores nothing.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apps.retail.choices import MAX_BULK_ROWS
from apps.retail.models import Customer, Event, Item, RetailImport, TrafficSplit
from core.jobs.models import Job
from ml.models import RegisteredModel, TrainingRun
from tests.conftest import assert_error
from tests.retail.conftest import FAST_ALS

pytestmark = pytest.mark.django_db

ITEMS = "/api/v1/retail/items/"
EVENTS = "/api/v1/retail/events/"
RUNS = "/api/v1/retail/training-runs/"
PAST = (datetime.now(UTC) - timedelta(days=1)).isoformat()


def _catalogue(api: Any, *ids: str) -> None:
    response = api.put(ITEMS, [{"id": item_id, "title": item_id.upper()} for item_id in ids], format="json")
    assert response.status_code == 200, response.content


def _event(event_id: str, customer: str = "c1", item: str = "a", **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "customer": customer, "item": item, "type": "view", **extra}


def _ndjson(api: Any, lines: list[Any] | bytes) -> Any:
    body = lines if isinstance(lines, bytes) else "\n".join(json.dumps(line) for line in lines).encode()
    return api.post(EVENTS, body, content_type="application/x-ndjson")


def _csv(content: bytes, name: str = "rows.csv") -> io.BytesIO:
    buffer = io.BytesIO(content)
    buffer.name = name
    return buffer


def _recommended(api: Any, customer: str, **query: Any) -> list[str]:
    response = api.get(f"/api/v1/retail/customers/{customer}/recommendations/", {"n": 10, **query})
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


# --- PUT /items/ ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [({"id": "a"}, "not_a_list"), ("a", "not_a_list"), (7, "not_a_list"), ([], "empty_batch")],
)
def test_items_body_that_is_not_a_list_is_400(api, body, code):
    # when
    response = api.put(ITEMS, body, format="json")
    # then
    assert_error(response, 400, code)
    assert Item.objects.count() == 0


def test_more_items_than_the_bulk_limit_is_413(api):
    # given
    rows = [{"id": f"i{n}"} for n in range(MAX_BULK_ROWS + 1)]
    # when
    response = api.put(ITEMS, rows, format="json")
    # then
    assert_error(response, 413, "batch_too_large")
    assert Item.objects.count() == 0


def test_bad_item_rows_are_row_errors_and_good_rows_are_stored(api):
    # given
    rows = [
        {"id": "good-1", "title": "Good", "categories": ["a"], "attributes": {"x": 1}},
        {"title": "no id"},
        {"id": "bad-until", "available_until": "next tuesday"},
        {"id": "bad-categories", "categories": "shoes"},
        {"id": "bad-attributes", "attributes": ["not", "an", "object"]},
        {"id": "good-2", "available_until": PAST, "active": False},
        {"id": "good-1"},
        "not an object",
        {"id": "bad-active", "active": "yes"},
        {"id": "extra", "colour": "red"},
    ]
    # when
    response = api.put(ITEMS, rows, format="json")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["updated"], body["duplicates"], body["refused"]) == (2, 0, 0, 8)
    errors = {error["index"]: error for error in body["errors"]}
    assert sorted(errors) == [1, 2, 3, 4, 6, 7, 8, 9]
    assert set(errors[1]["fields"]) == {"id"}
    assert set(errors[2]["fields"]) == {"available_until"}
    assert set(errors[3]["fields"]) == {"categories"}
    assert set(errors[4]["fields"]) == {"attributes"}
    assert errors[6]["fields"] == {"id": "appears twice in this batch"}
    assert errors[4]["id"] == "bad-attributes"
    assert set(Item.objects.values_list("external_id", flat=True)) == {"good-1", "good-2"}


def test_when_every_item_row_is_refused_the_request_is_400_and_stores_nothing(api):
    # when
    response = api.put(ITEMS, [{"title": "no id"}, {"id": "x", "categories": "a"}], format="json")
    # then
    error = assert_error(response, 400, "all_rows_refused")
    assert set(error["fields"]) == {"0", "1"}
    assert Item.objects.count() == 0


def test_items_upsert_keeps_fields_a_row_leaves_out(api):
    # given
    api.put(ITEMS, [{"id": "a", "title": "Alpha", "categories": ["x"]}], format="json")
    # when
    response = api.put(ITEMS, [{"id": "a", "active": False}], format="json")
    # then
    assert (response.json()["created"], response.json()["updated"]) == (0, 1)
    item = api.get(f"{ITEMS}a/").json()
    assert (item["title"], item["categories"], item["active"]) == ("Alpha", ["x"], False)


# --- POST /events/ ----------------------------------------------------------------------------------


def test_events_as_json_array_and_as_ndjson(api):
    # given
    _catalogue(api, "a", "b")
    # when
    as_json = api.post(EVENTS, [_event("e1"), _event("e2", item="b")], format="json")
    as_ndjson = _ndjson(api, [_event("e3"), _event("e4", customer="c2", item="b")])
    # then
    assert as_json.status_code == 200, as_json.content
    assert as_ndjson.status_code == 200, as_ndjson.content
    assert as_json.json()["created"] == 2 and as_ndjson.json()["created"] == 2
    assert Event.objects.count() == 4


def test_ndjson_skips_blank_lines(api):
    _catalogue(api, "a")
    response = _ndjson(api, b'{"event_id": "e1", "customer": "c", "item": "a", "type": "view"}\n\n\n')
    assert response.status_code == 200, response.content
    assert response.json()["created"] == 1


def test_ndjson_lines_that_are_not_events_are_row_errors(api):
    # given: NaN is legal for Python's json module, a bare number a valid JSON line
    _catalogue(api, "a")
    body = (
        b'{"event_id": "e1", "customer": "c", "item": "a", "type": "view"}\n'
        b'{"event_id": "e2", "customer": "c", "item": "a", "type": "rating", "value": NaN}\n'
        b"5\n"
    )
    # when
    response = _ndjson(api, body)
    # then
    assert response.status_code == 200, response.content
    errors = {error["index"]: error["fields"] for error in response.json()["errors"]}
    assert set(errors) == {1, 2} and "value" in errors[1] and "non_field_errors" in errors[2]
    assert Event.objects.count() == 1


def test_a_retried_batch_is_counted_as_duplicates_and_stored_once(api):
    # given
    _catalogue(api, "a", "b")
    batch = [_event("e1"), _event("e2", item="b"), _event("e3", customer="c2")]
    first = api.post(EVENTS, batch, format="json").json()
    # when
    retry = api.post(EVENTS, batch, format="json")
    again_as_ndjson = _ndjson(api, [*batch, _event("e4")])
    # then
    assert first["created"] == 3
    assert retry.status_code == 200, retry.content
    assert (retry.json()["created"], retry.json()["duplicates"], retry.json()["refused"]) == (0, 3, 0)
    assert (again_as_ndjson.json()["created"], again_as_ndjson.json()["duplicates"]) == (1, 3)
    assert Event.objects.count() == 4


def test_the_same_event_id_twice_in_one_batch_is_stored_once(api):
    _catalogue(api, "a")
    body = api.post(EVENTS, [_event("e1"), _event("e1")], format="json").json()
    assert (body["created"], body["duplicates"]) == (1, 1)
    assert Event.objects.count() == 1


def test_an_unknown_item_is_that_rows_error_not_the_batchs(api):
    # given
    _catalogue(api, "a")
    # when
    response = api.post(EVENTS, [_event("e1"), _event("e2", item="ghost")], format="json")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["refused"]) == (1, 1)
    assert body["errors"] == [
        {"index": 1, "id": "e2", "fields": {"item": "unknown item 'ghost': add it to the catalogue"}}
    ]
    assert list(Event.objects.values_list("event_id", flat=True)) == ["e1"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": 1700000000}, "timestamp"),
        ({"timestamp": "0001-01-01T00:00:00Z"}, "timestamp"),
        ({"customer": None}, "customer"),
        ({"customer": ""}, "customer"),
        ({"customer": "x" * 201}, "customer"),
        ({"event_id": None}, "event_id"),
        ({"value": "five"}, "value"),
        ({"value": True}, "value"),
        ({"value": 1e12}, "value"),
        ({"type": "rating"}, "value"),
        ({"type": "Purchase!"}, "type"),
        ({"recomm_id": "not-a-uuid"}, "recomm_id"),
        ({"colour": "red"}, "non_field_errors"),
    ],
)
def test_bad_event_fields_are_row_errors(api, changes, field):
    # given
    _catalogue(api, "a")
    bad = {**_event("bad"), **changes}
    # when
    response = api.post(EVENTS, [_event("good"), bad], format="json")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["refused"]) == (1, 1)
    assert field in body["errors"][0]["fields"], body["errors"]
    assert body["errors"][0]["index"] == 1
    assert list(Event.objects.values_list("event_id", flat=True)) == ["good"]


def test_a_missing_customer_field_is_a_row_error(api):
    _catalogue(api, "a")
    row = _event("e1")
    del row["customer"]
    response = api.post(EVENTS, [_event("e0"), row], format="json")
    assert response.json()["errors"][0]["fields"].keys() == {"customer"}


def test_when_every_event_is_refused_the_request_is_400_and_stores_nothing(api):
    # given
    _catalogue(api, "a")
    # when
    response = api.post(EVENTS, [_event("e1", item="ghost"), {"event_id": "e2"}], format="json")
    # then
    assert_error(response, 400, "all_rows_refused")
    assert Event.objects.count() == 0
    assert Customer.objects.count() == 0


@pytest.mark.parametrize("as_ndjson", [False, True])
def test_more_events_than_the_bulk_limit_is_413(api, as_ndjson):
    # given
    _catalogue(api, "a")
    rows = [_event(f"e{n}") for n in range(MAX_BULK_ROWS + 1)]
    # when
    response = _ndjson(api, rows) if as_ndjson else api.post(EVENTS, rows, format="json")
    # then
    assert_error(response, 413, "batch_too_large")
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"event_id": "e1", "customer": "c", "item": "a", "type": "view"}\n{"event_id": oops}\n', "ndjson"),
        (b'[{"event_id": "e1", "customer": "c", "item": "a", "type": "view"},', "json"),
        (b"\xff\xfe not text", "ndjson"),
    ],
)
def test_malformed_json_or_ndjson_is_400_and_stores_nothing(api, body, content_type):
    # given
    _catalogue(api, "a")
    # when
    response = api.post(
        EVENTS, body, content_type="application/x-ndjson" if content_type == "ndjson" else "application/json"
    )
    # then
    assert_error(response, 400)
    assert Event.objects.count() == 0


def test_events_body_that_is_not_a_list_is_400(api):
    _catalogue(api, "a")
    assert_error(api.post(EVENTS, _event("e1"), format="json"), 400, "not_a_list")
    assert Event.objects.count() == 0


def test_customers_are_created_on_first_sight_and_their_events_listed(api):
    # given
    _catalogue(api, "a", "b")
    # when
    api.post(EVENTS, [_event("e1", customer="new-1"), _event("e2", customer="new-2", item="b")], format="json")
    api.post(EVENTS, [_event("e3", customer="new-1", item="b", timestamp=PAST)], format="json")
    # then
    assert set(Customer.objects.values_list("external_id", flat=True)) == {"new-1", "new-2"}
    listed = api.get(EVENTS, {"customer": "new-1"}).json()
    assert listed["count"] == 2
    assert {event["event_id"] for event in listed["results"]} == {"e1", "e3"}
    assert {event["customer"] for event in listed["results"]} == {"new-1"}
    customers = api.get("/api/v1/retail/customers/").json()
    assert {c["id"]: c["events"] for c in customers["results"]} == {"new-1": 2, "new-2": 1}
    assert_error(api.get(EVENTS, {"recomm_id": "nope"}), 400)


# --- PATCH / DELETE /items/{id}/ ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"categories": "shoes"}, "categories"),
        ({"attributes": [1]}, "attributes"),
        ({"available_until": "soon"}, "available_until"),
        ({"active": "no"}, "active"),
        ({"title": 5}, "title"),
        ({"colour": "red"}, "non_field_errors"),
    ],
)
def test_patch_with_bad_fields_is_400_and_changes_nothing(api, changes, field):
    # given
    api.put(ITEMS, [{"id": "a", "title": "Alpha", "categories": ["x"]}], format="json")
    # when
    response = api.patch(f"{ITEMS}a/", {"title": "Changed", **changes}, format="json")
    # then
    error = assert_error(response, 400)
    assert field in error["fields"]
    item = api.get(f"{ITEMS}a/").json()
    assert (item["title"], item["categories"]) == ("Alpha", ["x"])


def test_patch_not_an_object_is_400(api):
    _catalogue(api, "a")
    assert_error(api.patch(f"{ITEMS}a/", ["title"], format="json"), 400, "not_an_object")


def test_patch_or_delete_of_an_unknown_item_is_404(api):
    assert_error(api.patch(f"{ITEMS}ghost/", {"title": "x"}, format="json"), 404)
    assert_error(api.delete(f"{ITEMS}ghost/"), 404)
    assert_error(api.get(f"{ITEMS}ghost/similar/"), 404)


def test_delete_then_get_is_404_and_the_items_events_go_with_it(api):
    # given
    _catalogue(api, "a", "b")
    api.post(EVENTS, [_event("e1"), _event("e2", item="b")], format="json")
    # when
    response = api.delete(f"{ITEMS}a/")
    # then
    assert response.status_code == 204
    assert_error(api.get(f"{ITEMS}a/"), 404)
    assert_error(api.delete(f"{ITEMS}a/"), 404)
    assert list(Event.objects.values_list("event_id", flat=True)) == ["e2"]


# --- POST /training-runs/ ----------------------------------------------------------------------------


def _nothing_created() -> None:
    assert TrainingRun.objects.count() == 0
    assert Job.objects.count() == 0
    assert RegisteredModel.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        {"algorithm": "deep-learning"},
        {"algorithm": "als", "params": "fast"},
        {"algorithm": "als", "params": [1, 2]},
        {"algorithm": "als", "params": {"factors": "many"}},
        {"algorithm": "als", "params": {"no_such_param": 1}},
        {"algorithm": "als", "params": {"refit": "yes"}},
        {"algorithm": "als", "search": {"factors": 32}},
        {"algorithm": "als", "search": {"factors": []}},
        {"algorithm": "als", "search": {}},
        {"algorithm": "als", "search": "grid"},
        {"algorithm": "als", "search": {"factors": ["x"]}},
        {"algorithm": "auto", "search": {"factors": [16, 32]}},
        {"algorithm": "als", "since": "last week"},
        {"algorithm": "als", "promote": "maybe"},
        {"algorithm": "als", "model": ""},
    ],
)
def test_bad_training_requests_are_400_and_create_nothing(api, body):
    # given some history, so only the request is wrong
    _catalogue(api, "a")
    api.post(EVENTS, [_event("e1")], format="json")
    Job.objects.all().delete()
    # when
    response = api.post(RUNS, body, format="json")
    # then
    assert_error(response, 400)
    _nothing_created()


def test_too_big_a_search_grid_is_400(api):
    _catalogue(api, "a")
    api.post(EVENTS, [_event("e1")], format="json")
    grid = {"factors": list(range(8, 40)), "regularization": [0.01, 0.02, 0.05, 0.1], "iterations": [5, 10]}
    assert_error(api.post(RUNS, {"algorithm": "als", "search": grid}, format="json"), 400)
    _nothing_created()


@pytest.mark.django_db(transaction=True)
def test_training_without_any_events_is_400_and_creates_nothing(api):
    # given a catalogue but no history
    _catalogue(api, "a")
    # when
    response = api.post(RUNS, {"algorithm": "als", "params": FAST_ALS}, format="json")
    # then
    assert_error(response, 400, "no_data")
    _nothing_created()


def test_training_needs_the_retail_scope(api_client_for, org):
    finance_key = api_client_for(org, scopes=("finance",))
    assert_error(finance_key.post(RUNS, {"algorithm": "als"}, format="json"), 403)
    _nothing_created()


# --- Recommendation queries and the traffic split ----------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {"n": 0},
        {"n": 10_000},
        {"n": "ten"},
        {"offset": -1},
        {"offset": 10_001},
        {"offset": "x"},
        {"alias": "Not An Alias"},
        {"exclude": ",".join(f"i{n}" for n in range(1001))},
    ],
)
def test_bad_recommendation_queries_are_400(api, query):
    _catalogue(api, "a")
    assert_error(api.get("/api/v1/retail/customers/c1/recommendations/", query), 400)
    assert_error(api.get(f"{ITEMS}a/similar/", query), 400)


@pytest.mark.parametrize("query", [{"include_seen": "perhaps"}, {"explain": "maybe"}])
def test_bad_customer_only_flags_are_400(api, query):
    assert_error(api.get("/api/v1/retail/customers/c1/recommendations/", query), 400)


@pytest.mark.parametrize("query", [{"model": "no-such-model"}, {"alias": "staging"}])
def test_an_unknown_model_or_alias_is_404(api, query):
    # given no model at all: without a model or alias named, the fallback answers
    _catalogue(api, "a")
    assert api.get("/api/v1/retail/customers/c1/recommendations/").status_code == 200
    # when / then
    assert_error(api.get("/api/v1/retail/customers/c1/recommendations/", query), 404)
    assert_error(api.get(f"{ITEMS}a/similar/", query), 404)
    assert_error(api.post("/api/v1/retail/recommendations/batch/", {"customers": ["c1"], **query}, format="json"), 404)


def test_traffic_split_of_an_unknown_model_is_404(api):
    assert_error(api.put("/api/v1/retail/models/ghost/traffic-split/", {"production": 100}, format="json"), 404)
    assert_error(api.get("/api/v1/retail/models/ghost/traffic-split/"), 404)


@pytest.mark.django_db(transaction=True)
def test_bad_traffic_splits_are_400_and_offset_past_the_end_is_empty(api, trained):
    url = "/api/v1/retail/models/recommendations/traffic-split/"
    # given: the model has `production` only
    for weights, code in (
        ({"production": 90}, "invalid"),
        ({"production": 60, "staging": 60}, "invalid"),
        ({"production": 110, "staging": -10}, "invalid"),
        ({"production": 50.5, "staging": 49.5}, "invalid"),
        ({"production": "100"}, "invalid"),
        ({"production": 90, "staging": 10}, "unknown_alias"),
        ({"production": 50, "staging": 25, "canary": 25}, "unknown_alias"),
    ):
        # when / then
        assert_error(api.put(url, weights, format="json"), 400, code)
    assert_error(api.put(url, [["production", 100]], format="json"), 400, "not_an_object")
    assert TrafficSplit.objects.count() == 0
    assert api.get(url).json()["weights"] == {}
    # a valid split is stored, `{}` removes it
    assert api.put(url, {"production": 100}, format="json").json()["weights"] == {"production": 100}
    assert api.put(url, {}, format="json").json()["weights"] == {}
    assert TrafficSplit.objects.count() == 0
    # far past the end of the catalogue: an empty page, not an error
    far = api.get("/api/v1/retail/customers/u1/recommendations/", {"n": 10, "offset": 10_000})
    assert far.status_code == 200, far.content
    assert far.json()["items"] == []
    similar = api.get(f"{ITEMS}m1/similar/", {"n": 10, "offset": 10_000})
    assert similar.status_code == 200 and similar.json()["items"] == []


# --- What is never shown -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_expired_and_deactivated_items_are_never_recommended(api, trained):
    # given the top items of a customer, of the cold fallback and of similar items
    personal = _recommended(api, "u1")[:2]
    popular = _recommended(api, "nobody")[:2]
    similar = [item["id"] for item in api.get(f"{ITEMS}m1/similar/", {"n": 10}).json()["items"]][:2]
    assert len(personal) == len(popular) == len(similar) == 2
    hidden = {*personal, *popular, *similar}
    # when half are deactivated and half expire
    for index, item_id in enumerate(sorted(hidden)):
        changes = {"active": False} if index % 2 else {"available_until": PAST}
        assert api.patch(f"{ITEMS}{item_id}/", changes, format="json").status_code == 200
    # then none of them appears anywhere
    assert not hidden & set(_recommended(api, "u1", n=50))
    cold = api.get("/api/v1/retail/customers/nobody/recommendations/", {"n": 50}).json()["items"]
    assert not hidden & {item["id"] for item in cold}
    assert {item["source"] for item in cold} <= {"popular", "latest"}
    similar_now = api.get(f"{ITEMS}m1/similar/", {"n": 50}).json()["items"]
    assert not hidden & {item["id"] for item in similar_now}
    batch = api.post("/api/v1/retail/recommendations/batch/", {"customers": ["u1", "nobody"], "n": 50}, format="json")
    assert not hidden & {item["id"] for answer in batch.json()["results"].values() for item in answer["items"]}


@pytest.mark.django_db(transaction=True)
def test_a_new_event_changes_recommendations_at_once(api, trained):
    # given
    before = _recommended(api, "u1")
    bought = before[0]
    # when u1 buys the top recommendation (no retraining)
    response = api.post(
        EVENTS, [{"event_id": "fresh-1", "customer": "u1", "item": bought, "type": "purchase"}], format="json"
    )
    assert response.json()["created"] == 1
    # then it is seen, so no longer recommended, and the list changed
    after = _recommended(api, "u1")
    assert bought not in after
    assert after != before
    assert bought in _recommended(api, "u1", include_seen="true", n=50)


# --- CSV imports -----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_csv_import_of_items_and_events_stores_the_rows(api):
    # given
    items_csv = (
        b"id,title,categories,attributes,active,available_until\n"
        b'a,Alpha,shoes|red,"{""size"": 42}",true,\n'
        b"b,Beta,,,false,2030-01-01T00:00:00Z\n"
        b"c,Gamma,,,,not-a-date\n"
    )
    events_csv = (
        b"event_id,customer,item,type,value,timestamp\n"
        b"e1,c1,a,rating,4.5,2026-01-01T00:00:00Z\n"
        b"e2,c2,b,view,,\n"
        b"e3,c1,ghost,view,,\n"
        b"e1,c1,a,rating,4.5,2026-01-01T00:00:00Z\n"
    )
    # when
    items = api.post("/api/v1/retail/items/import/", {"file": _csv(items_csv)}, format="multipart")
    events = api.post("/api/v1/retail/events/import/", {"file": _csv(events_csv)}, format="multipart")
    # then
    assert items.status_code == 202, items.content
    assert events.status_code == 202, events.content
    item_import = api.get(f"/api/v1/retail/imports/{items.json()['id']}/").json()
    assert item_import["job"]["status"] == "succeeded", item_import
    assert (item_import["target"], item_import["rows"], item_import["created"], item_import["refused"]) == (
        "items",
        3,
        2,
        1,
    )
    assert item_import["errors"][0]["index"] == 2 and "available_until" in item_import["errors"][0]["fields"]
    alpha = api.get(f"{ITEMS}a/").json()
    assert (alpha["categories"], alpha["attributes"], alpha["active"]) == (["shoes", "red"], {"size": 42}, True)
    assert api.get(f"{ITEMS}b/").json()["active"] is False
    event_import = api.get(f"/api/v1/retail/imports/{events.json()['id']}/").json()
    assert event_import["job"]["status"] == "succeeded", event_import
    assert (event_import["rows"], event_import["created"], event_import["duplicates"], event_import["refused"]) == (
        4,
        2,
        1,
        1,
    )
    assert set(Event.objects.values_list("event_id", flat=True)) == {"e1", "e2"}
    assert api.get("/api/v1/retail/imports/").json()["count"] == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("target", "content", "code"),
    [
        ("items", b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary", "bad_csv"),
        ("items", b"title,categories\nAlpha,shoes\n", "bad_csv"),
        ("items", b"", "invalid"),
        ("events", b"event_id,customer,item\ne1,c1,a\n", "bad_csv"),
        ("events", b"id,title\na,Alpha\n", "bad_csv"),
    ],
)
def test_a_bad_csv_is_400_and_starts_no_import(api, target, content, code):
    # when
    response = api.post(f"/api/v1/retail/{target}/import/", {"file": _csv(content)}, format="multipart")
    # then
    error = assert_error(response, 400, code)
    assert "file" in error["fields"]
    assert RetailImport.objects.count() == 0
    assert Job.objects.count() == 0
    assert Item.objects.count() == Event.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_csv_that_turns_out_malformed_fails_its_import_and_stores_nothing_of_that_chunk(api):
    # given a good header and first 64 kB, then a byte that is not UTF-8 (before the first chunk ends)
    good = b"".join(b"i%04d,A perfectly ordinary catalogue title\n" % n for n in range(3000))
    content = b"id,title\n" + good + b"bad,\xff\xfe\n"
    assert len(good) > 64 * 1024
    # when
    response = api.post("/api/v1/retail/items/import/", {"file": _csv(content)}, format="multipart")
    # then the upload is accepted, the job fails and says why
    assert response.status_code == 202, response.content
    record = api.get(f"/api/v1/retail/imports/{response.json()['id']}/").json()
    assert record["job"]["status"] == "failed", record
    assert "malformed" in record["job"]["error"]
    assert Item.objects.count() == 0


def test_an_upload_over_the_body_limit_is_413(api, settings):
    settings.API_MAX_UPLOAD_BYTES = 1_000
    content = b"id,title\n" + b"".join(b"i%04d,Title\n" % n for n in range(200))
    response = api.post("/api/v1/retail/items/import/", {"file": _csv(content)}, format="multipart")
    assert_error(response, 413, "too_large")
    assert RetailImport.objects.count() == 0


def test_an_import_without_a_file_is_400(api):
    assert_error(api.post("/api/v1/retail/items/import/", {}, format="multipart"), 400)
    assert_error(api.post("/api/v1/retail/events/import/", {"file": "text"}, format="multipart"), 400)
    assert RetailImport.objects.count() == 0
