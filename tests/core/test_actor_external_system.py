"""`Actor.for_external_system`: a system outside Tessera (e.g. a DICOM node) acting for an
organization — no user, no key, no role; audit rows name it by its label."""

from __future__ import annotations

from typing import Any

import pytest

from core.audit.models import AuditEvent
from core.audit.services import audit_record
from core.errors import PermissionDenied
from core.tenancy.actors import Actor


@pytest.mark.django_db
def test_an_external_system_is_audited_by_its_label(org: Any) -> None:
    # given
    actor = Actor.for_external_system(
        organization=org, label="dicom-node:7:CT_ROOM3@10.0.0.5", scopes=frozenset({"medical"})
    )
    # when
    audit_record(actor=actor, action="test.receive", object_type="thing", object_id="1")
    # then
    event = AuditEvent.objects.get(action="test.receive")
    assert (event.organization, event.actor_label) == (org, "dicom-node:7:CT_ROOM3@10.0.0.5")
    assert event.actor_user is None and event.actor_api_key is None


def test_it_is_never_an_org_admin_and_needs_a_label() -> None:
    actor = Actor.for_external_system(organization=object(), label="x" * 200, scopes=frozenset({"medical"}))  # type: ignore[arg-type]  # the gate reads no model field
    assert len(actor.label) == 150 and actor.has_scope("medical") and not actor.is_org_admin
    with pytest.raises(PermissionDenied):
        actor.require_org_admin("change settings", key_scope="medical")
    with pytest.raises(ValueError, match="label"):
        Actor.for_external_system(organization=object(), label="", scopes=frozenset())  # type: ignore[arg-type]
