"""The portal shell: dashboard, the job page with its live progress bar, and the demo job."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core.errors import Conflict
from core.jobs.runner import job_enqueue
from core.jobs.selectors import job_get, job_list
from core.jobs.services import job_cancel
from core.portal.access import member_required, not_found_as_404, org_admin_required, portal_actor
from core.tenancy.middleware import SESSION_ORG_KEY
from core.tenancy.selectors import memberships_for_user

RECENT_JOBS = 10
DEMO_JOB_KIND = "core.countdown"
DEMO_JOB_PARAMS = {"steps": 20, "step_seconds": 0.3}


@member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The organization's recent jobs that the member may see (their role's domains and the platform's)."""
    actor = portal_actor(request)
    jobs = job_list(actor=actor).select_related("created_by")[:RECENT_JOBS]
    return render(request, "portal/dashboard.html", {"jobs": jobs})


@member_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    """One job with its live progress bar; a job outside the member's view is a 404."""
    actor = portal_actor(request)
    with not_found_as_404():
        job = job_get(actor=actor, job_id=job_id)
    return render(request, "portal/job_detail.html", {"job": job})


@require_POST
@member_required
def job_cancel_view(request: HttpRequest, job_id: int) -> HttpResponse:
    actor = portal_actor(request)
    with not_found_as_404():
        try:
            job = job_cancel(actor=actor, job_id=job_id)
            messages.success(request, f"Job {job.pk} cancelled.")
        except Conflict as exc:
            messages.error(request, exc.message)
    return redirect("portal:job-detail", job_id=job_id)


@require_POST
@member_required
def organization_switch(request: HttpRequest) -> HttpResponse:
    """Act within another of the user's organizations (kept in the session)."""
    wanted = request.POST.get("organization", "")
    membership = next(
        (m for m in memberships_for_user(user=request.user) if str(m.organization_id) == wanted),
        None,
    )
    if membership is None:
        raise Http404("No such organization among your memberships.")
    request.session[SESSION_ORG_KEY] = membership.organization_id
    messages.success(request, f"Now working in {membership.organization.name}.")
    return redirect("portal:dashboard")


@require_POST
@org_admin_required
def demo_job_start(request: HttpRequest) -> HttpResponse:
    """Enqueue `core.countdown` (20 steps of 0.3 s): shows the worker and the progress bar at work."""
    job = job_enqueue(actor=portal_actor(request), kind=DEMO_JOB_KIND, params=DEMO_JOB_PARAMS)
    return redirect("portal:job-detail", job_id=job.pk)
