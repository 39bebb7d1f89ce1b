"""Scoring through the API: reason codes on review/decline, `explain` on approvals, the schema's
codes and descriptions, excluded columns, and the baseline a model must beat."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from django.core.files.storage import storages

from apps.finance.models import CreditDecision
from fixtures.finance_synthetic import FEATURE_DESCRIPTIONS
from ml.models import ModelVersion
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


def _independent_contributions(api: Any, features: dict[str, Any]) -> tuple[list[str], np.ndarray, float]:
    """XGBoost's own TreeSHAP for `features`, from the stored artifact, without the app's encoder.

    The booster and the prior-correction shift are read from artifact storage; the matrix is built
    from the request values and the version's published input schema (numbers as floats,
    categories as their index in the schema's list, absent as NaN).

    Returns:
        feature names in model order, the contributions (n_features + 1, bias last), the shift.
    """
    version = ModelVersion.objects.get(registered_model__name="credit-risk", number=1)
    storage = storages["artifacts"]
    booster = xgb.Booster()
    with storage.open(f"{version.artifact_path}/model.ubj", "rb") as handle:
        booster.load_model(bytearray(handle.read()))
    with storage.open(f"{version.artifact_path}/credit_model.json", "rb") as handle:
        shift = float(json.loads(handle.read())["log_odds_shift"])
    schema = api.get("/api/v1/finance/models/credit-risk/versions/1/").json()["input_schema"]["features"]
    row = np.full((1, len(schema)), np.nan)
    for i, spec in enumerate(schema):
        value = features.get(spec["name"])
        if value is None:
            continue
        row[0, i] = spec["categories"].index(str(value)) if spec["type"] == "categorical" else float(value)
    dmatrix = xgb.DMatrix(
        row,
        feature_names=[f["name"] for f in schema],
        feature_types=["c" if f["type"] == "categorical" else "q" for f in schema],
        enable_categorical=True,
        missing=np.nan,
    )
    return [f["name"] for f in schema], np.asarray(booster.predict(dmatrix, pred_contribs=True))[0], shift


def test_every_review_and_decline_carries_xgboosts_own_top_reasons(api, trained_model, credit_frame):
    schema = {f["name"]: f for f in ModelVersion.objects.get(number=1).input_schema["features"]}
    for cutoffs, expected in ((REVIEW_EVERYONE, "review"), (DECLINE_EVERYONE, "decline")):
        # given a policy that sends everyone to `expected`
        _set_policy(api, cutoffs)
        for index in range(6):
            features = applicant(credit_frame, index)
            # when
            body = _score(api, features).json()
            decision = api.get(f"/api/v1/finance/decisions/{body['decision_id']}/").json()
            # then reasons are given without asking, one to four (Reg B)
            assert body["decision"] == expected
            reasons = body["reason_codes"]
            assert 1 <= len(reasons) <= 4
            # and they are XGBoost's largest positive TreeSHAP contributions, largest first
            names, shap, shift = _independent_contributions(api, features)
            ranked = sorted(range(len(names)), key=lambda i: -shap[i])
            adverse = [i for i in ranked if shap[i] > 0][:4] or ranked[:1]
            assert [r["feature"] for r in reasons] == [names[i] for i in adverse]
            assert [r["contribution"] for r in reasons] == pytest.approx([shap[i] for i in adverse], abs=1e-5)
            assert all(r["contribution"] > 0 for r in reasons) or len(reasons) == 1
            # and the contributions add up to the logged log-odds (bias included, prior shift removed)
            assert decision["log_odds_default"] == pytest.approx(float(shap.sum()) - shift, abs=1e-4)
            assert body["probability_of_default"] == pytest.approx(
                1 / (1 + math.exp(-decision["log_odds_default"])), rel=1e-9
            )
            for reason in reasons:
                assert reason["code"] == schema[reason["feature"]]["reason_code"]
                assert reason["value"] == features.get(reason["feature"])
                assert reason["description"]


def _two_driver_model(api: Any) -> None:
    """Train credit-risk v1 on data where default depends (almost) only on late payments, strongly,
    and on utilisation, half as strongly: logit = -1 + 6 (late - 0.5) + 3 (utilization - 0.5).
    Age, tenure and region are noise."""
    rng = np.random.default_rng(11)
    n = 3_000
    late, utilization = rng.random(n), rng.random(n)
    logit = -1.0 + 6.0 * (late - 0.5) + 3.0 * (utilization - 0.5)
    frame = pd.DataFrame(
        {
            "late_payment_ratio": np.round(late, 4),
            "utilization": np.round(utilization, 4),
            "age": rng.integers(21, 70, n),
            "tenure_years": np.round(rng.random(n) * 20, 1),
            "region": rng.choice(["north", "south", "east"], n),
            "default": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
        }
    )
    dataset = api.post(
        "/api/v1/finance/datasets/", {"file": csv_upload(frame), "target": "default"}, format="multipart"
    ).json()
    run = api.post("/api/v1/finance/training-runs/", {"dataset": dataset["id"], "params": FAST_PARAMS}, format="json")
    assert run.json()["job"]["status"] == "succeeded", run.json()


TWO_DRIVER_NEUTRAL = {"age": 45, "tenure_years": 10.0, "region": "north"}


def test_reasons_name_the_two_features_that_drive_default_in_order_and_direction(api):
    # given a model trained where late payments drive default twice as hard as utilisation
    _two_driver_model(api)
    _set_policy(api, DECLINE_EVERYONE)
    # when an applicant at the top of both drivers is scored
    risky = _score(api, {**TWO_DRIVER_NEUTRAL, "late_payment_ratio": 0.99, "utilization": 0.99}).json()
    # then the first two reasons are late payments, then utilisation, both pushing toward default
    first, second = risky["reason_codes"][:2]
    assert (first["feature"], second["feature"]) == ("late_payment_ratio", "utilization"), risky
    assert (first["code"], first["value"], second["value"]) == ("RC_LATE_PAYMENT_RATIO", 0.99, 0.99)
    assert first["contribution"] > 1.3 * second["contribution"] > 0, risky
    # and any noise feature that follows weighs far less than either driver
    assert all(r["contribution"] < 0.5 * second["contribution"] for r in risky["reason_codes"][2:]), risky
    # when an applicant at the bottom of both drivers is scored (still declined by this policy)
    safe = _score(api, {**TWO_DRIVER_NEUTRAL, "late_payment_ratio": 0.01, "utilization": 0.01}).json()
    # then neither driver is a reason: both lowered the risk
    assert safe["decision"] == "decline"
    assert 1 <= len(safe["reason_codes"]) <= 4
    assert not {"late_payment_ratio", "utilization"} & {r["feature"] for r in safe["reason_codes"]}, safe
    assert safe["probability_of_default"] < risky["probability_of_default"]
    # when only late payments are high
    mixed = _score(api, {**TWO_DRIVER_NEUTRAL, "late_payment_ratio": 0.95, "utilization": 0.05}).json()
    # then late payments lead, and low utilisation (favourable) is not a reason
    assert mixed["reason_codes"][0]["feature"] == "late_payment_ratio"
    assert "utilization" not in {r["feature"] for r in mixed["reason_codes"]}


def test_pds_of_a_clean_two_driver_model_are_close_to_the_true_pds(api):
    # given the two-driver model, whose true PD is 1 / (1 + exp(-logit))
    _two_driver_model(api)
    truth = {(0.99, 0.99): 1 / (1 + math.exp(-3.41)), (0.01, 0.01): 1 / (1 + math.exp(5.41))}
    # when / then
    for (late, utilization), true_pd in truth.items():
        body = _score(api, {**TWO_DRIVER_NEUTRAL, "late_payment_ratio": late, "utilization": utilization}).json()
        assert body["probability_of_default"] == pytest.approx(true_pd, abs=0.15), (late, body)
    assert (
        _score(api, {**TWO_DRIVER_NEUTRAL, "late_payment_ratio": 0.01, "utilization": 0.01}).json()[
            "probability_of_default"
        ]
        < 0.05
    )


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
