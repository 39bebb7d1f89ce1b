"""The portal shell in a real browser: sign in per role, navigation, sign out, API keys."""

from __future__ import annotations

import re

import pytest

from core.tenancy.choices import Role
from tests.browser.conftest import login, logout, nav_labels

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ADMIN_ENTRIES = {"Models", "API keys", "Audit"}
PASSWORD = "pass-1234"


def expected_domain_labels(role: str) -> set[str]:
    """The domain entries `role` must see: whatever domain apps currently register."""
    from core.apps import domain_app_configs

    return {
        config.nav_label
        for config in domain_app_configs()
        if config.nav_label and config.portal_urls and (role == Role.ORG_ADMIN or role in config.roles)
    }


def all_domain_labels() -> set[str]:
    from core.apps import domain_app_configs

    return {config.nav_label for config in domain_app_configs() if config.nav_label}


@pytest.mark.parametrize("role", Role.values)
def test_each_role_signs_in_sees_its_navigation_and_signs_out(browser_page, live_server, org, make_member, role):
    # given
    make_member(org, role=role, username=f"user-{role}", password=PASSWORD)
    page = browser_page
    # when
    login(page, live_server, f"user-{role}", PASSWORD)
    # then: the header says who and where, the navigation is the role's
    assert page.inner_text("[data-testid=org-name]") == "Acme"
    assert page.inner_text("[data-testid=user-name]") == f"user-{role}"
    assert page.inner_text("[data-testid=user-role]") == Role(role).label
    labels = nav_labels(page)
    assert labels[0] == "Dashboard"
    assert set(labels) & all_domain_labels() == expected_domain_labels(role)
    if role == Role.ORG_ADMIN:
        assert set(labels) >= ADMIN_ENTRIES
        assert page.is_visible("[data-testid=run-demo-job]")
    else:
        assert not set(labels) & ADMIN_ENTRIES
        assert not page.is_visible("[data-testid=run-demo-job]")
        # and typing an admin URL does not help
        response = page.goto(f"{live_server.url}/api-keys/")
        assert response is not None and response.status == 403
    # when
    page.goto(f"{live_server.url}/")
    logout(page, live_server)
    # then: the portal is closed again
    page.goto(f"{live_server.url}/")
    assert page.url.startswith(f"{live_server.url}/login/")


def test_org_admin_creates_an_api_key_and_sees_it_once(browser_page, live_server, org, make_member):
    # given
    make_member(org, role=Role.ORG_ADMIN, username="boss", password=PASSWORD)
    page = browser_page
    login(page, live_server, "boss", PASSWORD)
    # when
    page.click("nav.portal-nav a:has-text('API keys')")
    page.click("text=New API key")
    page.fill("#id_name", "warehouse sync")
    page.check("input[name=scopes][value=retail]")
    page.check("input[name=scopes][value=ml]")
    page.select_option("#id_expires_in_days", "90")
    page.click("button:has-text('Create key')")
    # then: the key is on this page, once
    raw_key = page.input_value("[data-testid=raw-api-key]")
    assert re.fullmatch(r"tsk_[0-9a-f]{12}_[A-Za-z0-9_-]+", raw_key)
    assert page.is_visible("text=shown only this once")
    # and it works against the API
    api_response = page.request.get(f"{live_server.url}/api/v1/jobs/", headers={"Authorization": f"Bearer {raw_key}"})
    assert api_response.status == 200
    # when: back to the list
    page.click("text=Done")
    # then: listed by name and scopes, the secret nowhere
    table = page.inner_text("[data-testid=api-keys]")
    assert "warehouse sync" in table and "ml, retail" in table
    assert raw_key not in page.content()
    # when: revoked
    page.click("[data-testid=api-keys] button:has-text('Revoke')")
    # then
    assert page.is_visible("text=revoked")
    api_response = page.request.get(f"{live_server.url}/api/v1/jobs/", headers={"Authorization": f"Bearer {raw_key}"})
    assert api_response.status == 401
