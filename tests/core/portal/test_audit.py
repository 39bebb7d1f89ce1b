"""Org-admin audit log page: org-scoped, newest first, filter by action, paginated."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def record(org, action: str, n: int = 1) -> None:
    from core.audit.services import audit_record
    from core.tenancy.actors import Actor

    for _ in range(n):
        audit_record(actor=Actor.system(org), action=action)


def test_lists_own_org_events_newest_first(admin_client_acme, org, other_org):
    record(org, "tests.first")
    record(org, "tests.second")
    record(other_org, "tests.theirs")
    response = admin_client_acme.get("/audit/")
    actions = [event.action for event in response.context["page"]]
    assert actions.index("tests.second") < actions.index("tests.first")
    assert "tests.theirs" not in actions
    assert "tests.theirs" not in response.content.decode()


def test_filter_by_action(admin_client_acme, org):
    record(org, "tests.kept", 2)
    record(org, "tests.other")
    response = admin_client_acme.get("/audit/", {"action": "tests.kept"})
    assert [event.action for event in response.context["page"]] == ["tests.kept", "tests.kept"]


def test_unknown_action_filter_shows_everything(admin_client_acme, org):
    record(org, "tests.kept")
    response = admin_client_acme.get("/audit/", {"action": "no.such.action"})
    assert response.status_code == 200
    assert "tests.kept" in [event.action for event in response.context["page"]]


def test_paginates_and_keeps_the_filter(admin_client_acme, org):
    record(org, "tests.bulk", 60)
    first = admin_client_acme.get("/audit/", {"action": "tests.bulk"})
    assert len(first.context["page"]) == 50
    assert "?action=tests.bulk&amp;page=2" in first.content.decode()
    second = admin_client_acme.get("/audit/", {"action": "tests.bulk", "page": 2})
    assert len(second.context["page"]) == 10
