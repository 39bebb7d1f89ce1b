"""Jobs through the API: progress, failure, transient retry with backoff, cancel, tenancy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from core.audit.models import AuditEvent
from core.jobs.choices import JobStatus
from core.jobs.models import Job
from core.jobs.runner import JobContext, TransientJobError, job_enqueue, job_execute, job_function
from core.jobs.services import job_cancel
from core.tenancy.actors import Actor
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db


@job_function("tests.progress_probe")
def progress_probe(ctx: JobContext) -> dict[str, Any]:
    """Reports half-way, then returns what the database said at that moment."""
    ctx.report(progress=0.5, message="half-way")
    seen = Job.objects.get(pk=ctx.job.pk)
    return {"seen_progress": seen.progress, "seen_message": seen.message}


@job_function("tests.flaky_once", backoff_seconds=2)
def flaky_once(ctx: JobContext) -> dict[str, Any]:
    if ctx.job.attempts == 1:
        raise TransientJobError("dependency hiccup")
    return {"attempt": ctx.job.attempts}


@job_function("tests.always_flaky", max_attempts=2, backoff_seconds=3)
def always_flaky(ctx: JobContext) -> None:
    raise TransientJobError("dependency down")


@job_function("tests.cancelled_then_flaky")
def cancelled_then_flaky(ctx: JobContext) -> None:
    job_cancel(actor=ctx.actor, job_id=ctx.job.pk)
    raise TransientJobError("noticed too late")


@job_function("tests.cancelled_midway")
def cancelled_midway(ctx: JobContext) -> dict[str, Any]:
    job_cancel(actor=ctx.actor, job_id=ctx.job.pk)
    ctx.report(progress=0.5)  # raises JobCancelled: the job function stops here
    return {"unreachable": True}


@pytest.fixture
def run_job(django_capture_on_commit_callbacks: Any, org: Any) -> Callable[..., Job]:
    """Enqueue a job of `org` and let its on-commit send run it inline (eager Celery)."""

    def run(kind: str, params: dict[str, Any] | None = None) -> Job:
        with django_capture_on_commit_callbacks(execute=True):
            job = job_enqueue(actor=Actor.system(org), kind=kind, params=params)
        job.refresh_from_db()
        return job

    return run


@pytest.fixture
def resends(monkeypatch: pytest.MonkeyPatch) -> list[float | None]:
    """Countdowns of the re-sends the Celery task asks for after a transient error."""
    from core.jobs import tasks

    seen: list[float | None] = []
    original = tasks.job_send

    def spy(*, job_id: int, countdown: float | None = None) -> None:
        seen.append(countdown)
        original(job_id=job_id, countdown=countdown)

    monkeypatch.setattr(tasks, "job_send", spy)
    return seen


def test_countdown_job_succeeds_with_progress_visible_through_the_api(api: APIClient, run_job: Any) -> None:
    # given
    job = run_job("core.countdown", {"steps": 3, "step_seconds": 0})
    # when
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    # then
    assert body["status"] == "succeeded"
    assert body["domain"] == "platform"
    assert body["progress"] == 1.0
    assert body["message"] == "Step 3 of 3"
    assert body["result"] == {"steps": 3, "attempt": 1}
    assert body["started_at"] and body["finished_at"]
    assert AuditEvent.objects.filter(action="core.job.succeeded", object_id=str(job.pk)).exists()


def test_progress_is_written_while_the_job_runs(api: APIClient, run_job: Any) -> None:
    # when
    job = run_job("tests.progress_probe")
    # then
    result = api.get(f"/api/v1/jobs/{job.pk}/").json()["result"]
    assert result == {"seen_progress": 0.5, "seen_message": "half-way"}


def test_failing_job_records_its_error(api: APIClient, run_job: Any) -> None:
    # when
    job = run_job("core.countdown", {"fail": True})
    # then
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["status"] == "failed"
    assert "Countdown asked to fail." in body["error"]
    assert body["result"] is None
    assert body["attempts"] == 1  # a plain error is not retried
    event = AuditEvent.objects.get(action="core.job.failed", object_id=str(job.pk))
    assert event.outcome == "failure"


def test_transient_error_is_retried_with_backoff_then_succeeds(
    api: APIClient, run_job: Any, resends: list[float | None]
) -> None:
    # when
    job = run_job("tests.flaky_once")
    # then: one re-send, delayed by the backoff (eager Celery runs it inline at once)
    assert resends == [2]
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["status"] == "succeeded"
    assert body["attempts"] == 2
    assert body["result"] == {"attempt": 2}
    assert body["message"] == "Retrying (attempt 2 of 3)."


def test_transient_errors_give_up_after_max_attempts(run_job: Any, resends: list[float | None]) -> None:
    # when
    job = run_job("tests.always_flaky")
    # then: backoff doubles per attempt; the last attempt fails the job with the error
    assert resends == [3]
    assert job.status == JobStatus.FAILED
    assert job.attempts == 2
    assert "dependency down" in job.error


def test_job_cancelled_while_running_is_not_retried(run_job: Any, resends: list[float | None]) -> None:
    # when
    job = run_job("tests.cancelled_then_flaky")
    # then
    assert resends == []
    assert job.status == JobStatus.CANCELLED
    assert job.attempts == 1


def test_job_cancelled_while_running_stops_at_its_next_report(run_job: Any) -> None:
    # when
    job = run_job("tests.cancelled_midway")
    # then
    assert job.status == JobStatus.CANCELLED
    assert job.result is None
    assert not AuditEvent.objects.filter(action="core.job.succeeded", object_id=str(job.pk)).exists()


def test_cancel_queued_job(api: APIClient, org: Any) -> None:
    # given: enqueued, not yet delivered (no commit in this test transaction)
    job = job_enqueue(actor=Actor.system(org), kind="core.countdown")
    # when
    response = api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    # then
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert AuditEvent.objects.filter(action="core.job.cancel", object_id=str(job.pk)).exists()
    # and a late delivery is dropped
    assert job_execute(job_id=job.pk).ran is False
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.attempts == 0


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_cancel_finished_job_is_409(api: APIClient, org: Any, status: str) -> None:
    # given
    job = Job.objects.create(organization=org, kind="core.countdown", domain="platform", status=status)
    # when
    response = api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    # then
    assert_error(response, 409, "job_finished")
    job.refresh_from_db()
    assert job.status == status


def test_other_orgs_job_is_404_for_detail_and_cancel(other_api: APIClient, org: Any) -> None:
    # given
    job = Job.objects.create(organization=org, kind="core.countdown", domain="platform")
    # when
    detail = other_api.get(f"/api/v1/jobs/{job.pk}/")
    cancel = other_api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    # then
    assert_error(detail, 404, "not_found")
    assert_error(cancel, 404, "not_found")
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED


def test_job_list_shows_only_own_organizations_jobs(api: APIClient, org: Any, other_org: Any) -> None:
    # given
    own = [Job.objects.create(organization=org, kind="core.countdown", domain="platform") for _ in range(2)]
    Job.objects.create(organization=other_org, kind="core.countdown", domain="platform")
    # when
    body = api.get("/api/v1/jobs/").json()
    # then
    assert body["count"] == 2
    assert {item["id"] for item in body["results"]} == {job.pk for job in own}


def test_job_list_filters_by_status(api: APIClient, org: Any, other_org: Any) -> None:
    # given
    done = Job.objects.create(organization=org, kind="core.countdown", domain="platform", status=JobStatus.SUCCEEDED)
    Job.objects.create(organization=org, kind="core.countdown", domain="platform")
    Job.objects.create(organization=other_org, kind="core.countdown", domain="platform", status=JobStatus.SUCCEEDED)
    # when
    body = api.get("/api/v1/jobs/", {"status": "succeeded"}).json()
    # then
    assert [item["id"] for item in body["results"]] == [done.pk]


def test_job_list_rejects_unknown_status(api: APIClient) -> None:
    # when
    response = api.get("/api/v1/jobs/", {"status": "exploded"})
    # then
    error = assert_error(response, 400, "invalid")
    assert "status" in error["fields"]
