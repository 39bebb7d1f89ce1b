"""Serving from a version's stored interactions plus the events since: the same rows and answers as
reading every customer's whole history, and the whole history wherever that would not hold.

A version keeps the rows it was trained on, up to a clean cut of the event ids
(`training_data.events_watermark`); serving reads only the events after it (`serving.Histories`).
These tests build both ways on real MovieLens rows and compare them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from apps.retail import selectors, serving
from apps.retail.ml import IdMaps
from apps.retail.models import Event
from core.tenancy.actors import Actor
from ml import runtime
from ml.models import ModelVersion

pytestmark = pytest.mark.django_db(transaction=True)

CUSTOMERS = [f"u{n}" for n in range(1, 31)]


def _version() -> ModelVersion:
    return ModelVersion.objects.get(registered_model__name="recommendations", number=1)


def _whole(ids: IdMaps) -> IdMaps:
    """The same id maps without the stored rows: serving then reads whole histories."""
    return dataclasses.replace(ids, seen=None, history=None)


def _post(api: Any, events: list[dict[str, Any]]) -> None:
    response = api.post("/api/v1/retail/events/", events, format="json")
    assert response.status_code == 200 and not response.json()["refused"], response.content


def _rated(trained: dict[str, Any], customer: str) -> list[str]:
    return [event["item"] for event in trained["events"] if event["customer"] == customer]


def _newer_events(api: Any, trained: dict[str, Any]) -> None:
    """After training: a purchase, a rating that cancels an earlier one, a view of a new film, a new customer."""
    api.put("/api/v1/retail/items/", [{"id": "brand-new", "title": "Brand new"}], format="json")
    u2_first = _rated(trained, "u2")[0]
    u2_stars = sum(e["value"] for e in trained["events"] if e["customer"] == "u2" and e["item"] == u2_first)
    _post(
        api,
        [
            {"event_id": "s-1", "customer": "u1", "item": _rated(trained, "u5")[0], "type": "purchase"},
            {"event_id": "s-2", "customer": "u2", "item": u2_first, "type": "rating", "value": -u2_stars},
            {"event_id": "s-3", "customer": "u3", "item": "brand-new", "type": "view"},
            {"event_id": "s-4", "customer": "newcomer", "item": _rated(trained, "u7")[0], "type": "cart"},
        ],
    )


def test_stored_rows_plus_newer_events_are_the_whole_histories(api: Any, trained: dict[str, Any], org: Any) -> None:
    # given: a version that stored its rows, and events of four customers after it was trained
    ids = runtime.preprocessor(_version())
    assert ids.seen is not None and ids.history is not None
    assert ids.history["through_event"] == Event.objects.filter(organization=org).latest("id").pk
    _newer_events(api, trained)
    current = selectors.serving_settings(org=org)
    customers = [*CUSTOMERS, "newcomer", "nobody"]

    # when
    fast = serving.Histories(org, current, ids, customers)
    whole = serving.Histories(org, current, _whole(ids), customers)

    # then: the same rows and seen items; the stored factors stand for exactly the customers whose row
    # is unchanged (u3's new film is not in the version's item space, so their row is the stored one)
    assert fast.rows is not None and whole.rows is not None
    np.testing.assert_allclose(fast.rows.toarray(), whole.rows.toarray(), rtol=1e-6)
    assert [fast.seen(p) for p in range(len(customers))] == [whole.seen(p) for p in range(len(customers))]
    assert "brand-new" in fast.seen(2) and _rated(trained, "u2")[0] not in fast.seen(1)
    unchanged = [customer not in ("u1", "u2", "newcomer", "nobody") for customer in customers]
    assert fast.stored.tolist() == unchanged
    assert not whole.stored.any()


def test_answers_from_stored_rows_equal_answers_from_whole_histories(
    api: Any, trained: dict[str, Any], org: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    _newer_events(api, trained)
    actor = Actor.system(org)
    filters = serving.Filters(n=10)

    def answers() -> tuple[list[list[str]], dict[str, list[str]]]:
        single = [
            [item.id for item in serving.customer_recommend(actor=actor, customer=c, filters=filters).items]
            for c in [*CUSTOMERS, "newcomer"]
        ]
        batch = serving.customers_recommend_batch(actor=actor, customers=[*CUSTOMERS, "newcomer"], filters=filters)
        return single, {customer: [item.id for item in answer.items] for customer, answer in batch}

    # when: once as served, once with the stored rows ignored
    fast = answers()
    monkeypatch.setattr(serving, "snapshot_after", lambda ids, current: None)
    whole = answers()

    # then
    assert fast == whole
    assert fast[0][0] == fast[1]["u1"]


def test_whole_histories_after_new_weights_a_deleted_item_or_for_a_since_window(
    api: Any, trained: dict[str, Any], org: Any, train: Any
) -> None:
    ids = runtime.preprocessor(_version())
    assert serving.snapshot_after(ids, selectors.serving_settings(org=org)) == ids.history["through_event"]

    # new event weights: the stored confidences were summed with the old ones
    response = api.put("/api/v1/retail/settings/", {"event_weights": {"purchase": 9}}, format="json")
    assert response.status_code == 200, response.content
    assert serving.snapshot_after(ids, selectors.serving_settings(org=org)) is None
    api.put("/api/v1/retail/settings/", {"event_weights": {"purchase": 5}}, format="json")
    assert serving.snapshot_after(ids, selectors.serving_settings(org=org)) is not None

    # an item deleted with its events: the stored rows still hold them
    assert api.delete(f"/api/v1/retail/items/{_rated(trained, 'u1')[0]}/").status_code == 204
    assert serving.snapshot_after(ids, selectors.serving_settings(org=org)) is None
    train(promote=False)
    newer = runtime.preprocessor(ModelVersion.objects.get(registered_model__name="recommendations", number=2))
    assert serving.snapshot_after(newer, selectors.serving_settings(org=org)) == newer.history["through_event"]

    # a version trained on a window: customers' older events are not in its rows
    train(promote=False, since="2000-01-01T00:00:00Z")
    windowed = runtime.preprocessor(ModelVersion.objects.get(registered_model__name="recommendations", number=3))
    assert windowed.history is None and windowed.seen is None


def test_a_snapshot_with_a_pair_summing_to_nothing_stores_no_rows(api: Any, trained: dict[str, Any], train: Any):
    # given: a customer whose ratings of one film cancel out (the pair is no interaction)
    item = _rated(trained, "u9")[0]
    stars = sum(e["value"] for e in trained["events"] if e["customer"] == "u9" and e["item"] == item)
    _post(api, [{"event_id": "cancel", "customer": "u9", "item": item, "type": "rating", "value": -stars}])

    # when
    train(promote=False)

    # then: stored row + newer events would bring the pair back with the next event; serving reads whole
    version = ModelVersion.objects.get(registered_model__name="recommendations", number=2)
    assert runtime.preprocessor(version).history is None
    assert version.input_schema["pairs_not_positive"] == 1
