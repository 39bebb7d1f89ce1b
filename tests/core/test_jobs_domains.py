"""Jobs belong to a domain: who sees which job, through the API, the portal and the runner.

The rule (core.jobs.selectors): org admins see every job of their organization; anyone else sees
the platform's jobs and those of the domains in their scopes (a portal user's role gives the
scopes, an API key carries them; `ml` adds no domain). A hidden job is a 404, never a 403.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.test import Client

from core.jobs.choices import JOB_DOMAINS, JobStatus
from core.jobs.models import Job
from core.jobs.runner import JobContext, job_domain_of, job_enqueue, job_function, job_params_set, job_spec
from core.tenancy.actors import Actor
from core.tenancy.choices import Role
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db

ALL_DOMAINS = {"medical", "finance", "retail", "traffic", "platform"}


def _noop(ctx: JobContext) -> dict[str, Any]:
    return {"rows": 1}


# Fake domain job kinds, so the rule is tested without any domain app.
for _domain in ("medical", "finance", "retail", "traffic"):
    job_function(f"{_domain}.test_job")(_noop)
job_function("tests.filed_under_medical", domain="medical")(_noop)

# What each portal role and each single-scope API key may see.
ROLE_SEES: dict[str, set[str]] = {
    Role.CLINICIAN: {"medical", "platform"},
    Role.CREDIT_ANALYST: {"finance", "platform"},
    Role.MERCHANT: {"retail", "platform"},
    Role.TRAFFIC_OPERATOR: {"traffic", "platform"},
    Role.ORG_ADMIN: ALL_DOMAINS,
}
SCOPE_SEES: dict[str, set[str]] = {
    "medical": {"medical", "platform"},
    "finance": {"finance", "platform"},
    "retail": {"retail", "platform"},
    "traffic": {"traffic", "platform"},
    "ml": {"platform"},  # the registry scope names no domain: platform jobs only
}


@pytest.fixture
def domain_jobs(org: Any) -> dict[str, Job]:
    """One queued job per domain of `acme` (enqueued, never sent: the test transaction never commits)."""
    system = Actor.system(org)
    jobs = {domain: job_enqueue(actor=system, kind=f"{domain}.test_job") for domain in ALL_DOMAINS - {"platform"}}
    jobs["platform"] = job_enqueue(actor=system, kind="core.countdown")
    return jobs


def _listed_domains(client: Any, **query: str) -> set[str]:
    response = client.get("/api/v1/jobs/", query)
    assert response.status_code == 200, response.content
    return {item["domain"] for item in response.json()["results"]}


def _assert_hidden_in_api(client: Any, job: Job) -> None:
    assert_error(client.get(f"/api/v1/jobs/{job.pk}/"), 404, "not_found")
    assert_error(client.post(f"/api/v1/jobs/{job.pk}/cancel/"), 404, "not_found")
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED


# --- API: list, detail, cancel ---------------------------------------------------------------------


@pytest.mark.parametrize("role", list(ROLE_SEES))
def test_portal_user_polling_the_api_sees_exactly_their_domains_jobs(
    client_for: Callable[..., Client], org: Any, domain_jobs: dict[str, Job], role: str
) -> None:
    # given: a signed-in member (the progress widget polls the API with this session)
    client = client_for(org, role)
    # when / then: the list
    assert _listed_domains(client) == ROLE_SEES[role]
    # and each job: visible ones answer, hidden ones are 404 for detail and cancel
    for domain, job in domain_jobs.items():
        if domain in ROLE_SEES[role]:
            assert client.get(f"/api/v1/jobs/{job.pk}/").json()["domain"] == domain
        else:
            _assert_hidden_in_api(client, job)


@pytest.mark.parametrize("scope", list(SCOPE_SEES))
def test_api_key_with_one_scope_sees_exactly_its_domains_jobs(
    api_client_for: Callable[..., Any], org: Any, domain_jobs: dict[str, Job], scope: str
) -> None:
    # given
    api = api_client_for(org, scopes=(scope,))
    # when / then
    assert _listed_domains(api) == SCOPE_SEES[scope]
    for domain, job in domain_jobs.items():
        if domain in SCOPE_SEES[scope]:
            body = api.get(f"/api/v1/jobs/{job.pk}/").json()
            assert (body["id"], body["domain"]) == (job.pk, domain)
        else:
            _assert_hidden_in_api(api, job)


def test_api_key_with_one_scope_cancels_a_job_of_its_domain(
    api_client_for: Callable[..., Any], org: Any, domain_jobs: dict[str, Job]
) -> None:
    # when
    response = api_client_for(org, scopes=("finance",)).post(f"/api/v1/jobs/{domain_jobs['finance'].pk}/cancel/")
    # then
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"


def test_api_key_with_every_scope_sees_every_domain(api: Any, domain_jobs: dict[str, Job]) -> None:
    assert _listed_domains(api) == ALL_DOMAINS


def test_list_filters_by_domain(api: Any, domain_jobs: dict[str, Job]) -> None:
    # when
    body = api.get("/api/v1/jobs/", {"domain": "traffic"}).json()
    # then
    assert [item["id"] for item in body["results"]] == [domain_jobs["traffic"].pk]


def test_domain_filter_does_not_widen_the_view(
    api_client_for: Callable[..., Any], org: Any, domain_jobs: dict[str, Job]
) -> None:
    assert _listed_domains(api_client_for(org, scopes=("traffic",)), domain="medical") == set()


def test_list_rejects_an_unknown_domain(api: Any) -> None:
    # when
    response = api.get("/api/v1/jobs/", {"domain": "ml"})
    # then
    error = assert_error(response, 400, "invalid")
    assert "domain" in error["fields"]


def test_job_made_without_a_domain_is_seen_by_org_admins_only(
    api: Any, client_for: Callable[..., Client], org: Any
) -> None:
    # given: a row made by hand, not through job_enqueue (domain "")
    job = Job.objects.create(organization=org, kind="medical.test_job")
    # when / then: fail closed, even for a key with every scope
    assert_error(api.get(f"/api/v1/jobs/{job.pk}/"), 404, "not_found")
    assert client_for(org, Role.ORG_ADMIN).get(f"/api/v1/jobs/{job.pk}/").status_code == 200


# --- Portal: dashboard, job page, cancel -----------------------------------------------------------


@pytest.mark.parametrize("role", list(ROLE_SEES))
def test_dashboard_lists_exactly_the_jobs_of_the_members_domains(
    client_for: Callable[..., Client], org: Any, domain_jobs: dict[str, Job], role: str
) -> None:
    # when
    response = client_for(org, role).get("/")
    # then
    listed = list(response.context["jobs"])
    assert {job.domain for job in listed} == ROLE_SEES[role]
    assert len(listed) == len(ROLE_SEES[role])
    content = response.content.decode()
    for domain, job in domain_jobs.items():
        assert (f'href="/jobs/{job.pk}/"' in content) == (domain in ROLE_SEES[role])


@pytest.mark.parametrize("role", list(ROLE_SEES))
def test_job_page_and_cancel_of_a_hidden_job_are_404(
    client_for: Callable[..., Client], org: Any, domain_jobs: dict[str, Job], role: str
) -> None:
    # given
    client = client_for(org, role)
    for domain, job in domain_jobs.items():
        # when
        page = client.get(f"/jobs/{job.pk}/")
        # then
        if domain in ROLE_SEES[role]:
            assert page.status_code == 200
            assert f"<dd>{domain}</dd>" in page.content.decode()
        else:
            assert page.status_code == 404
            assert client.post(f"/jobs/{job.pk}/cancel/").status_code == 404
            job.refresh_from_db()
            assert job.status == JobStatus.QUEUED


def test_member_cancels_a_job_of_their_domain_from_its_page(
    client_for: Callable[..., Client], org: Any, domain_jobs: dict[str, Job]
) -> None:
    # when
    job = domain_jobs["traffic"]
    response = client_for(org, Role.TRAFFIC_OPERATOR).post(f"/jobs/{job.pk}/cancel/")
    # then
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


# --- Training jobs take the trained kind's domain -------------------------------------------------


@pytest.fixture
def medical_kind() -> Iterator[str]:
    """The tiny real torch kind of the registry tests, registered under a medical name."""
    from ml.kinds import register_kind, unregister_kind
    from tests.ml.tiny_kind import TinyLogReg

    class MedicalTiny(TinyLogReg):
        name = "medical.tiny_logreg"

    register_kind(MedicalTiny())
    yield MedicalTiny.name
    unregister_kind(MedicalTiny.name)


def test_training_job_of_a_medical_kind_is_medical(
    org: Any,
    medical_kind: str,
    client_for: Callable[..., Client],
    api_client_for: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given: a finished training run of a medical kind (its job runs inline on commit)
    from ml.training import training_run_create

    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_create(
            actor=Actor.system(org),
            model_name="xray",
            kind=medical_kind,
            data={"n": 100, "seed": 0},
            params={"epochs": 1, "steps_per_epoch": 20},
        )
    url = f"/api/v1/jobs/{run.job_id}/"
    # then: the job's params were set before it was sent, and it ran
    job = Job.objects.get(pk=run.job_id)
    assert (job.kind, job.domain, job.params, job.status) == (
        "ml.train",
        "medical",
        {"training_run_id": run.pk},
        "succeeded",
    )
    # and a clinician and a medical+ml key see it with its result
    assert client_for(org, Role.CLINICIAN).get(url).json()["result"]["version"] == 1
    assert api_client_for(org, scopes=("ml", "medical")).get(url).json()["domain"] == "medical"
    # and the registry scope alone, or another domain, does not
    assert_error(api_client_for(org, scopes=("ml",)).get(url), 404, "not_found")
    assert_error(client_for(org, Role.CREDIT_ANALYST).get(url), 404, "not_found")


# --- Runner: where the domain comes from ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "domain"),
    [
        ("finance.batch_score", "finance"),
        ("traffic.video_count", "traffic"),
        ("medical.test_job", "medical"),
        ("core.countdown", "platform"),
        ("ml.train", "platform"),  # ml is no domain; training jobs pass the trained kind's domain
        ("tests.tiny_logreg", "platform"),
        ("nodot", "platform"),
    ],
)
def test_domain_of_a_dotted_name(name: str, domain: str) -> None:
    assert job_domain_of(name) == domain


def test_kind_records_its_default_domain() -> None:
    assert job_spec("medical.test_job").domain == "medical"
    assert job_spec("core.countdown").domain == "platform"
    assert job_spec("tests.filed_under_medical").domain == "medical"  # job_function(domain=...)


def test_enqueue_uses_the_kinds_domain_unless_overridden(org: Any) -> None:
    system = Actor.system(org)
    assert job_enqueue(actor=system, kind="tests.filed_under_medical").domain == "medical"
    overridden = job_enqueue(actor=system, kind="core.countdown", domain="retail")
    overridden.refresh_from_db()
    assert overridden.domain == "retail"


def test_unknown_domains_are_refused(org: Any) -> None:
    with pytest.raises(ValueError, match="Unknown job domain 'ml'"):
        job_function("tests.never_registered", domain="ml")
    with pytest.raises(ValueError, match="Unknown job domain 'hospital'"):
        job_enqueue(actor=Actor.system(org), kind="core.countdown", domain="hospital")
    assert not Job.objects.exists()
    with pytest.raises(LookupError):
        job_spec("tests.never_registered")


def test_known_domains_are_the_business_scopes_and_platform() -> None:
    assert JOB_DOMAINS == ALL_DOMAINS


# --- job_params_set: params that name a row created after the job ---------------------------------


def test_params_set_before_the_commit_are_what_the_worker_reads(
    org: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # when: job first, params after, in one transaction; the commit sends (and here runs) it
    with django_capture_on_commit_callbacks(execute=True):
        job = job_enqueue(actor=Actor.system(org), kind="core.countdown")
        job_params_set(job=job, params={"steps": 2, "step_seconds": 0})
    # then
    job.refresh_from_db()
    assert (job.status, job.result) == ("succeeded", {"steps": 2, "attempt": 1})


def test_params_cannot_change_once_the_job_was_sent(org: Any, django_capture_on_commit_callbacks: Any) -> None:
    # given: a job sent on commit
    with django_capture_on_commit_callbacks(execute=True):
        job = job_enqueue(actor=Actor.system(org), kind="core.countdown", params={"steps": 1, "step_seconds": 0})
    # when / then
    with pytest.raises(RuntimeError, match="already sent"):
        job_params_set(job=job, params={"steps": 99})
    job.refresh_from_db()
    assert job.params == {"steps": 1, "step_seconds": 0}


# --- Migration 0002: the backfill of existing rows ------------------------------------------------

migration = importlib.import_module("core.migrations.0002_job_domain")


@pytest.mark.parametrize(
    ("kind", "trained_kind", "domain"),
    [
        ("finance.batch_score", None, "finance"),
        ("finance.monitoring", None, "finance"),
        ("traffic.video_count", None, "traffic"),
        ("core.countdown", None, "platform"),
        ("ml.train", "traffic.yolo_detector", "traffic"),
        ("ml.train", "medical.image_classifier", "medical"),
        ("ml.train", "tests.tiny_logreg", "platform"),
        ("ml.train", None, "platform"),  # no training run (or no ml app)
        ("tests.other", None, "platform"),
    ],
)
def test_backfill_domain_of_an_existing_job(kind: str, trained_kind: str | None, domain: str) -> None:
    assert migration.job_domain_for(kind, trained_kind) == domain


def _legacy_jobs(org: Any) -> dict[str, Job]:
    """Rows as they were before the field: domain unset."""
    from ml.models import RegisteredModel, TrainingRun

    jobs = {
        kind: Job.objects.create(organization=org, kind=kind)
        for kind in ("finance.batch_score", "traffic.video_count", "core.countdown")
    }
    jobs["ml.train"] = train_job = Job.objects.create(organization=org, kind="ml.train")
    model = RegisteredModel.objects.create(organization=org, name="credit", kind="finance.credit_xgboost")
    TrainingRun.objects.create(organization=org, registered_model=model, job=train_job, kind=model.kind)
    return jobs


def test_backfill_sets_every_existing_jobs_domain(org: Any) -> None:
    # given
    jobs = _legacy_jobs(org)
    # when
    migration.backfill_job_domains(django_apps, None)
    # then
    domains = {kind: Job.objects.get(pk=job.pk).domain for kind, job in jobs.items()}
    assert domains == {
        "finance.batch_score": "finance",
        "traffic.video_count": "traffic",
        "core.countdown": "platform",
        "ml.train": "finance",
    }


def test_backfill_without_the_ml_app_files_training_jobs_under_the_platform(org: Any) -> None:
    # given
    jobs = _legacy_jobs(org)

    class AppsWithoutMl:
        def get_model(self, app_label: str, model_name: str) -> Any:
            if app_label == "ml":
                raise LookupError(f"No installed app with label {app_label!r}.")
            return django_apps.get_model(app_label, model_name)

    # when
    migration.backfill_job_domains(AppsWithoutMl(), None)
    # then
    assert Job.objects.get(pk=jobs["ml.train"].pk).domain == "platform"
    assert Job.objects.get(pk=jobs["finance.batch_score"].pk).domain == "finance"
