"""Celery transport for jobs: ids in, runner call, nothing else."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from core.jobs.runner import job_execute, job_send, jobs_requeue_stale


@shared_task(name="core.jobs.tasks.run_job", bind=True, acks_late=True, reject_on_worker_lost=True)
def run_job(self: Any, job_id: int) -> str | None:
    # A soft time limit raises inside the job function; the runner records it as a failure.
    outcome = job_execute(job_id=job_id)
    if outcome.retry_in is not None:
        # A new message rather than Celery's `self.retry()`: the Job row carries the attempt
        # count. Under eager Celery (tests) this runs the retry inline at once (countdown is
        # ignored), nested in this call; the claim still sees a queued job and takes it.
        job_send(job_id=job_id, countdown=outcome.retry_in)
    return outcome.status


@shared_task(name="core.jobs.tasks.requeue_stale_jobs")
def requeue_stale_jobs() -> list[int]:
    return jobs_requeue_stale()
