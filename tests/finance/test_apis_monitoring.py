"""Monitoring through the API: score PSI and feature CSI in bands, over a selectable window."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.finance.models import CreditDecision
from fixtures.finance_synthetic import generate_credit_applications
from tests.finance.conftest import csv_upload

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/finance/models/credit-risk/monitoring/"


def _batch(api: Any, frame: Any) -> int:
    response = api.post("/api/v1/finance/batches/", {"file": csv_upload(frame)}, format="multipart")
    assert response.status_code == 202, response.content
    batch = api.get(f"/api/v1/finance/batches/{response.json()['id']}/").json()
    assert batch["job"]["status"] == "succeeded", batch["job"]
    return int(batch["id"])


def _shifted(n: int) -> Any:
    frame = generate_credit_applications(n, seed=21, with_target=False)
    frame["num_delinquencies"] = 6
    frame["checking_status"] = "A11"
    frame["credit_utilization"] = 1.1
    return frame


def test_too_few_decisions_is_insufficient_data(api, trained_model):
    # when no decision was made yet
    current = api.get(URL).json()["current"]
    # then
    assert current["decisions"] == 0
    assert current["score_psi"] is None
    assert current["band"] == "insufficient_data"
    assert current["features"] == []
    assert current["bands"] == {"stable": "< 0.10", "watch": "0.10 - 0.25", "act": "> 0.25"}


def test_same_population_is_stable_and_the_window_selects_the_decisions(api, trained_model):
    # given applicants like the training population scored now, and a shifted population 20 days ago
    _batch(api, generate_credit_applications(600, seed=99, with_target=False))
    old_batch = _batch(api, _shifted(1_200))
    CreditDecision.objects.filter(batch_id=old_batch).update(created_at=timezone.now() - timedelta(days=20))
    # when looking at the last week
    week = api.get(URL, {"window_days": 7}).json()["current"]
    # then only the recent, unshifted decisions count, and they are stable
    assert week["decisions"] == 600
    assert week["window_days"] == 7
    assert week["score_psi"] < 0.10 and week["band"] == "stable", week["score_psi"]
    assert all(f["band"] in ("stable", "watch") for f in week["features"])
    # when looking at the last 30 days
    month = api.get(URL, {"window_days": 30}).json()["current"]
    # then the shifted decisions dominate: act, with the shifted features on top
    assert month["decisions"] == 1_800
    assert month["score_psi"] > 0.25 and month["band"] == "act"
    top = {f["feature"] for f in month["features"][:3]}
    assert top == {"num_delinquencies", "checking_status", "credit_utilization"}
    assert all(f["band"] == "act" for f in month["features"][:3])
    csi = [f["csi"] for f in month["features"]]
    assert csi == sorted(csi, reverse=True)


def test_a_stored_snapshot_keeps_its_window(api, trained_model):
    # given shifted recent decisions
    _batch(api, _shifted(200))
    # when a snapshot job runs with a 14-day window
    response = api.post(f"{URL}?window_days=14")
    # then
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "succeeded"
    history = api.get(URL).json()["history"]
    assert len(history) == 1
    snapshot = history[0]
    assert snapshot["window_days"] == 14
    assert snapshot["decisions"] == 200
    assert snapshot["band"] == "act"
    assert snapshot["report"]["features"], "per-feature CSI is stored with the snapshot"
