"""The analyst's flow through the API: upload → train → score → batch → decision replay."""

from __future__ import annotations

import csv
import io

import pytest

from tests.finance.conftest import applicant, csv_upload

pytestmark = pytest.mark.django_db(transaction=True)


def test_upload_train_score_batch_replay(api, trained_model, credit_frame):
    # given a trained model
    run = api.get(f"/api/v1/finance/training-runs/{trained_model['run']['id']}/").json()
    assert run["job"]["status"] == "succeeded", run["job"]
    assert run["version"] == 1
    assert run["live_metrics"], "boosting rounds were reported"
    version = api.get("/api/v1/finance/models/credit-risk/versions/1/").json()
    metrics = version["metrics"]
    for key in ("roc_auc", "gini", "ks", "brier", "log_loss", "calibration", "roc_curve", "policy_outcomes"):
        assert key in metrics
    assert metrics["roc_auc"] > 0.7
    assert metrics["baseline"]["model"] == "logistic_regression"
    assert version["model_card"]["intended_use"]
    assert version["data_fingerprint"]

    # when scoring one risky applicant
    features = applicant(credit_frame, 0)
    features.update(num_delinquencies=6, credit_utilization=1.15, checking_status="A11", debt_to_income=0.9)
    response = api.post("/api/v1/finance/scores/", {"application_id": "A-1", "features": features}, format="json")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["decision"] in ("review", "decline")
    assert 1 <= len(body["reason_codes"]) <= 4
    assert body["reason_codes"][0]["contribution"] > 0
    assert body["model"] == {"name": "credit-risk", "version": 1}
    assert 0 < body["probability_of_default"] < 1

    # the decision is logged and replays exactly
    logged = api.get(f"/api/v1/finance/decisions/{body['decision_id']}/").json()
    assert logged["inputs"] == features
    assert logged["policy"]["pdo"] == 20
    replay = api.post(f"/api/v1/finance/decisions/{body['decision_id']}/replay/").json()
    assert replay["reproduced"] is True, replay

    # when scoring a batch (one bad row among good ones)
    batch_frame = credit_frame.drop(columns=["default"]).head(300).copy()
    batch_frame["num_delinquencies"] = batch_frame["num_delinquencies"].astype(object)
    batch_frame.loc[5, "num_delinquencies"] = "many"
    response = api.post("/api/v1/finance/batches/", {"file": csv_upload(batch_frame)}, format="multipart")
    assert response.status_code == 202, response.content
    batch = api.get(f"/api/v1/finance/batches/{response.json()['id']}/").json()
    # then
    assert batch["job"]["status"] == "succeeded", batch["job"]
    assert batch["summary"]["rows"] == 300
    assert batch["summary"]["errors"] == 1
    assert sum(batch["summary"]["decisions"].values()) == 299
    results = api.get(batch["results_url"])
    assert results.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(results.streaming_content).decode())))
    assert len(rows) == 300
    assert "not a number" in rows[5]["error"]
    declined = next(r for r in rows if r["decision"] == "decline")
    assert declined["reason_codes"]

    # batch decisions are in the log and replay exactly too
    listed = api.get("/api/v1/finance/decisions/", {"batch_id": batch["id"], "decision": "decline"}).json()
    assert listed["count"] >= 1
    replay = api.post(f"/api/v1/finance/decisions/{listed['results'][0]['decision_id']}/replay/").json()
    assert replay["reproduced"] is True, replay
