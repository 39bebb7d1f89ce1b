"""The domain apps' jobs on real parts: PostgreSQL, Redis, and a real prefork Celery worker process.

The fast suites run these jobs inline on SQLite; here the same API calls hand them to a worker
process over Redis, as in production. The worker reads the uploads and artifacts the web process
(this test) stored, writes its rows into the same PostgreSQL database, and the API shows them.
A finance batch whose worker is SIGKILLed mid-file finishes exactly once after a restart: one
decision per row, one results file, one audit row for the job.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from fixtures.finance_synthetic import generate_credit_applications
from fixtures.traffic_shapes import crossing_clip
from tests.finance.conftest import FAST_PARAMS, applicant, csv_upload
from tests.integration.conftest import audit_actions, job_row, wait_for
from tests.realservices import RealWorker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FINISHED = {"succeeded", "failed", "cancelled"}


def _poll_job(api: Any, job_url: str, worker: RealWorker, *, timeout: float) -> tuple[dict[str, Any], list[float]]:
    """Poll a job through the API until it finishes; returns its last body and the progress values seen."""
    seen: list[float] = []

    def probe() -> dict[str, Any] | None:
        response = api.get(job_url)
        assert response.status_code == 200, response.content
        body = response.json()
        if not seen or seen[-1] != body["progress"]:
            seen.append(body["progress"])
        return body if body["status"] in FINISHED else None

    body = wait_for(probe, timeout=timeout, interval=0.1, what=f"{job_url} to finish", worker=worker)
    return body, seen


def _train_credit_model(api: Any, worker: RealWorker) -> dict[str, Any]:
    frame = generate_credit_applications(3_000, seed=11)
    upload = {"file": csv_upload(frame), "name": "book", "target": "default"}
    dataset = api.post("/api/v1/finance/datasets/", upload, format="multipart")
    assert dataset.status_code == 201, dataset.content
    run = api.post(
        "/api/v1/finance/training-runs/", {"dataset": dataset.json()["id"], "params": FAST_PARAMS}, format="json"
    )
    assert run.status_code == 202, run.content
    job, seen = _poll_job(api, run.json()["job"]["url"], worker, timeout=120)
    assert job["status"] == "succeeded", (job, worker.logs()[-6000:])
    assert job["kind"] == "ml.train"
    assert any(0.0 < p < 1.0 for p in seen), f"no live progress from the worker: {seen}"
    return {"frame": frame, "run": api.get(f"/api/v1/finance/training-runs/{run.json()['id']}/").json()}


def test_finance_training_scoring_and_batch_run_on_the_worker(real_worker: RealWorker, api: Any) -> None:
    # given: a dataset uploaded through the API, trained on the worker (training queue)
    trained = _train_credit_model(api, real_worker)
    run = trained["run"]
    assert run["version"] == 1 and run["live_metrics"], run
    version = api.get("/api/v1/finance/models/credit-risk/versions/1/").json()
    assert version["metrics"]["roc_auc"] > 0.7

    # when: this (web) process scores with the artifact the worker wrote
    features = applicant(trained["frame"], 0)
    score = api.post("/api/v1/finance/scores/", {"application_id": "A-1", "features": features}, format="json")

    # then
    assert score.status_code == 200, score.content
    assert score.json()["model"] == {"name": "credit-risk", "version": 1}

    # when: a batch goes to the worker (inference queue)
    batch_frame = trained["frame"].drop(columns=["default"]).head(500)
    created = api.post("/api/v1/finance/batches/", {"file": csv_upload(batch_frame)}, format="multipart")
    assert created.status_code == 202, created.content
    job, _ = _poll_job(api, created.json()["job"]["url"], real_worker, timeout=60)

    # then: every row is a logged decision and the results file has them all
    assert job["status"] == "succeeded", job
    batch = api.get(f"/api/v1/finance/batches/{created.json()['id']}/").json()
    assert batch["summary"]["rows"] == 500 and batch["summary"]["errors"] == 0
    rows = list(csv.DictReader(io.StringIO(b"".join(api.get(batch["results_url"]).streaming_content).decode())))
    assert [r["application_id"] for r in rows] == batch_frame["application_id"].astype(str).tolist()
    listed = api.get("/api/v1/finance/decisions/", {"batch_id": batch["id"], "page_size": 1}).json()
    assert listed["count"] == 500


@pytest.mark.timeout(300)
def test_sigkilled_batch_finishes_exactly_once_after_a_restart(
    real_worker: RealWorker, api: Any, settings: Any
) -> None:
    from apps.finance.models import CreditDecision

    # given: a trained model and a batch big enough to be killed half-way (5,000-row chunks)
    _train_credit_model(api, real_worker)
    rows = 40_000
    frame = generate_credit_applications(rows, seed=5).drop(columns=["default"])
    created = api.post("/api/v1/finance/batches/", {"file": csv_upload(frame)}, format="multipart")
    assert created.status_code == 202, created.content
    batch_id, job_id = created.json()["id"], created.json()["job"]["id"]

    # when: the worker dies once some chunks are logged and before the end
    logged = wait_for(
        lambda: CreditDecision.objects.filter(batch_id=batch_id).count(),
        timeout=90,
        interval=0.05,
        what="the first chunk of decisions",
        worker=real_worker,
    )
    real_worker.kill()
    crashed = job_row(job_id)
    assert crashed.status == "running" and crashed.attempts == 1
    partial = CreditDecision.objects.filter(batch_id=batch_id).count()
    assert logged <= partial < rows, "the kill must land mid-batch"
    # the job is taken over once its heartbeat is stale (and its unacked message visible again)
    time.sleep(settings.JOB_STALE_SECONDS + settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] * 0.2)
    real_worker.restart()

    # then: the second attempt finishes the file; the rows logged before the crash are not doubled
    job, _ = _poll_job(api, f"/api/v1/jobs/{job_id}/", real_worker, timeout=150)
    assert job["status"] == "succeeded", (job, real_worker.logs()[-6000:])
    assert job["attempts"] == 2
    decisions = CreditDecision.objects.filter(batch_id=batch_id)
    assert decisions.count() == rows
    assert decisions.values("batch_row").distinct().count() == rows
    batch = api.get(f"/api/v1/finance/batches/{batch_id}/").json()
    assert batch["summary"]["rows"] == rows and sum(batch["summary"]["decisions"].values()) == rows
    results = b"".join(api.get(batch["results_url"]).streaming_content).decode()
    assert results.count("\n") == rows + 1  # header + one line per row, once
    assert audit_actions(job_id) == ["core.job.succeeded"]


@pytest.fixture
def tiny_detector(org: Any, tmp_path: Path) -> Any:
    """A real yolo11n checkpoint trained from scratch for one epoch (seconds), imported into `org`'s registry."""
    from core.tenancy.actors import Actor
    from ml.services import model_version_import
    from tests.traffic.conftest import TINY_IMGSZ, _train_weights, weights_upload

    weights = _train_weights(tmp_path / "tiny-yolo", epochs=1, images=8, imgsz=TINY_IMGSZ, size=64)
    return model_version_import(
        actor=Actor.system(org), name="traffic-detector", kind="traffic.yolo_detector", upload=weights_upload(weights)
    )


