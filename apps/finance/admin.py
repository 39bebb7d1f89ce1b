"""Back-office views of finance rows; staff see only their organizations' rows. Decisions are read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.finance.models import CreditDataset, CreditDecision, CreditPolicy, MonitoringSnapshot, ScoringBatch
from core.adminkit import OrganizationScopedAdminMixin, ReadOnlyAdminMixin, admin_actor
from core.audit.services import audit_record


class ReadOnlyAdmin(OrganizationScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Rows written only by services (with their audit events): viewable, never edited here."""


@admin.register(CreditDataset)
class CreditDatasetAdmin(ReadOnlyAdmin):
    list_display = ["name", "organization", "rows", "target", "positive_rate", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name"]


@admin.register(CreditDecision)
class CreditDecisionAdmin(ReadOnlyAdmin):
    list_display = [
        "application_id",
        "organization",
        "decision",
        "score",
        "model_name",
        "model_version_number",
        "created_at",
    ]
    list_filter = ["organization", "decision", "source"]
    search_fields = ["application_id"]
    date_hierarchy = "created_at"

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        """Opening a credit decision is a read of a credit record: audited like the API and portal."""
        response = super().change_view(request, object_id, form_url, extra_context)
        if response.status_code == 200:
            decision = self.get_object(request, object_id)  # another organization's is already a 404
            audit_record(
                actor=admin_actor(request, decision.organization),
                action="finance.decision.read",
                obj=decision,
                details={"via": "admin"},
            )
        return response


@admin.register(ScoringBatch)
class ScoringBatchAdmin(ReadOnlyAdmin):
    list_display = ["name", "organization", "rows", "created_at"]
    list_filter = ["organization"]


@admin.register(CreditPolicy)
class CreditPolicyAdmin(ReadOnlyAdmin):
    list_display = [
        "organization",
        "points_at_base_odds",
        "base_odds",
        "pdo",
        "approve_min_score",
        "decline_below_score",
    ]


@admin.register(MonitoringSnapshot)
class MonitoringSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["model_name", "organization", "score_psi", "band", "decisions", "created_at"]
    list_filter = ["organization", "band"]
