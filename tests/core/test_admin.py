"""The back office: org-scoped for non-superuser staff, audited writes, read-only audit and jobs."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.admin import ModelAdmin
from django.contrib.admin.sites import AdminSite
from django.contrib.auth.models import Permission
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from core.adminkit import OrganizationScopedAdminMixin
from core.audit.admin import AuditEventAdmin
from core.audit.models import AuditEvent
from core.audit.services import audit_record
from core.jobs.admin import JobAdmin
from core.jobs.models import Job
from core.tenancy.actors import Actor
from core.tenancy.admin import ApiKeyAdmin
from core.tenancy.models import ApiKey, Membership
from core.tenancy.services import api_key_create

pytestmark = pytest.mark.django_db

STAFF_PERMISSIONS = [
    "view_organization",
    "view_membership",
    "change_membership",
    "view_apikey",
    "add_apikey",
    "change_apikey",
    "view_auditevent",
    "view_job",
]


@pytest.fixture
def superuser(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser("root", "root@example.org", "root-pass-123")


@pytest.fixture
def make_staff(make_member: Callable[..., Any]) -> Callable[..., Any]:
    """A staff user with the core admin permissions and `role` in `org`."""

    def make(org: Any, role: str = "org_admin") -> Any:
        user = make_member(org, role, username=f"staff-{org.slug}-{role}")
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        permissions = Permission.objects.filter(content_type__app_label="core", codename__in=STAFF_PERMISSIONS)
        user.user_permissions.set(permissions)
        return user

    return make


@pytest.fixture
def both_orgs_rows(org: Any, other_org: Any, make_member: Callable[..., Any]) -> dict[str, dict[str, Any]]:
    """A job, an API key, an audit event and a membership in each organization."""
    rows: dict[str, dict[str, Any]] = {}
    for tenant in (org, other_org):
        actor = Actor.system(tenant)
        rows[tenant.slug] = {
            "job": Job.objects.create(organization=tenant, kind="core.countdown"),
            "apikey": api_key_create(actor=actor, name=f"{tenant.slug}-key", scopes=["ml"]).api_key,
            "auditevent": audit_record(actor=actor, action=f"tests.{tenant.slug}.did"),
            "membership": Membership.objects.get(user=make_member(tenant, "merchant")),
        }
    return rows


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def changelist_rows(client: Client, model: str, params: dict[str, Any] | None = None) -> list[Any]:
    response = client.get(f"/admin/core/{model}/", params or {})
    assert response.status_code == 200, response.status_code
    return list(response.context["cl"].queryset)


# --- Tenancy of the back office ------------------------------------------------------------------


@pytest.mark.parametrize("model", ["job", "apikey", "auditevent"])
def test_org_admin_staff_sees_only_their_organizations_rows(
    model: str, org: Any, make_staff: Callable[..., Any], both_orgs_rows: Any
) -> None:
    # given
    client = login(make_staff(org))
    # when
    rows = changelist_rows(client, model)
    # then
    assert rows and {row.organization_id for row in rows} == {org.pk}
    assert both_orgs_rows["acme"][model] in rows


@pytest.mark.parametrize("model", ["job", "apikey", "auditevent", "membership"])
def test_org_admin_staff_gets_404_for_another_organizations_row(
    model: str, org: Any, make_staff: Callable[..., Any], both_orgs_rows: Any
) -> None:
    # given
    client = login(make_staff(org))
    own, foreign = both_orgs_rows["acme"][model], both_orgs_rows["globex"][model]
    # when / then
    assert client.get(f"/admin/core/{model}/{own.pk}/change/").status_code == 200
    assert client.get(f"/admin/core/{model}/{foreign.pk}/change/").status_code == 404
    assert client.get(f"/admin/core/{model}/{foreign.pk}/history/").status_code == 404


def test_org_admin_staff_sees_only_their_organization(org: Any, other_org: Any, make_staff: Callable[..., Any]) -> None:
    # given
    client = login(make_staff(org))
    # when / then
    assert changelist_rows(client, "organization") == [org]
    assert client.get(f"/admin/core/organization/{other_org.pk}/change/").status_code == 404


@pytest.mark.parametrize("model", ["job", "apikey", "auditevent", "membership"])
def test_changelists_do_not_disclose_other_organizations(
    model: str, org: Any, make_staff: Callable[..., Any], both_orgs_rows: Any
) -> None:
    # given: filters by organization would list every organization's name
    client = login(make_staff(org))
    # when
    html = client.get(f"/admin/core/{model}/").content.decode()
    # then
    assert "acme" in html
    assert "globex" not in html


@pytest.mark.parametrize("model", ["job", "apikey", "auditevent", "membership", "organization"])
def test_superuser_sees_every_organization(model: str, superuser: Any, both_orgs_rows: Any) -> None:
    # given
    client = login(superuser)
    # when
    rows = changelist_rows(client, model)
    # then
    org_ids = {row.pk if model == "organization" else row.organization_id for row in rows}
    assert len(org_ids) == 2
    foreign = both_orgs_rows["globex"].get(model)
    if foreign is not None:
        assert client.get(f"/admin/core/{model}/{foreign.pk}/change/").status_code == 200


def test_staff_who_is_org_admin_nowhere_sees_nothing(org: Any, make_staff: Callable[..., Any]) -> None:
    # given: staff with the permissions, but only a clinician
    client = login(make_staff(org, role="clinician"))
    # when / then
    assert client.get("/admin/core/job/").status_code == 403
    assert client.get("/admin/core/apikey/").status_code == 403
    assert "core" not in [app["app_label"] for app in client.get("/admin/").context["app_list"]]


def test_mixin_scopes_by_a_configurable_path(org: Any, make_staff: Callable[..., Any]) -> None:
    # given: an admin of a model owned through another row (as ml.ModelVersion is)
    from ml.models import ModelVersion

    class VersionAdmin(OrganizationScopedAdminMixin, ModelAdmin):
        organization_field = "registered_model__organization"

    request = RequestFactory().get("/admin/ml/modelversion/")
    request.user = make_staff(org)
    # when
    sql = str(VersionAdmin(ModelVersion, AdminSite()).get_queryset(request).query)
    # then
    assert re.search(rf'"ml_registeredmodel"\."organization_id" IN \({org.pk}\)', sql), sql


# --- API keys ----------------------------------------------------------------------------------


def test_create_api_key_in_admin_shows_the_key_once_and_it_works(
    org: Any, make_staff: Callable[..., Any], other_org: Any
) -> None:
    # given
    staff = make_staff(org)
    client = login(staff)
    # when
    response = client.post(
        "/admin/core/apikey/add/",
        {"organization": org.pk, "name": "erp", "scopes": ["finance", "ml"], "expires_at_0": "", "expires_at_1": ""},
    )
    # then: the page itself carries the key (no redirect, nothing parked in a cookie or cache)
    assert response.status_code == 200, response.content[:500]
    html = response.content.decode()
    raw_key = re.search(r"(tsk_[0-9a-f]{12}_[A-Za-z0-9_-]+)", html)
    assert raw_key is not None
    assert "no-store" in response["Cache-Control"]
    assert "messages" not in response.cookies
    api_key = ApiKey.objects.get(name="erp")
    assert (api_key.organization, api_key.scopes, api_key.created_by) == (org, ["finance", "ml"], staff)
    event = AuditEvent.objects.get(action="core.api_key.create", object_id=str(api_key.pk))
    assert event.actor_user == staff
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key.group(1)}")
    assert api.get("/api/v1/jobs/").status_code == 200
    # and it is never shown again
    assert raw_key.group(1) not in client.get(f"/admin/core/apikey/{api_key.pk}/change/").content.decode()
    assert raw_key.group(1) not in client.get("/admin/core/apikey/").content.decode()


def test_api_key_hash_can_be_neither_seen_nor_set(superuser: Any, org: Any) -> None:
    # given
    api_key = api_key_create(actor=Actor.system(org), name="k", scopes=["ml"]).api_key
    client = login(superuser)
    # when
    add_page = client.get("/admin/core/apikey/add/").content.decode()
    change_page = client.get(f"/admin/core/apikey/{api_key.pk}/change/").content.decode()
    client.post(f"/admin/core/apikey/{api_key.pk}/change/", {"key_hash": "0" * 64, "scopes": ["finance"]})
    # then
    assert "key_hash" not in add_page
    assert "key_hash" not in change_page and api_key.key_hash not in change_page
    fresh = ApiKey.objects.get(pk=api_key.pk)
    assert (fresh.key_hash, fresh.scopes) == (api_key.key_hash, ["ml"])


def test_staff_cannot_create_a_key_for_another_organization(
    org: Any, other_org: Any, make_staff: Callable[..., Any]
) -> None:
    # given
    client = login(make_staff(org))
    # when
    response = client.post("/admin/core/apikey/add/", {"organization": other_org.pk, "name": "x", "scopes": ["ml"]})
    # then
    assert response.status_code == 200
    assert "organization" in response.context["adminform"].form.errors
    assert not ApiKey.objects.exists()


def test_api_key_expiry_must_be_in_the_future(superuser: Any, org: Any) -> None:
    # when
    response = login(superuser).post(
        "/admin/core/apikey/add/",
        {"organization": org.pk, "name": "x", "scopes": ["ml"], "expires_at_0": "2000-01-01", "expires_at_1": "00:00"},
    )
    # then
    assert "expires_at" in response.context["adminform"].form.errors
    assert not ApiKey.objects.exists()


def test_revoke_action_revokes_and_audits_only_own_organizations_keys(
    org: Any, make_staff: Callable[..., Any], both_orgs_rows: Any
) -> None:
    # given
    staff = make_staff(org)
    own, foreign = both_orgs_rows["acme"]["apikey"], both_orgs_rows["globex"]["apikey"]
    # when: the foreign id is smuggled into the selection
    response = login(staff).post(
        "/admin/core/apikey/", {"action": "revoke", "_selected_action": [own.pk, foreign.pk]}, follow=True
    )
    # then
    assert response.status_code == 200
    own.refresh_from_db()
    foreign.refresh_from_db()
    assert own.revoked_at is not None
    assert foreign.revoked_at is None
    event = AuditEvent.objects.get(action="core.api_key.revoke")
    assert (event.object_id, event.actor_user) == (str(own.pk), staff)


def test_api_keys_cannot_be_deleted_from_admin(superuser: Any, org: Any) -> None:
    # given
    api_key = api_key_create(actor=Actor.system(org), name="k", scopes=["ml"]).api_key
    # when / then
    assert login(superuser).get(f"/admin/core/apikey/{api_key.pk}/delete/").status_code == 403


# --- Read-only audit trail and jobs --------------------------------------------------------------


@pytest.mark.parametrize(("model_admin", "model"), [(AuditEventAdmin, AuditEvent), (JobAdmin, Job)])
def test_audit_and_job_admins_allow_no_add_change_delete(
    model_admin: Any, model: Any, rf: RequestFactory, superuser: Any
) -> None:
    # given
    request = rf.get("/admin/")
    request.user = superuser
    admin = model_admin(model, AdminSite())
    # when / then
    assert not admin.has_add_permission(request)
    assert not admin.has_change_permission(request)
    assert not admin.has_delete_permission(request)
    assert admin.has_view_permission(request)
    assert "delete_selected" not in admin.get_actions(request)


def test_audit_event_pages_are_read_only_even_for_superusers(superuser: Any, org: Any) -> None:
    # given
    event = audit_record(actor=Actor.system(org), action="tests.thing.did")
    client = login(superuser)
    # when
    change_page = client.get(f"/admin/core/auditevent/{event.pk}/change/")
    post = client.post(f"/admin/core/auditevent/{event.pk}/change/", {"action": "tests.thing.undone"})
    # then
    assert change_page.status_code == 200
    assert 'name="_save"' not in change_page.content.decode()
    assert post.status_code == 403
    assert client.get("/admin/core/auditevent/add/").status_code == 403
    assert client.get(f"/admin/core/auditevent/{event.pk}/delete/").status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).action == "tests.thing.did"


def test_audit_changelist_filters_and_search(superuser: Any, org: Any, other_org: Any) -> None:
    # given
    audit_record(actor=Actor.system(org), action="tests.alpha", outcome="denied")
    audit_record(actor=Actor.system(other_org), action="tests.beta")
    client = login(superuser)
    # when
    by_action = changelist_rows(client, "auditevent", {"action": "tests.alpha"})
    by_outcome = changelist_rows(client, "auditevent", {"outcome": "denied"})
    by_org = changelist_rows(client, "auditevent", {"organization__id__exact": other_org.pk})
    by_search = changelist_rows(client, "auditevent", {"q": "beta"})
    # then
    assert [e.action for e in by_action] == ["tests.alpha"]
    assert [e.action for e in by_outcome] == ["tests.alpha"]
    assert {e.organization_id for e in by_org} == {other_org.pk}
    assert [e.action for e in by_search] == ["tests.beta"]


def test_job_changelist_filters(superuser: Any, org: Any) -> None:
    # given
    Job.objects.create(organization=org, kind="core.countdown", status="failed", queue="training")
    Job.objects.create(organization=org, kind="tests.other", status="succeeded")
    client = login(superuser)
    # when / then
    assert [j.kind for j in changelist_rows(client, "job", {"status__exact": "failed"})] == ["core.countdown"]
    assert [j.kind for j in changelist_rows(client, "job", {"queue__exact": "training"})] == ["core.countdown"]
    assert [j.kind for j in changelist_rows(client, "job", {"kind": "tests.other"})] == ["tests.other"]


# --- Organizations and memberships -------------------------------------------------------------


def test_membership_role_change_in_admin_is_audited(org: Any, make_staff: Callable[..., Any], make_member: Any) -> None:
    # given
    staff = make_staff(org)
    member = make_member(org, "clinician", username="nurse")
    membership = Membership.objects.get(user=member)
    # when
    response = login(staff).post(f"/admin/core/membership/{membership.pk}/change/", {"role": "credit_analyst"})
    # then
    assert response.status_code == 302, response.content[:500]
    membership.refresh_from_db()
    assert membership.role == "credit_analyst"
    event = AuditEvent.objects.filter(action="core.membership.set", object_id=str(membership.pk)).first()
    assert event is not None and event.actor_user == staff


def test_superuser_creates_organization_through_the_service(superuser: Any) -> None:
    # when
    response = login(superuser).post("/admin/core/organization/add/", {"slug": "initech", "name": "Initech"})
    # then
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="core.organization.create", organization__slug="initech").exists()


def test_org_admin_staff_cannot_add_organizations(org: Any, make_staff: Callable[..., Any]) -> None:
    assert login(make_staff(org)).get("/admin/core/organization/add/").status_code == 403


def test_admin_index_lists_the_core_models_for_superusers(superuser: Any) -> None:
    # when
    app_list = login(superuser).get("/admin/").context["app_list"]
    # then
    core = next(app for app in app_list if app["app_label"] == "core")
    assert {m["object_name"] for m in core["models"]} >= {"Organization", "Membership", "ApiKey", "AuditEvent", "Job"}


def test_api_key_admin_is_registered() -> None:
    from django.contrib.admin import site

    assert isinstance(site._registry[ApiKey], ApiKeyAdmin)


def test_read_only_pages_show_the_values_a_form_leaves_out(superuser: Any, org: Any) -> None:
    # given: `created_at` and `updated_at` are not editable, so no model form carries them
    job = Job.objects.create(organization=org, kind="core.countdown")
    # when
    page = login(superuser).get(f"/admin/core/job/{job.pk}/change/")
    # then
    assert page.status_code == 200
    fields = {field for fieldset in page.context["adminform"] for line in fieldset for field in line}
    names = {field.field["name"] if isinstance(field.field, dict) else field.field.name for field in fields}
    assert {"created_at", "updated_at", "kind", "organization"} <= names
