"""`seed_demo` trains and promotes a demo credit model from generated data, idempotently, and
leaves a scored batch whose decisions obey the policy and Reg B, and a drift snapshot."""

from __future__ import annotations

import io
import math
from collections import Counter

import pytest

from apps.finance import demo
from ml.models import ModelVersion

pytestmark = pytest.mark.django_db(transaction=True)

# The default policy, worked by hand (600 points at 50:1, PDO 20, approve >= 570, decline < 530):
# score = 487.1229 - 28.8539 * log-odds, so approve <=> PD <= 1 / (1 + exp((570 - 487.1229) / 28.8539))
FACTOR, OFFSET = 20 / math.log(2), 600 - 20 / math.log(2) * math.log(50)
PD_APPROVE_MAX = 1 / (1 + math.exp((570 - 0.5 - OFFSET) / FACTOR))  # 0.0544 (score rounds half up)
PD_DECLINE_MIN = 1 / (1 + math.exp((530 - 0.5 - OFFSET) / FACTOR))  # 0.1873

DEMO_APPLICANT = {
    "age": 35,
    "annual_income": 42000,
    "employment_years": 3,
    "home_ownership": "RENT",
    "purpose": "car",
    "checking_status": "A12",
    "loan_amount": 9000,
    "term_months": 36,
    "debt_to_income": 0.35,
    "credit_utilization": 0.6,
    "num_delinquencies": 1,
    "num_inquiries_6m": 2,
    "months_since_last_delinquency": 14,
    "credit_history_years": 9,
}


def test_seed_demo_is_idempotent_and_leaves_a_policy_abiding_scored_batch_and_a_working_model(org, api, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_ROWS", 1_500)
    # when seeding twice
    demo.finance_demo_seed(org=org, stdout=io.StringIO())
    demo.finance_demo_seed(org=org, stdout=io.StringIO())

    # then one production version exists and one scored demo batch without errors
    assert ModelVersion.objects.filter(registered_model__organization=org).count() == 1
    [batch] = api.get("/api/v1/finance/batches/").json()["results"]
    assert batch["name"] == demo.DEMO_BATCH and batch["job"]["status"] == "succeeded", batch
    assert batch["summary"]["rows"] == demo.DEMO_BATCH_ROWS == 500
    assert batch["summary"]["errors"] == 0

    # and exactly one logged decision per demo applicant, no more (the second seed scored nothing)
    listing = api.get("/api/v1/finance/decisions/", {"page_size": 500}).json()
    assert listing["count"] == demo.DEMO_BATCH_ROWS
    decisions = listing["results"]
    assert len({d["application_id"] for d in decisions}) == demo.DEMO_BATCH_ROWS
    counts = Counter(d["decision"] for d in decisions)
    assert batch["summary"]["decisions"] == dict(counts)

    for d in decisions:
        pd_, reasons = d["probability_of_default"], d["reason_codes"]
        # each decision is the one the policy gives for its PD (thresholds worked out by hand above)
        expected = "approve" if pd_ <= PD_APPROVE_MAX else "decline" if pd_ > PD_DECLINE_MIN else "review"
        assert d["decision"] == expected or abs(pd_ - PD_APPROVE_MAX) < 1e-3 or abs(pd_ - PD_DECLINE_MIN) < 1e-3, d
        # Reg B: every adverse action carries one to four principal reasons; approvals none unless asked
        if d["decision"] == "approve":
            assert reasons == [], d
        else:
            assert 1 <= len(reasons) <= 4, d
            assert all(r["code"] and r["feature"] and r["description"] for r in reasons), d
            contributions = [r["contribution"] for r in reasons]
            assert contributions == sorted(contributions, reverse=True), d

    # and the mix is plausible for the policy: the demo data default ~16 % of the time, so a cut-off
    # that approves only PD <= 5.4 % approves a minority, declines PD > 18.7 % for a minority, and
    # the model (prior-corrected for class weights) is calibrated: its mean PD is the default rate
    [dataset] = api.get("/api/v1/finance/datasets/").json()["results"]
    assert 0.12 <= dataset["positive_rate"] <= 0.20, dataset
    rate = {k: counts[k] / demo.DEMO_BATCH_ROWS for k in ("approve", "review", "decline")}
    assert 0.05 <= rate["approve"] <= 0.60, rate
    assert 0.05 <= rate["decline"] <= 0.60, rate
    assert rate["review"] > 0, rate
    mean_pd = sum(d["probability_of_default"] for d in decisions) / len(decisions)
    assert mean_pd == pytest.approx(dataset["positive_rate"], abs=0.05), (mean_pd, dataset["positive_rate"])

    # and one drift snapshot of the batch exists, stable (same population as the training data)
    drift = api.get("/api/v1/finance/models/credit-risk/monitoring/").json()
    assert drift["current"]["decisions"] == demo.DEMO_BATCH_ROWS, drift
    assert drift["current"]["band"] == "stable", drift
    assert drift["current"]["score_psi"] is not None and 0 <= drift["current"]["score_psi"] < 0.10, drift
    assert [s["decisions"] for s in drift["history"]] == [demo.DEMO_BATCH_ROWS]

    # and the production model scores without naming a model; reasons follow the decision
    response = api.post(
        "/api/v1/finance/scores/", {"application_id": "demo-1", "features": DEMO_APPLICANT}, format="json"
    )
    explained = api.post(
        "/api/v1/finance/scores/",
        {"application_id": "demo-1", "features": DEMO_APPLICANT, "explain": True},
        format="json",
    )
    assert response.status_code == 200, response.content
    body, full = response.json(), explained.json()
    assert body["model"] == {"name": "credit-risk", "version": 1}
    assert body["probability_of_default"] == full["probability_of_default"]
    assert 1 <= len(full["reason_codes"]) <= 4
    assert full["reason_codes"][0]["contribution"] > 0  # a delinquent applicant has a factor that raised the risk
    if body["decision"] == "approve":
        assert body["reason_codes"] == []
    else:
        assert body["reason_codes"] == full["reason_codes"]
