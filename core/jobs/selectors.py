"""Reads on jobs, always inside one organization."""

from __future__ import annotations

from django.db.models import QuerySet

from core.errors import NotFound
from core.jobs.models import Job
from core.tenancy.models import Organization


def job_list(*, org: Organization, status: str | None = None, kind: str | None = None) -> QuerySet[Job]:
    jobs = Job.objects.filter(organization=org)
    if status:
        jobs = jobs.filter(status=status)
    if kind:
        jobs = jobs.filter(kind=kind)
    return jobs


def job_get(*, org: Organization, job_id: int, for_update: bool = False) -> Job:
    jobs = Job.objects.select_for_update() if for_update else Job.objects.all()
    try:
        return jobs.get(organization=org, pk=job_id)
    except (Job.DoesNotExist, ValueError, TypeError) as exc:
        raise NotFound("Job not found.") from exc
