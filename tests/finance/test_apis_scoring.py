"""Scoring through the API: reason codes on review/decline, `explain` on approvals, the schema's
codes and descriptions, excluded columns, and the baseline a model must beat."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from apps.finance.ml import predict_contributions
from apps.finance.models import CreditDecision
from fixtures.finance_synthetic import FEATURE_DESCRIPTIONS
from ml.models import ModelVersion
from ml.runtime import load_version
from tests.conftest import assert_error
from tests.finance.conftest import FAST_PARAMS, applicant, csv_upload

pytestmark = pytest.mark.django_db(transaction=True)

APPROVE_EVERYONE = {"approve_min_score": -10_000, "decline_below_score": -10_000}
REVIEW_EVERYONE = {"approve_min_score": 20_000, "decline_below_score": -10_000}
DECLINE_EVERYONE = {"approve_min_score": 20_000, "decline_below_score": 20_000}


def _score(api: Any, features: dict[str, Any], **extra: Any) -> Any:
    return api.post(
        "/api/v1/finance/scores/", {"application_id": "APP-T", "features": features, **extra}, format="json"
    )


def _set_policy(api: Any, cutoffs: dict[str, int]) -> None:
    response = api.patch("/api/v1/finance/policy/", cutoffs, format="json")
    assert response.status_code == 200, response.content


def test_approvals_carry_reasons_only_when_explain_is_asked(api, trained_model, credit_frame):
    # given a policy under which every applicant is approved
    _set_policy(api, APPROVE_EVERYONE)
    features = applicant(credit_frame, 7)
    # when scoring without and with explain
    plain = _score(api, features).json()
    explained = _score(api, features, explain=True).json()
    # then both are approvals; only the explained one has reasons
    assert plain["decision"] == explained["decision"] == "approve"
    assert plain["reason_codes"] == []
    assert 1 <= len(explained["reason_codes"]) <= 4
    assert plain["probability_of_default"] == explained["probability_of_default"]
    # and both replay exactly, each with (or without) its reasons
    for body in (plain, explained):
        replay = api.post(f"/api/v1/finance/decisions/{body['decision_id']}/replay/").json()
        assert replay["reproduced"] is True, replay
        assert replay["replayed"]["reason_codes"] == body["reason_codes"]


@pytest.mark.parametrize(("cutoffs", "expected"), [(REVIEW_EVERYONE, "review"), (DECLINE_EVERYONE, "decline")])
def test_every_review_and_decline_carries_the_top_reasons(api, trained_model, credit_frame, cutoffs, expected):
    # given a policy that sends everyone to `expected`
    _set_policy(api, cutoffs)
    version = ModelVersion.objects.get(registered_model__name="credit-risk", number=1)
    model = load_version(version).model
    schema = {f["name"]: f for f in version.input_schema["features"]}
    for index in range(8):
        features = applicant(credit_frame, index)
        # when
        body = _score(api, features).json()
        # then reasons are given, without asking, and they are the features that pushed most toward default
        assert body["decision"] == expected
        reasons = body["reason_codes"]
        assert 1 <= len(reasons) <= 4
        contributions = [r["contribution"] for r in reasons]
        assert contributions == sorted(contributions, reverse=True)
        encoded = model.encoder.encode_record(features)
        shap = predict_contributions(model, encoded)[0]
        positive = [model.encoder.names[i] for i in np.argsort(-shap, kind="stable") if shap[i] > 0][:4]
        assert [r["feature"] for r in reasons] == (positive or [reasons[0]["feature"]])
        for reason in reasons:
            assert reason["code"] == schema[reason["feature"]]["reason_code"]
            assert reason["value"] == features.get(reason["feature"])
            assert reason["description"]


def test_schema_edits_reach_the_trained_model_and_its_reasons(api, upload_dataset, credit_frame):
    # given a dataset whose schema the analyst edits: exclude age, a code and text for
    # delinquencies, term as a category
    dataset = upload_dataset().json()
    edits = [
        {"name": "age", "excluded": True},
        {"name": "num_delinquencies", "description": "Too many recent delinquencies", "reason_code": "R01"},
        {"name": "term_months", "type": "categorical"},
    ]
    response = api.patch(f"/api/v1/finance/datasets/{dataset['id']}/", {"columns": edits}, format="json")
    assert response.status_code == 200, response.content
    schema = {c["name"]: c for c in response.json()["schema"]}
    assert schema["age"]["role"] == "excluded"
    # when training on it
    run = api.post("/api/v1/finance/training-runs/", {"dataset": dataset["id"], "params": FAST_PARAMS}, format="json")
    assert run.json()["job"]["status"] == "succeeded", run.json()["job"]
    version = api.get("/api/v1/finance/models/credit-risk/versions/1/").json()
    # then the version was trained without age, with term as a category
    features = {f["name"]: f for f in version["input_schema"]["features"]}
    assert "age" not in features and "application_id" not in features
    assert features["term_months"]["type"] == "categorical"
    assert {"age", "application_id"} <= set(version["input_schema"]["ignored"])
    assert version["model_card"]["data"]["features"] == len(features)
    # when scoring a very delinquent applicant who also sends the excluded column
    _set_policy(api, DECLINE_EVERYONE)
    record = applicant(credit_frame, 0)
    # (otherwise unremarkable: low debt-to-income and utilisation, a healthy checking account)
    record.update(
        num_delinquencies=8, term_months="36", debt_to_income=0.2, credit_utilization=0.2, checking_status="A14"
    )
    body = _score(api, record).json()
    # then the excluded column is accepted and ignored, and the reason uses the analyst's words
    assert body["decision"] == "decline", body
    top = body["reason_codes"][0]
    assert top == {
        "code": "R01",
        "feature": "num_delinquencies",
        "description": "Too many recent delinquencies",
        "contribution": top["contribution"],
        "value": 8,
    }
    assert CreditDecision.objects.get(pk=body["decision_id"]).inputs["age"] == record["age"]
    # but a column the dataset never had is still an unknown feature
    error = assert_error(_score(api, {**record, "shoe_size": 44}), 400, "invalid_features")
    assert set(error["fields"]) == {"features.shoe_size"}


def test_descriptions_from_the_schema_are_the_reason_texts(api, trained_model, credit_frame):
    # given the fixture's model, trained after describing two features
    _set_policy(api, DECLINE_EVERYONE)
    record = applicant(credit_frame, 0)
    record.update(num_delinquencies=7, credit_utilization=1.2)
    # when
    reasons = {r["feature"]: r for r in _score(api, record).json()["reason_codes"]}
    # then
    assert reasons["num_delinquencies"]["description"] == FEATURE_DESCRIPTIONS["num_delinquencies"]
    assert reasons["num_delinquencies"]["code"] == "RC_NUM_DELINQUENCIES"
    assert reasons["credit_utilization"]["description"] == FEATURE_DESCRIPTIONS["credit_utilization"]


def test_a_model_that_does_not_beat_its_baseline_says_so(api, client, make_member, org):
    # given a purely linear signal, which a one-stump booster cannot match a logistic regression on
    rng = np.random.default_rng(5)
    x = rng.normal(size=3_000)
    frame = pd.DataFrame(
        {
            "signal": np.round(x, 4),
            "noise": np.round(rng.normal(size=3_000), 4),
            "default": (rng.random(3_000) < 1 / (1 + np.exp(-2.0 * x))).astype(int),
        }
    )
    dataset = api.post(
        "/api/v1/finance/datasets/", {"file": csv_upload(frame), "target": "default"}, format="multipart"
    ).json()
    # when training a deliberately weak model
    params = {"n_estimators": 1, "max_depth": 1, "learning_rate": 0.3}
    api.post("/api/v1/finance/training-runs/", {"dataset": dataset["id"], "params": params}, format="json")
    version = api.get("/api/v1/finance/models/credit-risk/versions/1/").json()
    # then the metrics, the model card and the portal say it does not beat the baseline
    metrics = version["metrics"]
    assert metrics["roc_auc"] < metrics["baseline"]["roc_auc"]
    assert metrics["beats_baseline"] is False
    assert metrics["auc_lift_over_baseline"] < 0
    assert version["model_card"]["evaluation"]["beats_baseline"] is False
    assert any("does NOT beat" in line for line in version["model_card"]["limitations"])
    make_member(org, role="credit_analyst", username="ana")
    client.login(username="ana", password="pass-1234")
    page = client.get("/portal/finance/models/credit-risk/").content.decode()
    assert 'data-testid="baseline-warning"' in page
