"""Writing audit events. Call inside the service's transaction so change and record commit together."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models

from core.audit.context import client_ip_var, request_id_var
from core.audit.models import AuditEvent, AuditOutcome
from core.tenancy.actors import Actor


def audit_record(
    *,
    actor: Actor,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    outcome: str = AuditOutcome.SUCCESS,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event for `actor`'s organization.

    Args:
        actor: who acted (user, API key or system) and in which organization.
        action: dotted verb, e.g. `ml.alias.set`, `core.api_key.create`, `finance.decision.read`.
        obj: the object acted on; its model label and pk fill object_type/object_id.
        outcome: success, denied or failure.
        details: small JSON-serialisable context (never secrets).
    """
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
    event = _event(
        actor=actor, action=action, object_type=object_type, object_id=object_id, outcome=outcome, details=details
    )
    event.save()
    return event


def _event(
    *, actor: Actor, action: str, object_type: str, object_id: str | int, outcome: str, details: dict[str, Any] | None
) -> AuditEvent:
    return AuditEvent(
        organization=actor.organization,
        actor_user=actor.user,
        actor_api_key=actor.api_key,
        actor_label=actor.label,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        outcome=outcome,
        request_id=request_id_var.get(),
        ip_address=client_ip_var.get(),
        details=details or {},
    )


def audit_records(
    *, actor: Actor, action: str, entries: Iterable[tuple[models.Model, dict[str, Any]]]
) -> list[AuditEvent]:
    """Append one audit event per (object, details) for `actor`, written with one INSERT.

    For a service that changes many objects in one transaction (a STOW-RS body of 300 instances):
    the same rows `audit_record` would write one by one.
    """
    rows = [
        _event(
            actor=actor,
            action=action,
            object_type=obj._meta.label_lower,
            object_id=str(obj.pk),
            outcome=AuditOutcome.SUCCESS,
            details=details,
        )
        for obj, details in entries
    ]
    return AuditEvent.objects.bulk_create(rows)
