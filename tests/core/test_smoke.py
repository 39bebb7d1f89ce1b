import pytest

from tests.conftest import assert_error


@pytest.mark.django_db(transaction=True)
def test_countdown_job_runs_inline_and_is_readable_through_the_api(api, org):
    # given
    from core.jobs.runner import job_enqueue
    from core.tenancy.actors import Actor

    # when
    job = job_enqueue(actor=Actor.system(org), kind="core.countdown", params={"steps": 3, "step_seconds": 0})
    # then
    response = api.get(f"/api/v1/jobs/{job.pk}/")
    body = response.json()
    assert body["status"] == "succeeded"
    assert body["progress"] == 1.0
    assert body["result"] == {"steps": 3, "attempt": 1}


@pytest.mark.django_db
def test_other_org_job_is_404(other_api, org):
    from core.jobs.models import Job

    job = Job.objects.create(organization=org, kind="core.countdown")
    assert_error(other_api.get(f"/api/v1/jobs/{job.pk}/"), 404, "not_found")


@pytest.mark.django_db
def test_no_key_is_401(client):
    assert_error(client.get("/api/v1/jobs/"), 401)
