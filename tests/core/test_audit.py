"""The audit trail: written in the same transaction as the change, append-only."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from core.audit.models import AuditEvent
from core.audit.services import audit_record
from core.tenancy.actors import Actor
from core.tenancy.models import ApiKey
from core.tenancy.services import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db


class Rollback(Exception):
    pass


def test_api_key_create_is_audited_with_who_and_what(org: Any, make_member: Any) -> None:
    # given
    admin = make_member(org, "org_admin")
    actor = Actor.for_user(organization=org, user=admin, role="org_admin")
    # when
    new_key = api_key_create(actor=actor, name="partner", scopes=["finance"])
    # then
    event = AuditEvent.objects.get(action="core.api_key.create")
    assert event.organization == org
    assert event.actor_user == admin
    assert event.actor_label == admin.username
    assert (event.object_type, event.object_id) == ("core.apikey", str(new_key.api_key.pk))
    assert event.details == {"scopes": ["finance"], "name": "partner"}
    assert new_key.raw_key not in str(event.details)  # never the secret


def test_api_key_revoke_is_audited_once(org: Any) -> None:
    # given
    api_key = api_key_create(actor=Actor.system(org), name="k", scopes=["ml"]).api_key
    # when: revoking twice
    api_key_revoke(actor=Actor.system(org), api_key=api_key)
    api_key_revoke(actor=Actor.system(org), api_key=api_key)
    # then
    assert AuditEvent.objects.filter(action="core.api_key.revoke", object_id=str(api_key.pk)).count() == 1


def test_rolled_back_api_key_create_leaves_neither_key_nor_event(org: Any) -> None:
    # when
    with pytest.raises(Rollback), transaction.atomic():
        api_key_create(actor=Actor.system(org), name="k", scopes=["ml"])
        raise Rollback
    # then
    assert not ApiKey.objects.exists()
    assert not AuditEvent.objects.filter(action="core.api_key.create").exists()


def test_rolled_back_api_key_revoke_leaves_neither_revocation_nor_event(org: Any) -> None:
    # given
    api_key = api_key_create(actor=Actor.system(org), name="k", scopes=["ml"]).api_key
    # when
    with pytest.raises(Rollback), transaction.atomic():
        api_key_revoke(actor=Actor.system(org), api_key=api_key)
        raise Rollback
    # then
    api_key.refresh_from_db()
    assert api_key.revoked_at is None
    assert not AuditEvent.objects.filter(action="core.api_key.revoke").exists()


def test_failing_audit_write_rolls_back_the_key(org: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: the audit write fails (e.g. database error)
    from core.tenancy import services

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(services, "audit_record", broken)
    # when
    with pytest.raises(RuntimeError):
        api_key_create(actor=Actor.system(org), name="k", scopes=["ml"])
    # then: no unaudited change
    assert not ApiKey.objects.exists()


def test_audit_events_cannot_be_changed(org: Any) -> None:
    # given
    event = audit_record(actor=Actor.system(org), action="tests.thing.do")
    # when / then
    event.action = "tests.thing.undo"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(action="tests.thing.undo")
    assert AuditEvent.objects.get(pk=event.pk).action == "tests.thing.do"


def test_audit_events_cannot_be_deleted(org: Any) -> None:
    # given
    event = audit_record(actor=Actor.system(org), action="tests.thing.do")
    # when / then
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_deleting_an_api_key_keeps_its_audit_events(org: Any) -> None:
    # given: an event whose actor is an API key (SET_NULL goes through Django's base manager,
    # which the append-only queryset must not block)
    api_key = api_key_create(actor=Actor.system(org), name="k", scopes=["ml"]).api_key
    event = audit_record(actor=Actor.for_api_key(api_key), action="tests.read")
    # when
    api_key.delete()
    # then: the row stays, the label still says who it was
    event = AuditEvent.objects.get(pk=event.pk)
    assert event.actor_api_key is None
    assert event.actor_label == f"api-key:{api_key.prefix}"


def test_request_id_and_ip_are_recorded_for_api_changes(api: Any, org: Any) -> None:
    # given
    from core.jobs.models import Job

    job = Job.objects.create(organization=org, kind="core.countdown", domain="platform")
    # when
    api.post(f"/api/v1/jobs/{job.pk}/cancel/", HTTP_X_REQUEST_ID="trace-42", REMOTE_ADDR="10.1.2.3")
    # then
    event = AuditEvent.objects.get(action="core.job.cancel")
    assert event.request_id == "trace-42"
    assert event.ip_address == "10.1.2.3"
    assert event.actor_api_key is not None
    assert event.actor_label.startswith("api-key:")
