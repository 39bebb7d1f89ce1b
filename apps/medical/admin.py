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

from apps.medical import reports, routing, services
from apps.medical.access_log import AccessLogFilters, access_log_read_audit
from apps.medical.choices import AccessKind, ReportStatus
from apps.medical.deidentify import DeidOptions
from apps.medical.models import (
    Analysis,
    AnalysisFinding,
    ArchiveSettings,
    DicomNode,
    Instance,
    PhiAccess,
    Report,
    RoutingRule,
    Series,
    Study,
)
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

    phi_kind: str = AccessKind.PORTAL

    def study_of(self, obj: Any) -> Study:
        raise NotImplementedError

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        obj = self.get_object(request, object_id)
        study = self.study_of(obj)
        services.phi_access_record(
            actor=admin_actor(request, obj.organization),
            kind=self.phi_kind,
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


# --- Clinicians' reports ----------------------------------------------------------------------------


class ReportAdminForm(forms.ModelForm):
    class Meta:
        model = Report
        fields = ["findings", "impression", "ai_decision", "final_label"]


@admin.register(Report)
class ReportAdmin(OrganizationScopedAdminMixin, admin.ModelAdmin):
    """Reports of the staff's organizations. A signed report is read-only (it is an attestation; the
    model refuses changes too). A draft's text and decision can be corrected here, through
    `reports.report_update` (validated and audited as in the portal); nobody signs, adds or deletes
    a report in the back office. Opening a report is a PHI access and an audited read."""

    form = ReportAdminForm
    list_display = ["id", "organization", "study", "version", "status", "ai_decision", "signed_by", "signed_at"]
    list_filter = ["organization", "status", "ai_decision"]
    search_fields = ["study__study_instance_uid", "final_label"]
    list_select_related = ["organization", "study", "signed_by"]
    _always_read_only = [
        "organization",
        "study",
        "analysis",
        "version",
        "amends",
        "status",
        "author",
        "signed_by",
        "signed_at",
        "content_sha256",
        "sr_sop_instance_uid",
        "created_at",
        "updated_at",
    ]

    def get_fields(self, request: HttpRequest, obj: Report | None = None) -> Any:
        return [
            *self._always_read_only[:6],
            "findings",
            "impression",
            "ai_decision",
            "final_label",
            *self._always_read_only[6:],
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Report | None = None) -> Any:
        if obj is not None and obj.status == ReportStatus.SIGNED:
            return [*self._always_read_only, "findings", "impression", "ai_decision", "final_label"]
        return self._always_read_only

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Report | None = None) -> bool:
        if obj is not None and obj.status == ReportStatus.SIGNED:
            return False  # the change page still shows it, read-only (view permission)
        return super().has_change_permission(request, obj)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        report = self.get_object(request, object_id)
        if report is not None and request.method == "GET":
            reports.report_read_record(
                actor=admin_actor(request, report.organization),
                study=report.study,
                reports=[report],
                path=request.get_full_path(),
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Report, form: Any, change: bool) -> None:
        current = reports.report_get(org=obj.organization, report_id=obj.pk)
        saved = reports.report_update(
            actor=_writer(request, obj.organization),
            report=current,
            content=reports.ReportContent(
                **{name: form.cleaned_data.get(name, "") for name in ReportAdminForm.Meta.fields}
            ),
        )
        copy_saved_row(obj, saved)


# --- Analyses and routing rules ----------------------------------------------------------------------


class _AnalysisPhiAdmin(_PhiRecordingAdmin):
    """An analysis' result is patient data: opening one writes a PHI access row (`analysis`)."""

    phi_kind = AccessKind.ANALYSIS

    def study_of(self, obj: Analysis | AnalysisFinding) -> Study:
        return obj.study if isinstance(obj, Analysis) else obj.analysis.study


@admin.register(Analysis)
class AnalysisAdmin(_AnalysisPhiAdmin):
    """Analyses are written by their job only (read-only here)."""

    list_display = [
        "id",
        "organization",
        "study",
        "model_version",
        "trigger",
        "suggested_label",
        "probability",
        "created_at",
    ]
    list_filter = ["organization", "trigger"]
    search_fields = ["study__study_instance_uid", "suggested_label", "sr_sop_instance_uid"]
    list_select_related = ["organization", "study", "model_version__registered_model"]


@admin.register(AnalysisFinding)
class AnalysisFindingAdmin(_AnalysisPhiAdmin):
    list_display = ["id", "organization", "analysis", "level", "series", "instance", "suggested_label", "probability"]
    list_filter = ["organization", "level"]
    search_fields = ["series__series_instance_uid", "instance__sop_instance_uid", "suggested_label"]
    list_select_related = ["organization", "analysis__study", "series", "instance"]


class RoutingRuleAdminForm(forms.ModelForm):
    class Meta:
        model = RoutingRule
        fields = [
            "organization",
            "name",
            "modality",
            "body_part",
            "series_description_pattern",
            "registered_model",
            "alias",
            "active",
        ]

    def clean(self) -> dict[str, Any]:
        """The services' own checks, shown on the form (a bad pattern, a model of another kind,
        an alias the model lacks); the unique name is the model form's constraint check."""
        cleaned = super().clean() or {}
        organization = cleaned.get("organization") or getattr(self.instance, "organization", None)
        try:
            values = routing.routing_rule_values(cleaned)
            model = cleaned.get("registered_model")
            if organization is not None and model is not None:
                routing.routing_rule_model_check(
                    actor=Actor.system(organization), registered_model=model, alias=values.get("alias", "production")
                )
        except DomainError as error:
            _form_errors(self, error)
            return cleaned
        cleaned.update({name: value for name, value in values.items() if name in cleaned})
        return cleaned


@admin.register(RoutingRule)
class RoutingRuleAdmin(OrganizationScopedAdminMixin, admin.ModelAdmin):
    """Rules are created, changed and deleted through `routing`'s services (validated, audited)."""

    form = RoutingRuleAdminForm
    list_display = [
        "name",
        "organization",
        "modality",
        "body_part",
        "series_description_pattern",
        "registered_model",
        "alias",
        "active",
    ]
    list_filter = ["organization", "active"]
    search_fields = ["name", "series_description_pattern"]
    list_select_related = ["organization", "registered_model"]

    def get_readonly_fields(self, request: HttpRequest, obj: RoutingRule | None = None) -> Any:
        return ["organization"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: RoutingRule, form: Any, change: bool) -> None:
        actor = _writer(request, obj.organization)
        values = {name: form.cleaned_data[name] for name in routing.RULE_FIELDS if name in form.cleaned_data}
        if change:
            saved = routing.routing_rule_update(actor=actor, rule=RoutingRule.objects.get(pk=obj.pk), data=values)
        else:
            saved = routing.routing_rule_create(actor=actor, **values)
        copy_saved_row(obj, saved)

    def delete_model(self, request: HttpRequest, obj: RoutingRule) -> None:
        routing.routing_rule_delete(actor=_writer(request, obj.organization), rule=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[RoutingRule]) -> None:
        for rule in queryset.select_related("organization", "registered_model"):
            routing.routing_rule_delete(actor=_writer(request, rule.organization), rule=rule)
