"""Org-admin model registry pages: list, model, version, promote and roll back by alias."""

from __future__ import annotations

import pytest

from core.tenancy.choices import Role

pytestmark = pytest.mark.django_db


def production_number(org, name="tiny") -> int:
    from ml.selectors import model_version_get_by_alias

    return model_version_get_by_alias(org=org, name=name).number


def test_list_shows_models_versions_aliases_and_metrics(admin_client_acme, org, make_model_version):
    make_model_version(org, threshold=0.5, metrics={"accuracy": 0.812345})
    make_model_version(org, threshold=0.6)
    response = admin_client_acme.get("/models/")
    content = response.content.decode()
    assert "tiny" in content and "tests.portal_tiny" in content
    assert "production → " in content
    assert "0.8123" in content  # production (v1) metrics, 4 significant digits


def test_version_page_shows_metrics_and_manifest(admin_client_acme, org, make_model_version):
    version = make_model_version(org, metrics={"accuracy": 0.9, "auc": 0.95})
    response = admin_client_acme.get("/models/tiny/versions/1/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "auc" in content and "0.95" in content
    assert "model.json" in content and version.artifact_sha256 in content


def test_promote_then_roll_back(admin_client_acme, org, make_model_version):
    # given: v1 is production (first version), v2 is a challenger
    make_model_version(org, threshold=0.5)
    make_model_version(org, threshold=0.6)
    assert production_number(org) == 1
    # when: promote v2
    response = admin_client_acme.post(
        "/models/tiny/aliases/", {"alias": "production", "version": "2", "reason": "better recall"}, follow=True
    )
    # then
    assert production_number(org) == 2
    content = response.content.decode()
    assert "tiny@production now points at v2" in content
    assert "better recall" in content  # alias history
    # when: roll back
    admin_client_acme.post("/models/tiny/aliases/", {"alias": "production", "version": "1", "reason": "incident 42"})
    # then
    assert production_number(org) == 1
    from ml.models import ModelAliasEvent

    reasons = list(ModelAliasEvent.objects.filter(alias="production").values_list("reason", flat=True))
    assert reasons[:2] == ["incident 42", "better recall"]
    from core.audit.models import AuditEvent

    assert AuditEvent.objects.filter(organization=org, action="ml.alias.set").count() == 3


def test_promote_needs_a_reason_and_an_existing_version(admin_client_acme, org, make_model_version):
    make_model_version(org)
    response = admin_client_acme.post("/models/tiny/aliases/", {"alias": "production", "version": "1", "reason": ""})
    assert response.status_code == 400
    assert response.context["form"].errors["reason"]
    response = admin_client_acme.post("/models/tiny/aliases/", {"alias": "production", "version": "7", "reason": "x"})
    assert response.status_code == 400
    assert response.context["form"].errors["version"]
    response = admin_client_acme.post("/models/tiny/aliases/", {"alias": "Bad Alias", "version": "1", "reason": "x"})
    assert response.status_code == 400
    assert response.context["form"].errors["alias"]


def test_staging_alias_can_be_set(admin_client_acme, org, make_model_version):
    make_model_version(org)
    make_model_version(org)
    admin_client_acme.post("/models/tiny/aliases/", {"alias": "staging", "version": "2", "reason": "challenger"})
    from ml.selectors import model_version_get_by_alias

    assert model_version_get_by_alias(org=org, name="tiny", alias="staging").number == 2
    assert production_number(org) == 1


def test_another_orgs_model_is_404(admin_client_acme, other_org, make_model_version):
    make_model_version(other_org, name="secret-model")
    assert admin_client_acme.get("/models/secret-model/").status_code == 404
    assert admin_client_acme.get("/models/secret-model/versions/1/").status_code == 404
    response = admin_client_acme.post(
        "/models/secret-model/aliases/", {"alias": "production", "version": "1", "reason": "x"}
    )
    assert response.status_code == 404
    assert "secret-model" not in admin_client_acme.get("/models/").content.decode()


def test_non_admins_cannot_promote(client_for, org, make_model_version):
    make_model_version(org)
    make_model_version(org)
    client = client_for(org, Role.CREDIT_ANALYST)
    response = client.post("/models/tiny/aliases/", {"alias": "production", "version": "2", "reason": "x"})
    assert response.status_code == 403
    assert production_number(org) == 1
