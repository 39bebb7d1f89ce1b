"""The portal shell: login, navigation by role, dashboard, job pages and the demo job."""

from __future__ import annotations

import pytest

from core.tenancy.choices import Role

pytestmark = pytest.mark.django_db

ADMIN_ENTRIES = {"Models", "API keys", "Audit"}


def nav_labels(response) -> list[str]:
    return [item.label for item in response.context["portal_nav"]]


def test_anonymous_visitor_is_sent_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/")


def test_login_page_and_sign_in(client, org, make_member):
    # given
    make_member(org, role=Role.CREDIT_ANALYST, username="ana", password="pass-1234")
    assert client.get("/login/").status_code == 200
    # when
    response = client.post("/login/", {"username": "ana", "password": "pass-1234"}, follow=True)
    # then
    assert response.redirect_chain[-1][0] == "/"
    content = response.content.decode()
    assert "Acme" in content and "ana" in content and "Credit analyst" in content


def test_wrong_password_stays_on_login(client, org, make_member):
    make_member(org, role=Role.ORG_ADMIN, username="boss", password="pass-1234")
    response = client.post("/login/", {"username": "boss", "password": "nope"})
    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()


def test_logout_ends_the_session(client_for, org):
    client = client_for(org, Role.MERCHANT)
    response = client.post("/logout/")
    assert response.status_code == 302
    assert client.get("/").status_code == 302


def test_user_without_membership_gets_403(client, django_user_model):
    user = django_user_model.objects.create_user(username="lonely", password="pass-1234")
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 403
    assert "not a member" in response.content.decode()


@pytest.mark.parametrize("role", [r for r in Role.values if r != Role.ORG_ADMIN])
def test_non_admin_roles_do_not_see_admin_navigation(client_for, org, role):
    from core.apps import domain_app_configs

    response = client_for(org, role).get("/")
    assert response.status_code == 200
    labels = set(nav_labels(response))
    assert "Dashboard" in labels
    assert not labels & ADMIN_ENTRIES
    expected_domains = {c.nav_label for c in domain_app_configs() if c.nav_label and c.portal_urls and role in c.roles}
    domain_labels = {c.nav_label for c in domain_app_configs() if c.nav_label}
    assert labels & domain_labels == expected_domains


def test_org_admin_sees_every_domain_and_the_admin_pages(admin_client_acme):
    from core.apps import domain_app_configs

    response = admin_client_acme.get("/")
    labels = nav_labels(response)
    assert set(labels) >= ADMIN_ENTRIES
    assert {c.nav_label for c in domain_app_configs() if c.nav_label and c.portal_urls} <= set(labels)
    assert labels[0] == "Dashboard"
    assert "Run demo job" in response.content.decode()


def test_domain_nav_entry_follows_nav_label_and_roles(client_for, org, monkeypatch):
    # given: the finance app declares portal pages (as it will once it has them)
    from django.apps import apps

    finance = apps.get_app_config("finance")
    monkeypatch.setattr(type(finance), "nav_label", "Credit risk")
    monkeypatch.setattr(type(finance), "portal_urls", "core.portal.urls")  # any URL module will do here
    # then
    assert "Credit risk" in nav_labels(client_for(org, Role.CREDIT_ANALYST).get("/"))
    assert "Credit risk" in nav_labels(client_for(org, Role.ORG_ADMIN).get("/"))
    assert "Credit risk" not in nav_labels(client_for(org, Role.CLINICIAN).get("/"))


@pytest.mark.parametrize("path", ["/models/", "/api-keys/", "/api-keys/new/", "/audit/"])
def test_admin_pages_are_403_for_other_roles(client_for, org, path):
    assert client_for(org, Role.TRAFFIC_OPERATOR).get(path).status_code == 403


@pytest.mark.parametrize("path", ["/models/", "/api-keys/", "/audit/"])
def test_admin_pages_render_for_org_admins(admin_client_acme, path):
    assert admin_client_acme.get(path).status_code == 200