def test_traffic_video_is_tracked_and_counted_on_the_worker(
    real_worker: RealWorker, api: Any, tiny_detector: Any, tmp_path: Path
) -> None:
    # given: a camera with a counting line and a generated clip
    camera = api.post(
        "/api/v1/traffic/cameras/",
        {"name": "Gate", "lines": [{"name": "stop", "points": [[0.05, 0.5], [0.95, 0.5]], "in_direction": "down"}]},
        format="json",
    )
    assert camera.status_code == 201, camera.content
    clip = crossing_clip(tmp_path / "clip.avi")
    upload = SimpleUploadedFile("clip.avi", clip.path.read_bytes(), content_type="video/x-msvideo")

    # when: the video job runs on the worker (inference queue)
    created = api.post("/api/v1/traffic/videos/", {"video": upload, "camera": camera.json()["id"]}, format="multipart")
    assert created.status_code == 202, created.content
    job, _ = _poll_job(api, created.json()["job"]["url"], real_worker, timeout=120)

    # then: every frame was read by the worker and its crossings are stored consistently
    assert job["status"] == "succeeded", (job, real_worker.logs()[-6000:])
    assert job["kind"] == "traffic.video_count" and job["progress"] == 1.0
    video = api.get(f"/api/v1/traffic/videos/{created.json()['id']}/").json()
    assert video["frames"] == clip.frames
    crossings = api.get(f"/api/v1/traffic/videos/{video['id']}/crossings/").json()
    assert crossings["count"] == sum(row["in"] + row["out"] for row in video["line_crossings"])


def test_job_lists_are_org_scoped_with_real_rows(
    real_worker: RealWorker, api: Any, other_api: Any, enqueue_job: Callable[..., Any]
) -> None:
    # given: a job of acme that ran on the worker
    job = enqueue_job(steps=1, step_seconds=0)
    wait_for(lambda: job_row(job.pk).status in FINISHED, timeout=20, what="job", worker=real_worker)

    # then: globex neither finds nor lists it (PostgreSQL, not SQLite, answers the query)
    assert other_api.get(f"/api/v1/jobs/{job.pk}/").status_code == 404
    assert other_api.get("/api/v1/jobs/").json()["count"] == 0
    assert api.get("/api/v1/jobs/").json()["count"] == 1
