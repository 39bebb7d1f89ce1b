"""A seeded organization for the generated API tests: an org-admin key with every scope, a trained
credit model with a decision and a scored batch, a traffic camera (and, where asked, a detector
with a detection run and an analysed video), so detail routes can answer 200."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from fixtures.finance_synthetic import generate_credit_applications
from tests.finance.conftest import FAST_PARAMS, applicant, csv_upload


@dataclass
class SeededOrg:
    """What a generated test may put in path parameters to reach an existing object.

    `path_values` holds a value per parameter name; `overrides` the values that differ under a
    path prefix (`run_id` is a finance training run, but a detection run under /traffic/detections/).
    """

    org: Any
    raw_key: str
    path_values: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def values_for(self, path: str) -> dict[str, Any]:
        values = dict(self.path_values)
        for prefix, override in self.overrides.items():
            if path.startswith(prefix):
                values.update(override)
        return values


def seed_org(api: Any, org: Any, raw_key: str) -> SeededOrg:
    """One finance dataset and a trained `credit-risk` v1 (production).

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
    values = {"dataset_id": dataset.json()["id"], "run_id": run.json()["id"]}
    return SeededOrg(org=org, raw_key=raw_key, path_values=values)


def seed_after_training(api: Any, seeded: SeededOrg) -> SeededOrg:
    """The objects that need the trained model (a decision, a scored batch) and a camera."""
    applications = generate_credit_applications(5, seed=4)
    score = api.post(
        "/api/v1/finance/scores/", {"application_id": "app-1", "features": applicant(applications)}, format="json"
    )
    assert score.status_code == 200, score.content
    batch = api.post(
        "/api/v1/finance/batches/", {"file": csv_upload(applications.drop(columns=["default"]))}, format="multipart"
    )
    assert batch.status_code == 202, batch.content
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
            "batch_id": batch.json()["id"],
            "camera_id": camera.json()["id"],
            "job_id": job_id,
            "name": "credit-risk",
            "number": 1,
            "alias": "production",
        }
    )
    return seeded


def _api_client(raw_key: str) -> Any:
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return api


@pytest.fixture
def seeded_org(org: Any, make_api_key: Callable[..., str], django_capture_on_commit_callbacks: Any) -> SeededOrg:
    """An org-admin key with every scope and seeded objects (their jobs run inline here only)."""
    raw_key = make_api_key(org)
    api = _api_client(raw_key)
    with django_capture_on_commit_callbacks(execute=True):
        seeded = seed_org(api, org, raw_key)
    with django_capture_on_commit_callbacks(execute=True):
        return seed_after_training(api, seeded)


@pytest.fixture(scope="session")
def detector_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The traffic tests' tiny real YOLO checkpoint (1 epoch at 64 px, about 15 s of CPU)."""
    from tests.traffic.conftest import TINY_IMGSZ, _train_weights

    return _train_weights(tmp_path_factory.mktemp("api-tiny-yolo"), epochs=1, images=8, imgsz=TINY_IMGSZ, size=64)


@pytest.fixture
def seeded_org_with_detections(
    seeded_org: SeededOrg, detector_weights: Path, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> SeededOrg:
    """`seeded_org` plus an imported detector `traffic-detector`, a detection run on the camera and
    an analysed video (its job run inline)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from core.tenancy.actors import Actor
    from fixtures.traffic_shapes import crossing_clip
    from ml.services import model_version_import
    from tests.traffic.conftest import jpeg_upload, weights_upload

    model_version_import(
        actor=Actor.system(seeded_org.org),
        name="traffic-detector",
        kind="traffic.yolo_detector",
        upload=weights_upload(detector_weights),
    )
    run = _api_client(seeded_org.raw_key).post(
        "/api/v1/traffic/detections/",
        {"image": jpeg_upload(), "camera": seeded_org.path_values["camera_id"], "conf": 0.01},
        format="multipart",
    )
    assert run.status_code == 201, run.content
    clip = crossing_clip(tmp_path / "clip.mp4")
    with django_capture_on_commit_callbacks(execute=True):
        video = _api_client(seeded_org.raw_key).post(
            "/api/v1/traffic/videos/",
            {
                "video": SimpleUploadedFile("clip.mp4", clip.path.read_bytes(), content_type="video/mp4"),
                "camera": seeded_org.path_values["camera_id"],
            },
            format="multipart",
        )
    assert video.status_code == 202, video.content
    seeded_org.path_values["video_id"] = video.json()["id"]
    seeded_org.overrides["/api/v1/traffic/detections/"] = {"run_id": run.json()["id"]}
    seeded_org.overrides["/api/v1/traffic/models/"] = {"name": "traffic-detector"}
    return seeded_org


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
