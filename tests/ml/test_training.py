"""`ml.training`: a training run is a job that reports progress and live metrics, then makes a version."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_training_run_reports_progress_and_live_metrics(api, org, ml_admin, train):
    # when
    run = train(org, user=ml_admin)
    # then
    job = api.get(f"/api/v1/jobs/{run.job_id}/").json()
    assert job["status"] == "succeeded"
    assert job["progress"] == 1.0
    assert job["result"]["version"] == 1
    assert [entry["epoch"] for entry in run.live_metrics] == [1, 2, 3, 4]
    assert all({"at", "loss", "accuracy"} <= set(entry) for entry in run.live_metrics)
    assert run.live_metrics[-1]["loss"] < 0.5
    assert run.version.metrics["accuracy"] == run.live_metrics[-1]["accuracy"]


def test_promote_on_training_makes_the_new_version_production(api, org, ml_admin, train):
    # given
    train(org, user=ml_admin)
    # when
    train(org, user=ml_admin, seed=1, promote=True)
    # then
    assert api.get("/api/v1/ml/models/tiny/").json()["aliases"] == {"production": 2}
    reasons = [e["reason"] for e in api.get("/api/v1/ml/models/tiny/aliases/history/").json()["results"]]
    assert reasons == ["promoted on creation", "first version"]


def test_a_run_executed_twice_yields_one_version(org, ml_admin, train):
    # given
    from core.jobs.models import Job
    from core.jobs.runner import JobContext
    from ml.models import ModelVersion
    from ml.training import train as train_job

    run = train(org, user=ml_admin)
    # when: a redelivery after a crash reaches the job function again
    result = train_job(JobContext(job=Job.objects.get(pk=run.job_id), token="t"))
    # then
    assert result is not None
    assert result["version"] == 1
    assert ModelVersion.objects.filter(registered_model=run.registered_model).count() == 1
