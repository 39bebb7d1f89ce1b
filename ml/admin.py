"""Back office for the model registry.

Versions, alias history and training runs are read-only here, as they are everywhere: versions
are immutable and history is append-only. The only writes are alias moves (the alias form and
the "Promote selected versions to production" action), and both go through
`ml.services.model_alias_set`, so they are recorded in the alias history and the audit trail
with a reason, exactly as an API promotion is.

Tenancy comes from `core.adminkit.OrganizationScopedAdminMixin`: a superuser sees every
organization; any other staff user sees only the rows of organizations where they are
`org_admin`, and another organization's row is a 404 (its existence is not disclosed), as in
the API. Staff still need Django's model permissions (`view_…`, and `add_`/`change_modelalias`
to move aliases).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from core.adminkit import OrganizationScopedAdminMixin, ReadOnlyAdminMixin, admin_actor
from core.tenancy.models import Organization
from ml.choices import PRODUCTION_ALIAS
from ml.models import ModelAlias, ModelAliasEvent, ModelVersion, RegisteredModel, TrainingRun
from ml.services import model_alias_set


class ModelVersionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ModelVersion
    fields = ["number", "source", "artifact_format", "artifact_sha256", "metrics", "created_at"]
    readonly_fields = ["number", "source", "artifact_format", "artifact_sha256", "metrics", "created_at"]
    show_change_link = True
    extra = 0


class ModelAliasInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ModelAlias
    fields = ["name", "version", "updated_at"]
    readonly_fields = ["name", "version", "updated_at"]
    extra = 0


@admin.register(RegisteredModel)
class RegisteredModelAdmin(OrganizationScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "kind", "organization", "created_at", "updated_at"]
    list_filter = ["kind", "organization"]  # the core mixin narrows relation filters to visible rows
    search_fields = ["name", "kind", "organization__slug"]
    list_select_related = ["organization"]
    inlines = [ModelAliasInline, ModelVersionInline]


class PromoteActionForm(ActionForm):
    reason = forms.CharField(
        required=False, max_length=500, label="Reason", help_text="Required to promote; kept in the alias history."
    )


@admin.register(ModelVersion)
class ModelVersionAdmin(OrganizationScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    organization_field = "registered_model__organization"
    list_display = ["__str__", "organization", "kind", "source", "short_sha256", "aliases_now", "created_at"]
    list_filter = ["kind", "source", "registered_model__organization"]
    search_fields = ["registered_model__name", "registered_model__organization__slug", "artifact_sha256"]
    list_select_related = ["registered_model__organization"]
    actions = ["promote_to_production"]
    action_form = PromoteActionForm

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelVersion]:
        return super().get_queryset(request).prefetch_related("aliases")

    @admin.display(description="organization", ordering="registered_model__organization__slug")
    def organization(self, version: ModelVersion) -> Organization:
        return version.registered_model.organization

    @admin.display(description="sha256")
    def short_sha256(self, version: ModelVersion) -> str:
        return version.artifact_sha256[:12]

    @admin.display(description="aliases")
    def aliases_now(self, version: ModelVersion) -> str:
        return ", ".join(sorted(alias.name for alias in version.aliases.all()))

    def has_promote_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("ml.change_modelalias")

    @admin.action(description="Promote selected versions to production", permissions=["promote"])
    def promote_to_production(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        reason = str(request.POST.get("reason", "")).strip()
        if not reason:
            self.message_user(request, "Give a reason for the promotion (it is kept in the history).", messages.ERROR)
            return
        versions = list(queryset.select_related("registered_model__organization").order_by("registered_model", "pk"))
        model_ids = [version.registered_model_id for version in versions]
        if len(set(model_ids)) != len(model_ids):
            self.message_user(request, "Select at most one version per model.", messages.ERROR)
            return
        with transaction.atomic():  # all promotions or none
            for version in versions:
                model_alias_set(
                    actor=admin_actor(request, version.registered_model.organization),
                    name=version.registered_model.name,
                    alias=PRODUCTION_ALIAS,
                    version_number=version.number,
                    reason=reason,
                )
        promoted = ", ".join(str(version) for version in versions)
        self.message_user(request, f"Promoted to production: {promoted}.", messages.SUCCESS)


class ModelAliasForm(forms.ModelForm):
    """Move (or create) an alias; the move goes through `model_alias_set` with this reason."""

    reason = forms.CharField(max_length=500, help_text="Why; kept in the alias history and the audit trail.")

    class Meta:
        model = ModelAlias
        fields = ["registered_model", "name", "version"]

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        registered_model = cleaned.get("registered_model") or getattr(self.instance, "registered_model", None)
        version = cleaned.get("version")
        if registered_model is not None and version is not None and version.registered_model_id != registered_model.pk:
            self.add_error("version", f"Choose a version of {registered_model.name}.")
        return cleaned


@admin.register(ModelAlias)
class ModelAliasAdmin(OrganizationScopedAdminMixin, admin.ModelAdmin):
    organization_field = "registered_model__organization"
    form = ModelAliasForm
    list_display = ["registered_model", "name", "version", "updated_at"]
    list_filter = ["name"]
    search_fields = ["registered_model__name", "registered_model__organization__slug", "name"]
    list_select_related = ["registered_model", "version"]

    def get_readonly_fields(self, request: HttpRequest, obj: ModelAlias | None = None) -> list[str]:
        # An existing alias can only move to another version of the same model.
        return ["registered_model", "name"] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: ModelAlias | None = None) -> bool:
        return False  # an alias is moved, never deleted: its history must stay answerable

    def save_model(self, request: HttpRequest, obj: ModelAlias, form: forms.ModelForm, change: bool) -> None:
        alias = model_alias_set(
            actor=admin_actor(request, obj.registered_model.organization),
            name=obj.registered_model.name,
            alias=obj.name,
            version_number=obj.version.number,
            reason=form.cleaned_data["reason"],
        )
        obj.pk = alias.pk


@admin.register(ModelAliasEvent)
class ModelAliasEventAdmin(OrganizationScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    organization_field = "registered_model__organization"
    list_display = ["registered_model", "alias", "from_version", "to_version", "actor_label", "reason", "created_at"]
    list_filter = ["alias"]
    search_fields = ["registered_model__name", "registered_model__organization__slug", "actor_label", "reason"]
    list_select_related = ["registered_model", "from_version", "to_version"]
    date_hierarchy = "created_at"


@admin.register(TrainingRun)
class TrainingRunAdmin(OrganizationScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "organization", "kind", "job_status", "promote", "created_at"]
    list_filter = ["kind", "organization"]
    search_fields = ["registered_model__name", "organization__slug"]
    list_select_related = ["organization", "registered_model", "job"]

    @admin.display(description="job status", ordering="job__status")
    def job_status(self, run: TrainingRun) -> str:
        return run.job.status
