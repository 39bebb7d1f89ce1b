"""Reads on jobs: inside the actor's organization, and only the jobs the actor may see.

Who sees a job, the one rule (every list and every page of a job goes through `jobs_visible`):
- org admins (and the system actor of a worker) see every job of their organization;
- anyone else sees the platform's jobs and the jobs of the domains in `actor.scopes`: portal
  users get the scopes of their role (`ROLE_SCOPES`: a clinician sees medical jobs), API keys
  carry theirs;
- the `ml` scope names no domain, so it adds nothing: a training job belongs to the domain of
  the kind it trains, and its result (metrics of that domain's data, patient data for a
  medical kind) is shown to an `ml` key only if the key also holds that domain's scope.
A job outside the actor's view is "not found", exactly like another organization's job: its
existence is not disclosed.
"""

from __future__ import annotations

from django.db.models import QuerySet

from core.errors import NotFound
from core.jobs.choices import JOB_DOMAINS, PLATFORM_DOMAIN
from core.jobs.models import Job
from core.tenancy.actors import Actor


def job_domains_visible(*, actor: Actor) -> frozenset[str] | None:
    """The domains whose jobs `actor` may see, or None for all of them (org admins)."""
    if actor.is_org_admin:
        return None
    return frozenset(actor.scopes & JOB_DOMAINS) | {PLATFORM_DOMAIN}


def jobs_visible(*, actor: Actor) -> QuerySet[Job]:
    """The jobs of the actor's organization that the actor may see (see the module docstring)."""
    jobs = Job.objects.filter(organization=actor.organization)
    domains = job_domains_visible(actor=actor)
    return jobs if domains is None else jobs.filter(domain__in=domains)


def job_list(
    *, actor: Actor, status: str | None = None, kind: str | None = None, domain: str | None = None
) -> QuerySet[Job]:
    jobs = jobs_visible(actor=actor)
    if status:
        jobs = jobs.filter(status=status)
    if kind:
        jobs = jobs.filter(kind=kind)
    if domain:
        jobs = jobs.filter(domain=domain)
    return jobs


def job_get(*, actor: Actor, job_id: int, for_update: bool = False) -> Job:
    """The job, or NotFound when it is missing, of another organization, or outside the actor's view."""
    jobs = jobs_visible(actor=actor)
    if for_update:
        jobs = jobs.select_for_update()
    try:
        return jobs.get(pk=job_id)
    except (Job.DoesNotExist, ValueError, TypeError) as exc:
        raise NotFound("Job not found.") from exc
