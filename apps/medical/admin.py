"""Back-office views of the imaging archive; staff see only their organizations' rows (another
organization's row is a 404).

The index (studies, series, instances) and the PHI access log are read-only: instances change
only through the archive's services (STOW-RS, C-STORE, upload, deletion with a reason), and the
log never changes. Opening a study, series or instance page writes a PHI access row, and reading
the access log an audit event, as in the API. DICOM nodes and archive settings are edited
through their services (validated and audited like the API's changes).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from apps.medical import services
from apps.medical.access_log import AccessLogFilters, access_log_read_audit
from apps.medical.choices import AccessKind
from apps.medical.deidentify import DeidOptions
from apps.medical.models import ArchiveSettings, DicomNode, Instance, PhiAccess, Series, Study
from core.adminkit import (
    OrganizationScopedAdminMixin,
    ReadOnlyAdminMixin,
    admin_actor,
    admin_organization_ids,
    copy_saved_row,
)
from core.errors import DomainError
from core.tenancy.actors import Actor
from core.tenancy.models import Organization


def _writer(request: HttpRequest, organization: Organization) -> Actor:
    """The actor of a change made here. Staff act as their membership (the services check that
    they are org admins); a superuser who is no member acts as the platform operator, named in
    the audit row."""
    actor = admin_actor(request, organization)
    user: Any = request.user
    if actor.role is None and user.is_active and user.is_superuser:
        return Actor.system(organization, user=user)
    return actor


class ReadOnlyAdmin(OrganizationScopedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Rows written only by services (with their audit events): viewable, never edited here."""


def _form_errors(form: forms.ModelForm[Any], error: DomainError) -> None:
    """A service's refusal shown on the form (the fields it names, else the whole form)."""
    if not error.fields:
        form.add_error(None, error.message)
    for name, messages in error.fields.items():
        form.add_error(name if name in form.fields else None, messages)


class _PhiRecordingAdmin(ReadOnlyAdmin):
    """A page of one index row shows patient data: its view writes a PHI access row."""

    def study_of(self, obj: Any) -> Study:
        raise NotImplementedError

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        study = self.study_of(obj)
        services.phi_access_record(
            actor=admin_actor(request, obj.organization),
            kind=AccessKind.PORTAL,
            studies=[(study.study_instance_uid, study.patient.patient_id)],
            path=request.get_full_path(),
        )
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Study)
class StudyAdmin(_PhiRecordingAdmin):
    list_display = [
        "study_instance_uid",
        "organization",
        "study_date",
        "modalities_in_study",
        "number_of_series",
        "number_of_instances",
        "created_at",
    ]
    list_filter = ["organization"]
    search_fields = ["study_instance_uid", "accession_number"]
    list_select_related = ["organization"]

    def study_of(self, obj: Study) -> Study:
        return obj


@admin.register(Series)
class SeriesAdmin(_PhiRecordingAdmin):
    list_display = ["series_instance_uid", "organization", "modality", "series_number", "number_of_instances"]
    list_filter = ["organization", "modality"]
    search_fields = ["series_instance_uid", "study__study_instance_uid"]
    list_select_related = ["organization"]

    def study_of(self, obj: Series) -> Study:
        return obj.study


@admin.register(Instance)
class InstanceAdmin(_PhiRecordingAdmin):
    list_display = ["sop_instance_uid", "organization", "sop_class_uid", "transfer_syntax_uid", "received_via"]
    list_filter = ["organization", "received_via"]
    search_fields = ["sop_instance_uid", "series__series_instance_uid", "sha256"]
    list_select_related = ["organization"]

    def study_of(self, obj: Instance) -> Study:
        return obj.series.study


@admin.register(PhiAccess)
class PhiAccessAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "actor_label", "kind", "studies_read", "path", "request_id"]
    list_filter = ["organization", "kind"]
    search_fields = ["actor_label", "studies__study_instance_uid", "request_id"]
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[PhiAccess]:
        return super().get_queryset(request).prefetch_related("studies")

    @admin.display(description="studies")
    def studies_read(self, access: PhiAccess) -> str:
        return ", ".join(study.study_instance_uid for study in access.studies.all())

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # Reading the log is audited, once per organization whose log this user may read.
        org_ids = admin_organization_ids(request)
        organizations = Organization.objects.all() if org_ids is None else Organization.objects.filter(pk__in=org_ids)
        for organization in organizations:
            access_log_read_audit(actor=admin_actor(request, organization), filters=AccessLogFilters())
        return super().changelist_view(request, extra_context)


class DicomNodeForm(forms.ModelForm):
    class Meta:
        model = DicomNode
        fields = ["organization", "ae_title", "description", "host", "active"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name, clean in (("ae_title", services.ae_title_clean), ("host", services.host_clean)):
            if name in cleaned:
                try:
                    cleaned[name] = clean(cleaned[name] or "")
                except DomainError as error:
                    _form_errors(self, error)
        return cleaned


@admin.register(DicomNode)
class DicomNodeAdmin(OrganizationScopedAdminMixin, admin.ModelAdmin):
    form = DicomNodeForm
    list_display = ["ae_title", "organization", "host", "active", "updated_at"]
    list_filter = ["organization", "active"]
    search_fields = ["ae_title", "description"]

    def get_readonly_fields(self, request: HttpRequest, obj: DicomNode | None = None) -> Any:
        return ["organization"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: DicomNode, form: Any, change: bool) -> None:
        actor = _writer(request, obj.organization)
        if change:
            current = DicomNode.objects.get(pk=obj.pk)
            data = {name: form.cleaned_data[name] for name in services.DICOM_NODE_FIELDS if name in form.cleaned_data}
            saved = services.dicom_node_update(actor=actor, node=current, data=data)
        else:
            saved = services.dicom_node_create(
                actor=actor, ae_title=obj.ae_title, description=obj.description, host=obj.host, active=obj.active
            )
        copy_saved_row(obj, saved)

    def delete_model(self, request: HttpRequest, obj: DicomNode) -> None:
        services.dicom_node_delete(actor=_writer(request, obj.organization), node=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[DicomNode]) -> None:
        for node in queryset.select_related("organization"):
            services.dicom_node_delete(actor=_writer(request, node.organization), node=node)


class ArchiveSettingsForm(forms.ModelForm):
    class Meta:
        model = ArchiveSettings
        fields = ["organization", "duplicate_policy", "deidentify_on_receipt", "deidentify_options"]

    def clean_deidentify_options(self) -> dict[str, bool]:
        try:
            return DeidOptions.from_dict(self.cleaned_data.get("deidentify_options") or {}).to_dict()
        except DomainError as error:
            raise forms.ValidationError(error.message) from None


@admin.register(ArchiveSettings)
class ArchiveSettingsAdmin(OrganizationScopedAdminMixin, admin.ModelAdmin):
    form = ArchiveSettingsForm
    list_display = ["organization", "duplicate_policy", "deidentify_on_receipt", "updated_at"]
    list_filter = ["duplicate_policy", "deidentify_on_receipt"]

    def get_readonly_fields(self, request: HttpRequest, obj: ArchiveSettings | None = None) -> Any:
        return ["organization"] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # an organization always has a policy (the defaults when it has no row)

    def save_model(self, request: HttpRequest, obj: ArchiveSettings, form: Any, change: bool) -> None:
        saved = services.archive_settings_update(
            actor=_writer(request, obj.organization),
            duplicate_policy=obj.duplicate_policy,
            deidentify_on_receipt=obj.deidentify_on_receipt,
            deidentify_options=obj.deidentify_options,
        )
        copy_saved_row(obj, saved)
