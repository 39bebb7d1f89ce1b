"""Portal shell views: dashboard and the job page (live progress)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from core.errors import NotFound
from core.jobs.selectors import job_get, job_list


def _actor_or_404(request: HttpRequest):  # type: ignore[no-untyped-def]
    actor = getattr(request, "actor", None)
    if actor is None:
        raise Http404("No organization.")
    return actor


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    actor = _actor_or_404(request)
    return render(request, "portal/dashboard.html", {"jobs": job_list(org=actor.organization)[:10]})


@login_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    actor = _actor_or_404(request)
    try:
        job = job_get(org=actor.organization, job_id=job_id)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    return render(request, "portal/job_detail.html", {"job": job})
