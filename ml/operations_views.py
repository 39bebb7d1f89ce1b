"""The operations page (org admins): serving telemetry per model, jobs and processes.

Mounted at `/models/-/operations/`: the `-` segment cannot be a model name (names start with a
letter or digit), so the page never shadows a model's own page.
"""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from core.jobs.choices import JobQueue
from core.portal.access import org_admin_required, portal_actor
from core.portal.charts import BarSeries, column_chart, hbar_chart
from core.telemetry.selectors import job_durations, job_queue_depths, process_heartbeats, running_jobs
from ml.operations import WINDOW_HOURS, model_operations, window_hours


@org_admin_required
def operations_view(request: HttpRequest) -> HttpResponse:
    org = portal_actor(request).organization
    hours = window_hours(request.GET.get("hours"))
    now = timezone.now()
    since = now - timedelta(hours=hours)

    depths = job_queue_depths(org=org)
    queues = sorted(set(JobQueue.values) | set(depths))
    depth_svg = column_chart(
        title="Job queue depth now",
        categories=queues,
        series=[
            BarSeries("queued", [depths.get(q, {}).get("queued", 0) for q in queues], "amber"),
            BarSeries("running", [depths.get(q, {}).get("running", 0) for q in queues], "blue"),
        ],
        y_label="Jobs",
        width=480,
        max_width=560,
        integer_values=True,
        empty_message="No queued or running jobs",
    )
    durations = job_durations(org=org, since=since)
    outcomes = sorted({outcome for d in durations for outcome in d.outcomes})
    kinds = [f"{d.queue}/{d.kind}" for d in durations]
    outcome_colours = {"succeeded": "green", "failed": "red", "cancelled": "grey", "retry": "amber"}
    outcomes_svg = column_chart(
        title="Job executions by outcome",
        categories=kinds,
        series=[BarSeries(o, [d.outcomes.get(o, 0) for d in durations], outcome_colours.get(o)) for o in outcomes],
        y_label="Executions",
        width=480,
        max_width=560,
        integer_values=True,
        empty_message="No job ended in this window",
    )
    duration_svg = (
        hbar_chart(
            [(f"{d.kind} p50", d.p50_s or 0.0) for d in durations]
            + [(f"{d.kind} p99", d.p99_s or 0.0) for d in durations],
            title="Job run time (seconds)",
            value_format="{:.2f} s",
        )
        if durations
        else None
    )
    heartbeats = process_heartbeats(now=now)
    heartbeat_svg = (
        hbar_chart(
            [(f"{h.role} {h.host}:{h.pid}", h.age_s) for h in heartbeats],
            title="Seconds since each process last reported",
            value_format="{:.0f} s",
            colour_name="green",
        )
        if heartbeats
        else None
    )
    running = [
        (job, (now - job.heartbeat_at).total_seconds() if job.heartbeat_at else None) for job in running_jobs(org=org)
    ]
    context = {
        "hours": hours,
        "window_choices": WINDOW_HOURS,
        "models": model_operations(org=org, hours=hours, now=now),
        "depth_svg": depth_svg,
        "outcomes_svg": outcomes_svg,
        "duration_svg": duration_svg,
        "durations": durations,
        "heartbeat_svg": heartbeat_svg,
        "heartbeats": heartbeats,
        "running": running,
    }
    return render(request, "ml/operations.html", context)
