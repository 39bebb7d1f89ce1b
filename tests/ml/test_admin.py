"""The registry's admin: org admins (staff) see only their organizations; promotions are audited."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_org_admin(org: Any, make_member: Any) -> Any:
    """A staff user, org admin of `acme` only, with Django's view permissions on the registry."""
    from django.contrib.auth.models import Permission

    user = make_member(org, "org_admin", username="acme-staff")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="ml", codename__startswith="view_"),
        *Permission.objects.filter(content_type__app_label="ml", codename__in=["add_modelalias", "change_modelalias"]),
    )
    return user


@pytest.fixture
def two_orgs_with_models(org: Any, other_org: Any, import_version: Any) -> dict[str, Any]:
    return {
        "ours": import_version(org, name="acme-model"),
        "theirs": import_version(other_org, name="globex-model"),
    }


def test_staff_org_admin_sees_only_their_organizations_models(client, staff_org_admin, two_orgs_with_models):
    # given
    client.force_login(staff_org_admin)
    theirs = two_orgs_with_models["theirs"]
    # when
    models_page = client.get("/admin/ml/registeredmodel/")
    versions_page = client.get("/admin/ml/modelversion/")
    events_page = client.get("/admin/ml/modelaliasevent/")
    # then
    for page in (models_page, versions_page, events_page):
        assert page.status_code == 200
        assert "acme-model" in page.content.decode()
        assert "globex" not in page.content.decode()  # neither its rows nor its name in a filter
    assert client.get(f"/admin/ml/registeredmodel/{theirs.registered_model_id}/change/").status_code == 404
    assert client.get(f"/admin/ml/modelversion/{theirs.pk}/change/").status_code == 404
    ours = two_orgs_with_models["ours"]
    assert client.get(f"/admin/ml/registeredmodel/{ours.registered_model_id}/change/").status_code == 200


def test_superuser_sees_every_organization(client, django_user_model, two_orgs_with_models):
    # given
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pass-1234"))
    # when
    page = client.get("/admin/ml/registeredmodel/").content.decode()
    runs = client.get("/admin/ml/trainingrun/")
    # then
    assert "acme-model" in page
    assert "globex-model" in page
    assert runs.status_code == 200


def test_versions_are_read_only(client, staff_org_admin, two_orgs_with_models):
    # given
    client.force_login(staff_org_admin)
    ours = two_orgs_with_models["ours"]
    # when
    response = client.post(f"/admin/ml/modelversion/{ours.pk}/change/", {"number": 9})
    # then
    assert response.status_code == 403
    ours.refresh_from_db()
    assert ours.number == 1


def test_promote_action_moves_production_with_a_reason(client, org, staff_org_admin, import_version):
    # given
    from ml.models import ModelAliasEvent
    from ml.selectors import model_version_get_by_alias

    import_version(org, name="acme-model")
    v2 = import_version(org, name="acme-model")
    client.force_login(staff_org_admin)
    # when
    response = client.post(
        "/admin/ml/modelversion/",
        {"action": "promote_to_production", "_selected_action": [v2.pk], "reason": "passed shadow test"},
    )
    # then
    assert response.status_code == 302
    assert model_version_get_by_alias(org=org, name="acme-model") == v2
    event = ModelAliasEvent.objects.get(to_version=v2)
    assert event.from_version is not None
    assert (event.actor_label, event.reason, event.from_version.number) == ("acme-staff", "passed shadow test", 1)


def test_promote_action_without_a_reason_changes_nothing(client, org, staff_org_admin, import_version):
    # given
    from ml.selectors import model_version_get_by_alias

    v1 = import_version(org, name="acme-model")
    v2 = import_version(org, name="acme-model")
    client.force_login(staff_org_admin)
    # when
    client.post("/admin/ml/modelversion/", {"action": "promote_to_production", "_selected_action": [v2.pk]})
    # then
    assert model_version_get_by_alias(org=org, name="acme-model") == v1


def test_promote_action_cannot_reach_another_organizations_version(client, other_org, staff_org_admin, import_version):
    # given
    from ml.selectors import model_version_get_by_alias

    theirs_v1 = import_version(other_org, name="globex-model")
    theirs_v2 = import_version(other_org, name="globex-model")
    client.force_login(staff_org_admin)
    # when
    client.post(
        "/admin/ml/modelversion/",
        {"action": "promote_to_production", "_selected_action": [theirs_v2.pk], "reason": "sneaky"},
    )
    # then
    assert model_version_get_by_alias(org=other_org, name="globex-model") == theirs_v1


def test_moving_an_alias_in_the_admin_goes_through_the_service(client, org, staff_org_admin, import_version):
    # given
    from core.audit.models import AuditEvent
    from ml.models import ModelAlias

    import_version(org, name="acme-model")
    import_version(org, name="acme-model")
    alias = ModelAlias.objects.get(registered_model__name="acme-model", name="production")
    v2 = alias.registered_model.versions.get(number=2)
    client.force_login(staff_org_admin)
    # when
    response = client.post(f"/admin/ml/modelalias/{alias.pk}/change/", {"version": v2.pk, "reason": "rollout"})
    # then
    assert response.status_code == 302, response.content.decode()[:2000]
    alias.refresh_from_db()
    assert alias.version == v2
    assert AuditEvent.objects.filter(
        action="ml.alias.set", details__reason="rollout", actor_label="acme-staff"
    ).exists()


def test_alias_form_offers_only_their_organizations_models_and_versions(client, staff_org_admin, two_orgs_with_models):
    # given
    client.force_login(staff_org_admin)
    # when
    page = client.get("/admin/ml/modelalias/add/")
    # then
    assert page.status_code == 200
    assert "acme-model" in page.content.decode()
    assert "globex-model" not in page.content.decode()
