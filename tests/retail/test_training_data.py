"""The retail training-data loader and the popularity baseline's top-k, against independent oracles.

- `interactions_load` on real MovieLens rows (loaded through the API) equals a pandas aggregation
  of the same events: the confidence per (customer, item) with the organization's event weights,
  the first event time in whole epoch seconds (truncated), the `since` filter, pairs of confidence
  <= 0 left out, customers and items numbered by ascending primary key.
- `top_k_excluding` (vectorised) equals the plain per-row loop on random CSR matrices and on the
  real train matrix.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from apps.retail.choices import DEFAULT_CUSTOM_WEIGHT, DEFAULT_EVENT_WEIGHTS, VALUE_WEIGHTED_TYPES
from apps.retail.evaluation import leave_last_out, popularity_scores, top_k_excluding
from apps.retail.models import Customer, Event, Item
from apps.retail.training_data import interactions_load
from tests.retail.conftest import load, movielens_subset

pytestmark = pytest.mark.django_db

RETAIL = "/api/v1/retail"


# --- Oracles ----------------------------------------------------------------------------------------


def _epoch(timestamp: str | datetime) -> int:
    moment = datetime.fromisoformat(timestamp) if isinstance(timestamp, str) else timestamp
    return int(moment.timestamp())  # whole seconds, truncated


def expected_pairs(
    events: list[dict[str, Any]], weights: dict[str, float], since: datetime | None = None
) -> pd.DataFrame:
    """(customer, item) → weight, first_seen from the raw event rows, in pandas (positive weights)."""
    frame = pd.DataFrame(events)
    frame["moment"] = [datetime.fromisoformat(ts) for ts in frame["timestamp"]]
    if since is not None:
        frame = frame[frame["moment"] >= since]
    type_weight = frame["type"].map(lambda name: float(weights.get(name, DEFAULT_CUSTOM_WEIGHT)))
    value = frame["value"].astype(float).fillna(1.0) if "value" in frame else 1.0
    frame["weight"] = np.where(frame["type"].isin(list(VALUE_WEIGHTED_TYPES)), value * type_weight, type_weight)
    frame["first_seen"] = [_epoch(moment) for moment in frame["moment"]]
    grouped = frame.groupby(["customer", "item"]).agg(weight=("weight", "sum"), first_seen=("first_seen", "min"))
    return grouped[grouped["weight"] > 0]


def loaded_pairs(interactions: Any) -> pd.DataFrame:
    table = interactions.table
    frame = pd.DataFrame(
        {
            "customer": np.array(interactions.customer_ids, dtype=object)[table.customers],
            "item": np.array(interactions.item_ids, dtype=object)[table.items],
            "weight": table.weights,
            "first_seen": table.first_seen,
        }
    )
    return frame.set_index(["customer", "item"]).sort_index()


def assert_matches(interactions: Any, expected: pd.DataFrame, org: Any) -> None:
    table = interactions.table
    assert table.customers.dtype == np.int32 and table.items.dtype == np.int32
    assert table.weights.dtype == np.float32 and table.first_seen.dtype == np.int64
    got = loaded_pairs(interactions)
    expected = expected.sort_index()
    assert list(got.index) == list(expected.index)
    np.testing.assert_allclose(got["weight"].to_numpy(), expected["weight"].to_numpy(), rtol=1e-6)
    assert got["weight"].to_numpy().tolist() == expected["weight"].to_numpy().astype(np.float32).tolist()
    assert got["first_seen"].to_numpy().tolist() == expected["first_seen"].to_numpy().tolist()
    # customers and items are numbered by ascending primary key, among those with a pair
    customers = set(expected.index.get_level_values("customer"))
    items = set(expected.index.get_level_values("item"))
    by_pk = list(Customer.objects.filter(organization=org).order_by("pk").values_list("external_id", flat=True))
    assert interactions.customer_ids == [name for name in by_pk if name in customers]
    by_pk = list(Item.objects.filter(organization=org).order_by("pk").values_list("external_id", flat=True))
    assert interactions.item_ids == [name for name in by_pk if name in items]
    assert table.n_customers == len(customers) and table.n_items == len(items)


# --- The loader -------------------------------------------------------------------------------------


def test_loader_equals_pandas_aggregation_of_movielens(api, shop, org):
    # given 120 MovieLens customers' ratings (timestamps with microseconds), loaded through the API
    events = shop["events"]
    assert any(datetime.fromisoformat(event["timestamp"]).microsecond for event in events)
    # when
    interactions = interactions_load(org=org)
    # then: rating weight 1 x stars, the earliest time in whole seconds, numbered by primary key
    assert_matches(interactions, expected_pairs(events, DEFAULT_EVENT_WEIGHTS), org)
    assert interactions.description["events"] == len(events)
    assert interactions.description["interactions"] == len(interactions.table)
    assert interactions.description["since"] is None
    assert interactions.description["event_weights"] == DEFAULT_EVENT_WEIGHTS
    # and the matrix puts each confidence at (customer row, item row)
    matrix = interactions.table.matrix()
    customer = interactions.customer_ids.index(events[0]["customer"])
    item = interactions.item_ids.index(events[0]["item"])
    assert matrix[customer, item] == pytest.approx(
        expected_pairs(events, DEFAULT_EVENT_WEIGHTS).loc[(events[0]["customer"], events[0]["item"]), "weight"]
    )


def test_loader_uses_the_organizations_event_weights(api, shop, org):
    # given other weights, and purchases, views, a custom type, a zero-weight type and negative
    # ratings on top of the ratings (some earlier than the pair's first rating, at fractional seconds)
    weights = {"purchase": 4.0, "view": 0.5, "rating": 2.0, "wish": 0.0}
    response = api.put(f"{RETAIL}/settings/", {"event_weights": weights}, format="json")
    assert response.status_code == 200, response.content[:500]
    ratings = shop["events"]
    extra: list[dict[str, Any]] = []
    for n, event in enumerate(ratings[:300]):
        moment = datetime.fromisoformat(event["timestamp"]) - timedelta(seconds=n % 7, microseconds=250_000 * (n % 4))
        kind = ("purchase", "view", "gift", "wish", "rating")[n % 5]
        row = {
            "event_id": f"extra-{n}",
            "customer": event["customer"],
            "item": event["item"],
            "type": kind,
            "timestamp": moment.isoformat(),
        }
        if kind == "rating":
            row["value"] = -event["value"] - (1.0 if n % 2 else 0.0)  # the pair's sum at 0 or below
        extra.append(row)
    # a pair only of zero-weight events, and an event of a new customer on a new item
    extra.append(
        {"event_id": "wish-only", "customer": "u1", "item": ratings[-1]["item"], "type": "wish", "timestamp": None}
    )
    api.put(f"{RETAIL}/items/", [{"id": "new-film", "title": "New"}], format="json")
    extra.append(
        {
            "event_id": "newcomer",
            "customer": "newcomer",
            "item": "new-film",
            "type": "view",
            "timestamp": "2001-02-03T04:05:06.999999+00:00",
        }
    )
    extra = [{key: value for key, value in row.items() if value is not None} for row in extra]
    load(api, [], extra)
    extra[-2]["timestamp"] = Event.objects.get(event_id="wish-only").timestamp.isoformat()
    events = ratings + extra
    effective = {**DEFAULT_EVENT_WEIGHTS, **weights}
    # when
    interactions = interactions_load(org=org)
    # then
    expected = expected_pairs(events, effective)
    assert ("u1", ratings[-1]["item"]) not in expected.index  # zero weight: left out
    assert len(expected) < len({(event["customer"], event["item"]) for event in events})  # some sums <= 0
    assert expected.loc[("newcomer", "new-film"), "first_seen"] == 981173106
    assert_matches(interactions, expected, org)
    assert interactions.description["event_weights"] == effective


def test_loader_since_keeps_only_later_events(api, shop, org):
    events = shop["events"]
    moments = sorted(datetime.fromisoformat(event["timestamp"]) for event in events)
    since = moments[len(moments) // 2]
    interactions = interactions_load(org=org, since=since)
    expected = expected_pairs(events, DEFAULT_EVENT_WEIGHTS, since=since)
    assert 0 < len(expected) < len(events)
    assert_matches(interactions, expected, org)
    assert interactions.description["since"] == since.isoformat()
    assert interactions.description["events"] == sum(1 for moment in moments if moment >= since)
    assert interactions.fingerprint != interactions_load(org=org).fingerprint
    assert interactions.fingerprint == interactions_load(org=org, since=since).fingerprint


def test_loader_on_an_organization_without_events(org):
    interactions = interactions_load(org=org)
    table = interactions.table
    assert len(table) == 0 and table.n_customers == 0 and table.n_items == 0
    assert table.customers.dtype == np.int32 and table.items.dtype == np.int32
    assert table.weights.dtype == np.float32 and table.first_seen.dtype == np.int64
    assert interactions.customer_ids == [] and interactions.item_ids == []
    assert interactions.description["events"] == 0 and interactions.description["latest_event"] is None


def test_loader_on_a_larger_movielens_subset_pages_through_chunks(api, org, monkeypatch):
    # given more aggregated rows than one chunk
    from apps.retail import training_data

    items, events = movielens_subset(customers=60)
    load(api, items, events)
    monkeypatch.setattr(training_data, "CHUNK", 997)
    assert len(events) > 3 * 997
    # when / then
    assert_matches(interactions_load(org=org), expected_pairs(events, DEFAULT_EVENT_WEIGHTS), org)


def test_loader_interval_boundaries_are_whole_epoch_seconds(api, org):
    api.put(f"{RETAIL}/items/", [{"id": "a"}, {"id": "b"}], format="json")
    stamps = {
        "a": ["2024-03-01T12:00:00.999999+00:00", "2024-03-01T12:00:01+00:00"],
        "b": ["2024-03-01T14:30:00+02:00", "2024-03-01T12:30:00.000001+00:00"],  # the same instant ± 1 µs
    }
    rows = [
        {"event_id": f"{item}{n}", "customer": "c", "item": item, "type": "view", "timestamp": stamp}
        for item, item_stamps in stamps.items()
        for n, stamp in enumerate(item_stamps)
    ]
    load(api, [], rows)
    interactions = interactions_load(org=org)
    got = loaded_pairs(interactions)
    assert got.loc[("c", "a"), "first_seen"] == _epoch(datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC))
    assert got.loc[("c", "b"), "first_seen"] == _epoch(datetime(2024, 3, 1, 12, 30, 0, tzinfo=UTC))
    assert got["weight"].tolist() == [2.0, 2.0]


# --- top_k_excluding --------------------------------------------------------------------------------


def top_k_loop(scores: np.ndarray, seen: sp.csr_matrix, k: int) -> np.ndarray:
    """The plain per-row version (the reference)."""
    order = np.argsort(-scores, kind="stable")
    out = np.full((seen.shape[0], k), -1, dtype=np.int64)
    head = order[: k + int(np.diff(seen.indptr).max(initial=0))]
    for row in range(seen.shape[0]):
        excluded = set(seen.indices[seen.indptr[row] : seen.indptr[row + 1]].tolist())
        picked = [item for item in head.tolist() if item not in excluded][:k]
        out[row, : len(picked)] = picked
    return out


def random_seen(rng: np.random.Generator, rows: int, items: int, density: float) -> sp.csr_matrix:
    """A CSR as a caller may hand it: unsorted indices, duplicates, stored zeros; row 0 has seen
    every item, row 1 none."""
    counts = rng.binomial(items, density, size=rows) * 2  # with duplicates, about density x 2 draws
    counts[0] = 0
    if rows > 1:
        counts[1] = 0
    indices = [rng.integers(0, items, size=count) for count in counts]
    indices[0] = rng.permutation(items)
    lengths = np.array([len(row) for row in indices])
    data = rng.choice([0.0, 1.0, 4.5], size=int(lengths.sum()))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    flat = np.concatenate(indices) if rows else np.empty(0, np.int64)
    return sp.csr_matrix((data, flat.astype(np.int32), indptr), shape=(rows, items))


@pytest.mark.parametrize("seed", range(12))
def test_top_k_excluding_equals_the_loop_on_random_matrices(seed):
    rng = np.random.default_rng(seed)
    rows, items = int(rng.integers(1, 60)), int(rng.integers(1, 80))
    seen = random_seen(rng, rows, items, density=float(rng.choice([0.0, 0.05, 0.3, 0.9])))
    scores = rng.integers(0, 5, size=items).astype(np.float64)  # many ties: the stable order decides
    for k in (1, 3, 10, items, items + 5):
        expected = top_k_loop(scores, seen, k)
        got = top_k_excluding(scores, seen, k)
        assert got.dtype == np.int64 and got.shape == (rows, k)
        np.testing.assert_array_equal(got, expected)
    # rows that have seen more than k still get k; a row that has seen everything gets only -1
    assert (top_k_excluding(scores, seen, 3)[0] == -1).all()


def test_top_k_excluding_with_duplicates_explicit_zeros_and_a_short_catalogue():
    # non-canonical CSR: a duplicated index and a stored zero still count as seen
    seen = sp.csr_matrix(
        (np.array([1.0, 1.0, 0.0, 2.0, 1.0]), np.array([2, 2, 0, 1, 4]), np.array([0, 3, 3, 5])), shape=(3, 5)
    )
    scores = np.array([0.5, 3.0, 2.0, 2.0, 9.0])
    for k in (1, 2, 4, 5, 8):
        np.testing.assert_array_equal(top_k_excluding(scores, seen, k), top_k_loop(scores, seen, k))
    assert top_k_excluding(scores, seen, 4).tolist() == [[4, 1, 3, -1], [4, 1, 2, 3], [2, 3, 0, -1]]
    empty = sp.csr_matrix((0, 5), dtype=np.float32)
    assert top_k_excluding(scores, empty, 3).shape == (0, 3)
    assert top_k_excluding(scores, seen, 0).shape == (3, 0)
    nothing = sp.csr_matrix((2, 0), dtype=np.float32)
    assert top_k_excluding(np.empty(0), nothing, 2).tolist() == [[-1, -1], [-1, -1]]


def test_top_k_excluding_equals_the_loop_on_movielens(api, shop, org):
    split = leave_last_out(interactions_load(org=org).table)
    train = split.train.matrix()
    scores = popularity_scores(train)
    rows = np.array(sorted(split.targets))
    assert np.diff(train.indptr).max() > 100  # customers who have seen far more than k
    for k in (1, 10, 100, train.shape[1]):
        np.testing.assert_array_equal(top_k_excluding(scores, train[rows], k), top_k_loop(scores, train[rows], k))
        np.testing.assert_array_equal(top_k_excluding(scores, train, k), top_k_loop(scores, train, k))
    assert (top_k_excluding(scores, train, train.shape[1]) == -1).any()  # -1 pads when fewer remain
