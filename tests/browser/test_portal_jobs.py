"""The live progress bar against a real Celery worker and PostgreSQL (integration + browser)."""

from __future__ import annotations

import os

import pytest

from core.tenancy.choices import Role
from tests.browser.conftest import login

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The demo job: 20 steps of 0.3 s. Generous, for a loaded machine.
JOB_TIMEOUT_MS = 60_000

# Records every value the bar shows, from before the first poll answer to the end.
RECORD_PROGRESS_JS = """
() => {
  const widget = document.querySelector("[data-job-progress]");
  const bar = widget.querySelector("[role=progressbar]");
  window.__progressSeen = [Number(bar.getAttribute("aria-valuenow"))];
  new MutationObserver(() => window.__progressSeen.push(Number(bar.getAttribute("aria-valuenow"))))
    .observe(bar, { attributes: true, attributeFilter: ["aria-valuenow"] });
}
"""


def test_run_demo_job_shows_live_progress_to_completion(
    real_services, real_worker, browser_page, live_server, org, make_member
):
    # given: an org admin on the dashboard, a real worker consuming the queues
    make_member(org, role=Role.ORG_ADMIN, username="boss", password="pass-1234")
    page = browser_page
    login(page, live_server, "boss", "pass-1234")
    # when
    page.click("[data-testid=run-demo-job]")
    page.wait_for_url(f"{live_server.url}/jobs/*/")
    page.evaluate(RECORD_PROGRESS_JS)
    # then: the bar reaches 100% with status succeeded, through intermediate values
    page.wait_for_selector("[data-job-progress][data-job-status=succeeded]", timeout=JOB_TIMEOUT_MS)
    seen = page.evaluate("window.__progressSeen")
    assert seen[-1] == 100, seen
    assert any(0 < value < 100 for value in seen), seen
    assert seen == sorted(seen), seen
    assert page.inner_text("[data-job-field=percent]") == "100%"
    assert page.inner_text("[data-job-field=status]") == "Succeeded"
    assert '"steps": 20' in page.inner_text("[data-job-field=result]")
    assert page.inner_text("[data-job-field=message]") == "Step 20 of 20"
    # and the Job row agrees: run by the worker, not inline
    from core.jobs.models import Job

    job = Job.objects.get(organization=org)
    assert (job.status, job.progress, job.attempts) == ("succeeded", 1.0, 1)
    hostname_pid_token = job.claimed_by.split(":")
    assert hostname_pid_token[1] != str(os.getpid())  # claimed by the worker process, not this one
