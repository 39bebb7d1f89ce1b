"""Back-office views of retail rows; staff see only their organizations' rows. Everything is read-only
here: the catalogue and events change through the API (audited), the log never changes."""

from __future__ import annotations

from django.contrib import admin

from apps.retail.models import Customer, Event, Item, Recommendation, RecommendationExport, RetailImport, RetailSettings
from core.adminkit import OrganizationScopedAdminMixin, ReadOnlyAdminMixin


class ReadOnlyAdmin(OrganizationScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Rows written only by services (with their audit events): viewable, never edited here."""


@admin.register(Item)
class ItemAdmin(ReadOnlyAdmin):
    list_display = ["external_id", "title", "organization", "active", "available_until", "updated_at"]
    list_filter = ["organization", "active"]
    search_fields = ["external_id", "title"]


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin):
    list_display = ["external_id", "organization", "created_at"]
    list_filter = ["organization"]
    search_fields = ["external_id"]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "organization", "customer", "item", "type", "value", "timestamp"]
    list_filter = ["organization", "type"]
    search_fields = ["event_id"]
    list_select_related = ["customer", "item"]
    date_hierarchy = "timestamp"


@admin.register(Recommendation)
class RecommendationAdmin(ReadOnlyAdmin):
    list_display = [
        "recomm_id",
        "organization",
        "kind",
        "customer_external_id",
        "model_name",
        "model_version_number",
        "alias",
        "created_at",
    ]
    list_filter = ["organization", "kind", "alias"]
    search_fields = ["customer_external_id", "recomm_id"]


@admin.register(RetailImport)
class RetailImportAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "target", "rows", "created", "duplicates", "refused", "created_at"]
    list_filter = ["organization", "target"]


@admin.register(RecommendationExport)
class RecommendationExportAdmin(ReadOnlyAdmin):
    list_display = ["id", "organization", "model_name", "model_version_number", "n", "customers", "created_at"]
    list_filter = ["organization"]


@admin.register(RetailSettings)
class RetailSettingsAdmin(ReadOnlyAdmin):
    list_display = ["organization", "fallback_days", "updated_at"]
