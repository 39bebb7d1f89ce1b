"""Back office for the audit trail: read-only, each staff user sees their organizations' events."""

from __future__ import annotations

from django.contrib import admin

from core.adminkit import OrganizationScopedAdminMixin, ReadOnlyAdminMixin
from core.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, OrganizationScopedAdminMixin, admin.ModelAdmin):
    """The append-only audit trail (see `core.audit.models.AuditEvent`)."""

    list_display = (
        "created_at",
        "organization",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "outcome",
        "request_id",
    )
    list_filter = ("action", "outcome", ("organization", admin.RelatedOnlyFieldListFilter))
    search_fields = ("action", "actor_label", "object_type", "object_id", "request_id")
    list_select_related = ("organization",)
    date_hierarchy = "created_at"
