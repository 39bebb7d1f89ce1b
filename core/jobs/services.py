"""Writes on jobs that users ask for (cancel). Creating jobs is `core.jobs.runner.job_enqueue`."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from core.audit.services import audit_record
from core.errors import Conflict
from core.jobs.choices import TERMINAL_STATUSES, JobStatus
from core.jobs.models import Job
from core.jobs.selectors import job_get
from core.tenancy.actors import Actor


@transaction.atomic
def job_cancel(*, actor: Actor, job_id: int) -> Job:
    """Cancel a queued or running job. A running job stops at its next progress report.

    A job the actor may not see (`core.jobs.selectors`) is NotFound, as for reading it.
    """
    job = job_get(actor=actor, job_id=job_id, for_update=True)
    if job.status in TERMINAL_STATUSES:
        raise Conflict(f"Job {job.pk} already {job.status}; it cannot be cancelled.", code="job_finished")
    job.status = JobStatus.CANCELLED
    job.finished_at = timezone.now()
    job.message = f"Cancelled by {actor.label}."
    job.save(update_fields=["status", "finished_at", "message", "updated_at"])
    audit_record(actor=actor, action="core.job.cancel", obj=job, details={"kind": job.kind})
    return job
