"""Real-data quality: the 30,000-row Taiwan credit-card default dataset (UCI, Yeh & Lien 2009).

Our training path (upload → schema inference → stratified split → XGBoost with early stopping)
must reach ROC AUC ≥ 0.75 on the held-out split; raw XGBoost gets about 0.78 there.
"""

from __future__ import annotations

import csv
import os

import pytest

from tests.conftest import SHARED_DATA

TAIWAN = SHARED_DATA / "credit_taiwan" / "taiwan_default_clean.csv"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _require_taiwan_data() -> None:
    """Skip with the reason where the shared data folder is absent; under CI=true, fail instead,
    so a CI run can never pass without having checked the model on real data."""
    if TAIWAN.exists():
        return
    reason = f"Taiwan credit data not found at {TAIWAN} (shared data folder absent)"
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}:
        pytest.fail(f"CI=true needs the real-data quality test: {reason}", pytrace=False)
    pytest.skip(reason)


def test_taiwan_credit_model_is_competitive(api):
    _require_taiwan_data()
    # given the real file, uploaded as an analyst would
    with TAIWAN.open("rb") as handle:
        response = api.post(
            "/api/v1/finance/datasets/", {"file": handle, "name": "taiwan", "target": "default"}, format="multipart"
        )
    assert response.status_code == 201, response.content
    dataset = response.json()
    assert dataset["rows"] == 30_000
    assert abs(dataset["positive_rate"] - 0.2212) < 0.001
    roles = {c["name"]: c["role"] for c in dataset["schema"]}
    assert roles["id"] == "excluded"

    # when training with the defaults
    response = api.post("/api/v1/finance/training-runs/", {"dataset": dataset["id"]}, format="json")
    assert response.status_code == 202
    version = api.get("/api/v1/finance/models/credit-risk/versions/1/").json()

    # then
    metrics = version["metrics"]
    print(
        f"Taiwan held-out AUC {metrics['roc_auc']:.4f}, baseline {metrics['baseline']['roc_auc']:.4f}, "
        f"KS {metrics['ks']:.3f}, rounds {metrics['rounds']}"
    )
    assert metrics["roc_auc"] >= 0.77
    assert metrics["beats_baseline"] is True
    assert metrics["split"]["test"] == 6_000

    # and a real applicant (sent with the excluded id column, as a client would) scores and replays
    with TAIWAN.open(newline="") as handle:
        row = next(csv.DictReader(handle))
    features = {name: int(value) for name, value in row.items() if name != "default"}
    response = api.post(
        "/api/v1/finance/scores/", {"application_id": "TW-1", "features": features, "explain": True}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["reason_codes"] and body["model"] == {"name": "credit-risk", "version": 1}
    replay = api.post(f"/api/v1/finance/decisions/{body['decision_id']}/replay/").json()
    assert replay["reproduced"] is True, replay
