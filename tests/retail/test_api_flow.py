"""The merchant's path through the API: catalogue, events, training, recommendations, attribution."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_train_and_recommend(api: Any, trained: dict[str, Any]) -> None:
    run = api.get(f"/api/v1/retail/training-runs/{trained['run']['id']}/").json()
    assert run["status"] == "succeeded", run
    metrics = run["version"]["metrics"]
    assert metrics["split"]["name"] == "temporal_leave_last_out"
    assert {"precision@10", "recall@10", "ndcg@10", "map@10", "hit_rate@10", "coverage@10"} <= set(metrics)
    answer = api.get("/api/v1/retail/customers/u1/recommendations/?n=5&explain=true")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["model"]["name"] == "recommendations"
    assert len(body["items"]) == 5
    assert all(item["source"] == "model" for item in body["items"])
    seen = {e["item"] for e in trained["events"] if e["customer"] == "u1"}
    assert not seen & {item["id"] for item in body["items"]}
    assert body["items"][0]["reason"].startswith("Because you rated")
    similar = api.get("/api/v1/retail/items/m1/similar/?n=5").json()
    assert len(similar["items"]) == 5 and "m1" not in {i["id"] for i in similar["items"]}
    cold = api.get("/api/v1/retail/customers/nobody/recommendations/?n=3").json()
    assert [i["source"] for i in cold["items"]] == ["popular"] * 3
