"""Org-admin API key pages: create (raw key shown once), list, revoke; tenancy and roles."""

from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

from core.tenancy.choices import Role

pytestmark = pytest.mark.django_db

RAW_KEY = re.compile(r"tsk_[0-9a-f]{12}_[A-Za-z0-9_-]+")


def test_create_shows_the_key_once_and_the_key_works(admin_client_acme, org):
    # when
    response = admin_client_acme.post(
        "/api-keys/new/", {"name": "loan system", "scopes": ["finance", "ml"], "expires_in_days": "30"}
    )
    # then: the answer carries the raw key, and is not cached anywhere
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    shown = RAW_KEY.search(response.content.decode())
    assert shown is not None
    raw_key = shown.group(0)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert api.get("/api/v1/jobs/").status_code == 200
    # and the list shows the key's name and prefix, never the key itself
    listing = admin_client_acme.get("/api-keys/").content.decode()
    assert "loan system" in listing and "finance, ml" in listing
    assert raw_key not in listing
    from core.audit.models import AuditEvent

    assert AuditEvent.objects.filter(organization=org, action="core.api_key.create").exists()


def test_create_without_scopes_is_rejected(admin_client_acme):
    response = admin_client_acme.post("/api-keys/new/", {"name": "nothing"})
    assert response.status_code == 400
    assert response.context["form"].errors["scopes"]


def test_create_with_unknown_scope_is_rejected(admin_client_acme):
    response = admin_client_acme.post("/api-keys/new/", {"name": "x", "scopes": ["payroll"]})
    assert response.status_code == 400


def test_revoke_stops_the_key(admin_client_acme, org, make_api_key):
    # given
    from core.tenancy.models import ApiKey

    raw_key = make_api_key(org, ("ml",))
    api_key = ApiKey.objects.get(organization=org)
    # when
    response = admin_client_acme.post(f"/api-keys/{api_key.pk}/revoke/", follow=True)
    # then
    assert "revoked" in response.content.decode()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    assert api.get("/api/v1/jobs/").status_code == 401


def test_revoking_another_orgs_key_is_404(admin_client_acme, other_org, make_api_key):
    from core.tenancy.models import ApiKey

    make_api_key(other_org)
    theirs = ApiKey.objects.get(organization=other_org)
    assert admin_client_acme.post(f"/api-keys/{theirs.pk}/revoke/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_other_orgs_keys_are_not_listed(admin_client_acme, other_org, make_api_key):
    from core.tenancy.models import ApiKey

    make_api_key(other_org)
    prefix = ApiKey.objects.get(organization=other_org).prefix
    assert prefix not in admin_client_acme.get("/api-keys/").content.decode()


def test_non_admins_cannot_create_or_revoke(client_for, org, make_api_key):
    from core.tenancy.models import ApiKey

    make_api_key(org)
    key = ApiKey.objects.get(organization=org)
    client = client_for(org, Role.CREDIT_ANALYST)
    assert client.post("/api-keys/new/", {"name": "x", "scopes": ["finance"]}).status_code == 403
    assert client.post(f"/api-keys/{key.pk}/revoke/").status_code == 403
    assert not ApiKey.objects.filter(name="x").exists()


def test_forms_require_csrf(org, make_member):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(make_member(org, role=Role.ORG_ADMIN))
    assert client.post("/api-keys/new/", {"name": "x", "scopes": ["ml"]}).status_code == 403
