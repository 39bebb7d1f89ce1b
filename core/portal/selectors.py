"""Reads the portal's admin pages need that no other module offers yet (always org-scoped)."""

from __future__ import annotations

from django.db.models import QuerySet

from core.audit.models import AuditEvent
from core.tenancy.models import Organization


def audit_event_list(*, org: Organization, action: str | None = None) -> QuerySet[AuditEvent]:
    """The organization's audit events, newest first, optionally of one `action`."""
    events = AuditEvent.objects.filter(organization=org).select_related("actor_user").order_by("-created_at", "-id")
    if action:
        events = events.filter(action=action)
    return events


def audit_action_list(*, org: Organization) -> list[str]:
    """Every action name recorded for the organization (for the audit filter)."""
    return list(
        AuditEvent.objects.filter(organization=org).order_by("action").values_list("action", flat=True).distinct()
    )
