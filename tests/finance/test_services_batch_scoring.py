"""`apps.finance.batch_scoring`: a batch executed again after a crash logs each row once and
replaces its results file (the earlier one is deleted from storage)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.storage import default_storage

from apps.finance.batch_scoring import batch_execute
from apps.finance.models import CreditDecision, ScoringBatch
from tests.finance.conftest import csv_upload

pytestmark = pytest.mark.django_db(transaction=True)


def _ignore(**kwargs: Any) -> None:
    """A job `report` that drops progress."""


def test_a_batch_executed_twice_logs_each_row_once_and_keeps_one_results_file(api, trained_model, credit_frame):
    # given a batch of 30 rows scored by its job
    response = api.post(
        "/api/v1/finance/batches/",
        {"file": csv_upload(credit_frame.drop(columns=["default"]).head(30))},
        format="multipart",
    )
    batch = ScoringBatch.objects.get(pk=response.json()["id"])
    first_results = batch.results_path
    assert first_results and default_storage.exists(first_results)
    first_decisions = set(CreditDecision.objects.filter(batch=batch).values_list("pk", "score"))
    # when the job runs again (a redelivery after a crash)
    summary = batch_execute(batch_id=batch.pk, report=_ignore)
    # then the decisions are the same 30, the new results file replaced the old one
    batch.refresh_from_db()
    assert summary["rows"] == summary["scored"] == 30
    assert set(CreditDecision.objects.filter(batch=batch).values_list("pk", "score")) == first_decisions
    assert batch.results_path != first_results and not default_storage.exists(first_results)
    assert batch.results_path.startswith(f"finance/org-{batch.organization_id}/batches/")
    with default_storage.open(batch.results_path, "rb") as results:
        assert len(results.read().decode().splitlines()) == 31
