"""The runner's claim: which deliveries run, which are dropped, who may write the outcome."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from core.audit.models import AuditEvent
from core.jobs.choices import JobStatus
from core.jobs.models import Job
from core.jobs.runner import JobCancelled, JobContext, job_claim, job_execute, job_function, jobs_requeue_stale

pytestmark = pytest.mark.django_db


@job_function("tests.taken_over_midway")
def taken_over_midway(ctx: JobContext) -> dict[str, Any]:
    """Simulates a worker that froze: while it runs, another worker takes the job over."""
    Job.objects.filter(pk=ctx.job.pk).update(heartbeat_at=_stale())
    assert job_claim(job_id=ctx.job.pk, token="worker-b") is not None
    with suppress(JobCancelled):  # the old owner's progress is refused; it carries on as a buggy job might
        ctx.report(progress=0.9)
    return {"written_by": "worker-a"}


def _stale() -> Any:
    return timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 1)


@pytest.fixture
def make_job(org: Any) -> Callable[..., Job]:
    def make(**fields: Any) -> Job:
        defaults: dict[str, Any] = {
            "organization": org,
            "kind": "core.countdown",
            "domain": "platform",
            "params": {"steps": 1, "step_seconds": 0},
        }
        return Job.objects.create(**{**defaults, **fields})

    return make


def test_delivery_of_a_succeeded_job_is_dropped(make_job: Callable[..., Job]) -> None:
    # given
    job = make_job(status=JobStatus.SUCCEEDED, attempts=1, result={"steps": 1})
    # when
    claimed = job_claim(job_id=job.pk, token="late")
    outcome = job_execute(job_id=job.pk)
    # then
    assert claimed is None
    assert outcome.ran is False
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 1, {"steps": 1})


def test_delivery_while_the_owner_heartbeats_is_dropped(make_job: Callable[..., Job]) -> None:
    # given
    job = make_job(status=JobStatus.RUNNING, attempts=1, claimed_by="owner", heartbeat_at=timezone.now())
    # when
    claimed = job_claim(job_id=job.pk, token="duplicate")
    # then
    assert claimed is None
    job.refresh_from_db()
    assert (job.claimed_by, job.attempts, job.status) == ("owner", 1, JobStatus.RUNNING)


def test_stale_heartbeat_is_taken_over(make_job: Callable[..., Job]) -> None:
    # given
    job = make_job(status=JobStatus.RUNNING, attempts=1, claimed_by="dead", heartbeat_at=_stale())
    # when
    claimed = job_claim(job_id=job.pk, token="rescuer")
    # then
    assert claimed is not None
    job.refresh_from_db()
    assert (job.claimed_by, job.attempts, job.status) == ("rescuer", 2, JobStatus.RUNNING)
    assert job.heartbeat_at is not None and timezone.now() - job.heartbeat_at < timedelta(seconds=5)
    assert "Resumed on another worker" in job.message


def test_queued_job_is_claimed(make_job: Callable[..., Job]) -> None:
    # given
    job = make_job()
    # when
    claimed = job_claim(job_id=job.pk, token="first")
    # then
    assert claimed is not None
    assert (claimed.status, claimed.attempts, claimed.claimed_by) == (JobStatus.RUNNING, 1, "first")
    assert claimed.started_at is not None


def test_missing_job_is_dropped() -> None:
    assert job_claim(job_id=987654, token="any") is None


def test_only_the_claiming_execution_writes_the_outcome(make_job: Callable[..., Job]) -> None:
    # given
    job = make_job(kind="tests.taken_over_midway")
    # when: worker A runs it, worker B takes over meanwhile, A returns a result anyway
    outcome = job_execute(job_id=job.pk)
    # then: A's late finish does nothing; the job is still B's to finish
    assert outcome.ran is True and outcome.status is None
    job.refresh_from_db()
    assert (job.status, job.claimed_by, job.result, job.attempts) == (JobStatus.RUNNING, "worker-b", None, 2)
    assert not AuditEvent.objects.filter(object_type="core.job", object_id=str(job.pk)).exists()


def test_old_owner_cannot_report_progress_after_takeover(make_job: Callable[..., Job]) -> None:
    # given
    job = make_job(status=JobStatus.RUNNING, attempts=1, claimed_by="old", heartbeat_at=_stale())
    assert job_claim(job_id=job.pk, token="new") is not None
    old = JobContext(job=job, token="old")
    # when / then
    with pytest.raises(JobCancelled):
        old.report(progress=0.7, message="from the past")
    job.refresh_from_db()
    assert job.progress == 0.0
    assert job.message != "from the past"


@pytest.mark.parametrize("status", [JobStatus.RUNNING, JobStatus.QUEUED])
def test_max_attempts_exceeded_fails_the_job(make_job: Callable[..., Job], status: str) -> None:
    # given: every attempt used, the last owner gone
    job = make_job(status=status, attempts=3, max_attempts=3, claimed_by="dead", heartbeat_at=_stale())
    # when
    claimed = job_claim(job_id=job.pk, token="rescuer")
    # then
    assert claimed is None
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "Gave up after 3 attempts" in job.error
    assert job.finished_at is not None
    event = AuditEvent.objects.get(action="core.job.failed", object_id=str(job.pk))
    assert event.outcome == "failure"


def test_requeue_resends_stale_running_jobs_and_they_finish(make_job: Callable[..., Job]) -> None:
    # given
    stale = make_job(status=JobStatus.RUNNING, attempts=1, claimed_by="dead", heartbeat_at=_stale())
    alive = make_job(status=JobStatus.RUNNING, attempts=1, claimed_by="alive", heartbeat_at=timezone.now())
    # when: eager Celery runs each re-sent job inline
    resent = jobs_requeue_stale()
    # then
    assert resent == [stale.pk]
    stale.refresh_from_db()
    alive.refresh_from_db()
    assert (stale.status, stale.attempts, stale.result) == (JobStatus.SUCCEEDED, 2, {"steps": 1, "attempt": 2})
    assert (alive.status, alive.claimed_by) == (JobStatus.RUNNING, "alive")


def test_requeue_resends_queued_jobs_whose_message_was_lost(make_job: Callable[..., Job]) -> None:
    # given
    long_ago = timezone.now() - timedelta(hours=2)
    lost = make_job(enqueued_at=long_ago)
    recent = make_job(enqueued_at=timezone.now())
    # when
    resent = jobs_requeue_stale()
    # then
    assert resent == [lost.pk]
    lost.refresh_from_db()
    recent.refresh_from_db()
    assert lost.status == JobStatus.SUCCEEDED
    assert recent.status == JobStatus.QUEUED
