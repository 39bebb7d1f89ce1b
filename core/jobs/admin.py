"""Back office for background jobs: read-only, each staff user sees their organizations' jobs.

Cancelling is the portal's or `POST /api/v1/jobs/{id}/cancel/`'s job, not the admin's.
"""

from __future__ import annotations

from django.contrib import admin

from core.adminkit import OrganizationScopedAdminMixin, ReadOnlyAdminMixin
from core.jobs.models import Job


@admin.register(Job)
class JobAdmin(ReadOnlyAdminMixin, OrganizationScopedAdminMixin, admin.ModelAdmin):
    """Background jobs, read-only (cancel from the portal or `POST /api/v1/jobs/{id}/cancel/`)."""

    # A new column or filter is one entry in these tuples (the core mixin narrows relation
    # filters to the visible organizations by itself).
    list_display = (
        "id",
        "kind",
        "domain",
        "organization",
        "status",
        "progress_percent",
        "queue",
        "attempts",
        "created_at",
    )
    list_filter = ("status", "domain", "kind", "queue", ("organization", admin.RelatedOnlyFieldListFilter))
    search_fields = ("kind", "message", "error", "celery_task_id")
    list_select_related = ("organization",)
    date_hierarchy = "created_at"

    @admin.display(description="progress", ordering="progress")
    def progress_percent(self, job: Job) -> str:
        return f"{job.progress:.0%}"
