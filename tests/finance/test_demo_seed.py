"""`seed_demo` trains and promotes a demo credit model from generated data, idempotently."""

from __future__ import annotations

import io

import pytest

from apps.finance import demo
from ml.models import ModelVersion

pytestmark = pytest.mark.django_db(transaction=True)


def test_seed_demo_is_idempotent_and_scores_immediately(org, api, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_ROWS", 1_500)
    # when seeding twice
    demo.finance_demo_seed(org=org, stdout=io.StringIO())
    demo.finance_demo_seed(org=org, stdout=io.StringIO())
    # then one production version exists, with one scored demo batch and its drift snapshot
    assert ModelVersion.objects.filter(registered_model__organization=org).count() == 1
    [batch] = api.get("/api/v1/finance/batches/").json()["results"]
    assert batch["name"] == demo.DEMO_BATCH and batch["job"]["status"] == "succeeded", batch
    assert batch["summary"]["rows"] == demo.DEMO_BATCH_ROWS and batch["summary"]["errors"] == 0
    assert batch["summary"]["decisions"]["approve"] > 0, "the default policy approves some demo applicants"
    assert api.get("/api/v1/finance/decisions/").json()["count"] == demo.DEMO_BATCH_ROWS
    drift = api.get("/api/v1/finance/models/credit-risk/monitoring/").json()
    assert drift["current"]["decisions"] == demo.DEMO_BATCH_ROWS, drift
    assert drift["current"]["band"] == "stable", drift  # the same population as the training data
    assert [s["decisions"] for s in drift["history"]] == [demo.DEMO_BATCH_ROWS]
    # and scoring works without naming a model
    response = api.post(
        "/api/v1/finance/scores/",
        {
            "application_id": "demo-1",
            "features": {
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
            },
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["reason_codes"] or response.json()["decision"] == "approve"
