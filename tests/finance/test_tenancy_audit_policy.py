"""Tenancy (another organization's rows are 404 everywhere), audit of credit reads, policy and monitoring."""

from __future__ import annotations

import pytest

from apps.finance.models import CreditDecision
from core.audit.models import AuditEvent
from tests.conftest import assert_error
from tests.finance.conftest import applicant, csv_upload

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def scored(api, trained_model, credit_frame):
    """acme has a dataset, a model, a decision and a finished batch."""
    decision = api.post(
        "/api/v1/finance/scores/",
        {"application_id": "A-1", "features": applicant(credit_frame, 2), "explain": True},
        format="json",
    ).json()
    batch = api.post(
        "/api/v1/finance/batches/",
        {"file": csv_upload(credit_frame.drop(columns=["default"]).head(40))},
        format="multipart",
    ).json()
    return {"decision": decision, "batch": batch, **trained_model}


def test_other_organization_sees_nothing(other_api, scored):
    dataset_id = scored["dataset"]["id"]
    decision_id = scored["decision"]["decision_id"]
    batch_id = scored["batch"]["id"]
    for url in (
        f"/api/v1/finance/datasets/{dataset_id}/",
        f"/api/v1/finance/training-runs/{scored['run']['id']}/",
        "/api/v1/finance/models/credit-risk/",
        "/api/v1/finance/models/credit-risk/versions/1/",
        "/api/v1/finance/models/credit-risk/monitoring/",
        f"/api/v1/finance/decisions/{decision_id}/",
        f"/api/v1/finance/batches/{batch_id}/",
        f"/api/v1/finance/batches/{batch_id}/results/",
    ):
        assert_error(other_api.get(url), 404)
    assert_error(other_api.post(f"/api/v1/finance/decisions/{decision_id}/replay/"), 404)
    assert_error(other_api.patch(f"/api/v1/finance/datasets/{dataset_id}/", {"columns": []}, format="json"), 400)
    assert_error(
        other_api.patch(f"/api/v1/finance/datasets/{dataset_id}/", {"columns": [{"name": "age"}]}, format="json"),
        404,
    )
    assert_error(other_api.post("/api/v1/finance/training-runs/", {"dataset": dataset_id}, format="json"), 404)
    assert_error(other_api.post("/api/v1/finance/models/credit-risk/promote/", {"version": 1}, format="json"), 404)
    for url in ("datasets", "decisions", "batches", "models"):
        assert other_api.get(f"/api/v1/finance/{url}/").json()["count"] == 0
    # globex cannot score with acme's model either
    response = other_api.post(
        "/api/v1/finance/scores/", {"application_id": "x", "features": {}, "model": "credit-risk"}, format="json"
    )
    assert_error(response, 404)


def test_decision_reads_are_audited(api, scored):
    decision_id = scored["decision"]["decision_id"]
    before = AuditEvent.objects.filter(action="finance.decision.read").count()
    api.get(f"/api/v1/finance/decisions/{decision_id}/")
    api.get("/api/v1/finance/decisions/")
    events = AuditEvent.objects.filter(action="finance.decision.read").order_by("id")
    assert events.count() == before + 2
    last = events.last()
    assert last is not None
    assert last.details["ids"]
    assert AuditEvent.objects.filter(action="finance.decision.create", object_id=decision_id).exists()


def test_explain_gives_reasons_on_approvals_and_decisions_are_immutable(scored):
    assert scored["decision"]["reason_codes"], "explain=true returns reasons whatever the decision"
    decision = CreditDecision.objects.get(pk=scored["decision"]["decision_id"])
    decision.score = 999
    with pytest.raises(PermissionError):
        decision.save()