def test_dashboard_lists_recent_jobs_of_the_own_org_only(client_for, org, other_org):
    from core.jobs.models import Job

    mine = Job.objects.create(
        organization=org, kind="core.countdown", domain="platform", progress=0.4, status="running"
    )
    theirs = Job.objects.create(organization=other_org, kind="core.countdown", domain="platform")
    response = client_for(org, Role.CLINICIAN).get("/")
    jobs = list(response.context["jobs"])
    assert mine in jobs and theirs not in jobs
    assert 'aria-valuenow="40"' in response.content.decode()


def test_job_page_shows_the_progress_widget(client_for, org):
    from core.jobs.models import Job

    job = Job.objects.create(
        organization=org, kind="core.countdown", domain="platform", progress=0.25, status="running"
    )
    response = client_for(org, Role.MERCHANT).get(f"/jobs/{job.pk}/")
    assert response.status_code == 200
    content = response.content.decode()
    assert f'data-job-url="/api/v1/jobs/{job.pk}/"' in content
    assert 'aria-valuenow="25"' in content
    assert "<dt>Domain</dt><dd>platform</dd>" in content
    assert "portal/job_progress.js" in content


def test_job_page_of_another_org_is_404(client_for, org, other_org):
    from core.jobs.models import Job

    job = Job.objects.create(organization=other_org, kind="core.countdown", domain="platform")
    response = client_for(org, Role.ORG_ADMIN).get(f"/jobs/{job.pk}/")
    assert response.status_code == 404
    assert client_for(org, Role.ORG_ADMIN).post(f"/jobs/{job.pk}/cancel/").status_code == 404


def test_job_can_be_cancelled_from_its_page(client_for, org):
    from core.jobs.models import Job

    job = Job.objects.create(organization=org, kind="core.countdown", domain="platform")
    response = client_for(org, Role.CLINICIAN).post(f"/jobs/{job.pk}/cancel/", follow=True)
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert "cancelled" in response.content.decode()


def test_run_demo_job_enqueues_countdown_and_redirects_to_its_page(client_for, org):
    # given: the test transaction never commits, so the job is enqueued but not sent (no 6 s wait)
    from core.jobs.models import Job

    client = client_for(org, Role.ORG_ADMIN)
    # when
    response = client.post("/jobs/demo/")
    # then
    job = Job.objects.get(organization=org)
    assert response.status_code == 302
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert (job.kind, job.domain) == ("core.countdown", "platform")
    assert job.params == {"steps": 20, "step_seconds": 0.3}
    assert job.status == "queued"


def test_demo_job_is_admin_only_and_post_only(client_for, org):
    assert client_for(org, Role.CREDIT_ANALYST).post("/jobs/demo/").status_code == 403
    assert client_for(org, Role.ORG_ADMIN).get("/jobs/demo/").status_code == 405


def test_portal_session_can_poll_the_job_api(client_for, org):
    from core.jobs.models import Job

    job = Job.objects.create(organization=org, kind="core.countdown", domain="platform", progress=0.5, status="running")
    response = client_for(org, Role.MERCHANT).get(f"/api/v1/jobs/{job.pk}/")
    assert response.status_code == 200
    assert response.json()["progress"] == 0.5


def test_member_of_two_orgs_switches_organization(client, org, other_org, make_member):
    # given: one user, admin in acme and merchant in globex
    user = make_member(org, role=Role.ORG_ADMIN, username="both")
    make_member(other_org, role=Role.MERCHANT, username="both")
    user.refresh_from_db()  # the second call re-set the password (and the session hash)
    client.force_login(user)
    assert client.get("/").context["actor"].organization == org
    assert 'id="org-switch"' in client.get("/").content.decode()
    # when
    response = client.post("/organization/", {"organization": str(other_org.pk)}, follow=True)
    # then
    actor = response.context["actor"]
    assert (actor.organization, actor.role) == (other_org, Role.MERCHANT)
    assert "Models" not in nav_labels(response)


def test_switching_to_an_org_without_membership_is_404(client_for, org, other_org):
    client = client_for(org, Role.ORG_ADMIN)
    assert client.post("/organization/", {"organization": str(other_org.pk)}).status_code == 404
    assert client.get("/").context["actor"].organization == org


def test_portal_static_files_are_found():
    # The job page is only live if its script is served (STATICFILES_DIRS must list core/portal/static).
    from django.contrib.staticfiles import finders

    assert finders.find("portal/job_progress.js")
    assert finders.find("portal/portal.css")
