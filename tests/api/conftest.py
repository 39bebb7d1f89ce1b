"""A seeded organization for the generated API tests: an org-admin key with every scope, a trained
credit model with one logged decision, and a traffic camera, so detail routes can answer 200."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from fixtures.finance_synthetic import generate_credit_applications
from tests.finance.conftest import FAST_PARAMS, applicant, csv_upload


@dataclass
class SeededOrg:
    """What a generated test may put in path parameters to reach an existing object."""

    org: Any
    raw_key: str
    path_values: dict[str, Any] = field(default_factory=dict)


def seed_org(api: Any, org: Any, raw_key: str) -> SeededOrg:
    """One finance dataset, a trained `credit-risk` v1 (production) and a decision; one camera.

    Jobs must run when they are enqueued (eager Celery, and either a transactional database or
    on-commit callbacks executed by the caller).
    """
    frame = generate_credit_applications(400, seed=3)
    dataset = api.post(
        "/api/v1/finance/datasets/",
        {"file": csv_upload(frame), "name": "apps", "target": "default"},
        format="multipart",
    )
    assert dataset.status_code == 201, dataset.content
    run = api.post(
        "/api/v1/finance/training-runs/",
        {"dataset": dataset.json()["id"], "params": FAST_PARAMS, "promote": True},
        format="json",
    )
    assert run.status_code == 202, run.content
    return SeededOrg(
        org=org, raw_key=raw_key, path_values={"dataset_id": dataset.json()["id"], "run_id": run.json()["id"]}
    )


def seed_after_training(api: Any, seeded: SeededOrg) -> SeededOrg:
    """The objects that need the trained model (a decision) and the traffic ones."""
    score = api.post(
        "/api/v1/finance/scores/",
        {"application_id": "app-1", "features": applicant(generate_credit_applications(5, seed=4))},
        format="json",
    )
    assert score.status_code == 200, score.content
    camera = api.post(
        "/api/v1/traffic/cameras/",
        {
            "name": "Main St",
            "lines": [{"name": "stop", "points": [[0.1, 0.5], [0.9, 0.5]], "in_direction": "down"}],
            "zones": [{"name": "box", "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]}],
        },
        format="json",
    )
    assert camera.status_code == 201, camera.content
    job_id = api.get("/api/v1/jobs/").json()["results"][0]["id"]
    seeded.path_values.update(
        {
            "decision_id": score.json()["decision_id"],
            "camera_id": camera.json()["id"],
            "job_id": job_id,
            "name": "credit-risk",
            "number": 1,
            "alias": "production",
        }
    )
    return seeded


@pytest.fixture
def seeded_org(org: Any, make_api_key: Callable[..., str], django_capture_on_commit_callbacks: Any) -> SeededOrg:
    """An org-admin key with every scope and seeded objects (training runs inline here only)."""
    from rest_framework.test import APIClient

    raw_key = make_api_key(org)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    with django_capture_on_commit_callbacks(execute=True):
        seeded = seed_org(api, org, raw_key)
    return seed_after_training(api, seeded)


@pytest.fixture
def wsgi_keeps_test_connection() -> Iterator[None]:
    """Requests sent straight to the WSGI handler keep the test's database connection.

    Django closes "old" connections around every request; inside a test that would close the
    connection holding the test transaction. Django's own test client disconnects the same
    handler for the same reason.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