def test_policy_changes_need_an_admin_and_apply_to_new_decisions(api, api_client_for, org, scored, credit_frame):
    # given an analyst key without the admin scope
    analyst = api_client_for(org, scopes=("finance",))
    assert_error(analyst.patch("/api/v1/finance/policy/", {"pdo": 40}, format="json"), 403)
    assert_error(
        api.patch("/api/v1/finance/policy/", {"approve_min_score": 500, "decline_below_score": 600}, format="json"),
        400,
    )
    # when an admin makes everything a decline
    response = api.patch(
        "/api/v1/finance/policy/",
        {"points_at_base_odds": 500, "pdo": 40, "approve_min_score": 2000, "decline_below_score": 1999},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert AuditEvent.objects.filter(action="finance.policy.update").exists()
    body = api.post(
        "/api/v1/finance/scores/", {"application_id": "A-2", "features": applicant(credit_frame, 2)}, format="json"
    ).json()
    # then the decision records the policy used, and the old one still replays with its own policy
    assert body["decision"] == "decline"
    assert api.get(f"/api/v1/finance/decisions/{body['decision_id']}/").json()["policy"]["pdo"] == 40
    old = api.post(f"/api/v1/finance/decisions/{scored['decision']['decision_id']}/replay/").json()
    assert old["reproduced"] is True


def test_promotion_and_version_pinning(api, api_client_for, org, scored, credit_frame):
    run = api.post(
        "/api/v1/finance/training-runs/",
        {"dataset": scored["dataset"]["id"], "params": {"n_estimators": 30, "max_depth": 2}},
        format="json",
    ).json()
    assert run["job"]["status"] == "succeeded"
    model = api.get("/api/v1/finance/models/credit-risk/").json()
    assert model["aliases"] == {"production": 1}
    analyst = api_client_for(org, scopes=("finance",))
    assert_error(analyst.post("/api/v1/finance/models/credit-risk/promote/", {"version": 2}, format="json"), 403)
    response = api.post(
        "/api/v1/finance/models/credit-risk/promote/", {"version": 2, "reason": "better"}, format="json"
    )
    assert response.json()["aliases"] == {"production": 2}
    features = applicant(credit_frame, 3)
    assert api.post("/api/v1/finance/scores/", {"application_id": "x", "features": features}, format="json").json()[
        "model"
    ] == {"name": "credit-risk", "version": 2}
    pinned = api.post(
        "/api/v1/finance/scores/", {"application_id": "x", "features": features, "version": 1}, format="json"
    ).json()
    assert pinned["model"]["version"] == 1


def test_monitoring_psi_and_csi(api, scored, credit_frame):
    # given recent decisions: a shifted population (everyone heavily delinquent)
    shifted = credit_frame.drop(columns=["default"]).head(200).copy()
    shifted["num_delinquencies"] = 6
    shifted["checking_status"] = "A11"
    shifted["credit_utilization"] = 1.1
    api.post("/api/v1/finance/batches/", {"file": csv_upload(shifted)}, format="multipart")
    # when
    body = api.get("/api/v1/finance/models/credit-risk/monitoring/", {"window_days": 7}).json()
    # then
    current = body["current"]
    assert current["decisions"] >= 200
    assert current["score_psi"] > 0.25 and current["band"] == "act"
    top = current["features"][0]
    assert top["feature"] == "num_delinquencies" and top["band"] == "act"
    # a stored snapshot via the job
    response = api.post("/api/v1/finance/models/credit-risk/monitoring/?window_days=7")
    assert response.status_code == 202
    history = api.get("/api/v1/finance/models/credit-risk/monitoring/").json()["history"]
    assert len(history) == 1 and history[0]["band"] == "act"
    assert_error(api.get("/api/v1/finance/models/credit-risk/monitoring/", {"window_days": 0}), 400)


@pytest.mark.django_db(transaction=True)
def test_daily_monitoring_sweep_snapshots_every_production_credit_model(trained_model, org):
    from apps.finance.models import MonitoringSnapshot
    from apps.finance.tasks import MONITORING_SWEEP_TASK, monitoring_sweep
    from core.celery import app
    from core.jobs.models import Job

    # given: a production credit model, and the daily sweep in beat's schedule
    assert app.conf.beat_schedule["finance-monitoring-daily"]["task"] == MONITORING_SWEEP_TASK
    # when: beat fires the sweep (its jobs run inline here)
    job_ids = monitoring_sweep()
    # then: one monitoring job for the one production model, and it left a snapshot
    assert len(job_ids) == 1
    assert Job.objects.get(pk=job_ids[0]).status == "succeeded"
    assert MonitoringSnapshot.objects.filter(organization=org, model_name="credit-risk").count() == 1
