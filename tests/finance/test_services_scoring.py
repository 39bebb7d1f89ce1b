"""Every credit score is served by `ml.runtime`: its per-version call statistics count the single
score (predict, plus explain for the reasons) and batch rows, so the runtime's timing and
telemetry see finance's traffic."""

from __future__ import annotations

import pytest

from apps.finance.selectors import credit_version_get
from ml import runtime
from tests.finance.conftest import applicant, csv_upload

pytestmark = pytest.mark.django_db(transaction=True)


def _stats(version_id: int) -> dict[str, float]:
    return runtime.cache_info()["stats"].get(version_id, {"calls": 0, "inputs": 0})


def test_single_scores_and_batches_go_through_the_runtime(api, org, trained_model, credit_frame):
    # given the production version, with this process's statistics reset
    version = credit_version_get(org=org)
    runtime.cache_clear()
    # when one application is scored with reasons asked for
    response = api.post(
        "/api/v1/finance/scores/",
        {"application_id": "RT-1", "features": applicant(credit_frame, 3), "explain": True},
        format="json",
    )
    # then the runtime served one predict and one explain of one row each
    assert response.status_code == 200, response.content
    assert response.json()["reason_codes"]
    assert (_stats(version.pk)["calls"], _stats(version.pk)["inputs"]) == (2, 2)
    # when a batch of 20 rows is scored, then its rows are counted too
    api.post(
        "/api/v1/finance/batches/",
        {"file": csv_upload(credit_frame.drop(columns=["default"]).head(20))},
        format="multipart",
    )
    assert _stats(version.pk)["inputs"] >= 2 + 20
