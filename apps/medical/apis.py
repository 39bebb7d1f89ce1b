"""The archive's REST API beside DICOMweb (`/api/v1/medical/…`): the study list and a study with
its series (from the index), deleting a study or series, the archive settings, the PHI access
log (and its CSV export) and de-identified exports. Thin: validate, call one service or
selector, serialize.

Reads of patient data write a PHI access row (`services.phi_access_record`): a search lists the
studies on the page it answered, a study read its study. Admin-only operations (deletes,
settings changes, the access log, exports) need an org admin session or an API key with the
`medical` scope.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.files.storage import default_storage
from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from apps.medical import access_log, exports, index_search, selectors, services
from apps.medical.choices import DOMAIN, AccessKind, DuplicatePolicy, ExportDestination
from apps.medical.deidentify import DeidOptions, DeidOptionsError
from apps.medical.models import Study
from apps.medical.serializers import (
    ArchiveSettingsOutputSerializer,
    ExportOutputSerializer,
    PhiAccessOutputSerializer,
    StudyDetailOutputSerializer,
    StudyOutputSerializer,
)
from core.api.schema import conflict
from core.api.views import OrgAPIView
from core.errors import Conflict, ValidationFailed
from core.jobs.choices import JobStatus

SCHEMA_TAG = "medical: archive"
ADMIN_NOTE = "Org admins (portal session) or API keys with the `medical` scope."


class _JsonFallbackNegotiation(DefaultContentNegotiation):
    """An Accept header none of the renderers satisfies gets JSON rather than a 406.

    These endpoints answer one representation each (JSON, or a file that bypasses the renderers:
    the CSV export, the zip download), so an error body is always the JSON error shape, whatever
    the client asked for.
    """

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        offered = list(renderers)
        try:
            return super().select_renderer(request, offered, format_suffix)
        except NotAcceptable:
            renderer = offered[0]
            return renderer, renderer.media_type


class MedicalApi(OrgAPIView):
    required_scope = DOMAIN
    content_negotiation_class = _JsonFallbackNegotiation


def _deid_options(value: object, field: str) -> DeidOptions:
    """Options from the body, with errors named under the body's field (`options.retain_uids`)."""
    try:
        return DeidOptions.from_dict(value)
    except DeidOptionsError as exc:
        raise ValidationFailed(
            exc.message,
            code=exc.code,
            fields={f"{field}.{name}": messages for name, messages in exc.fields.items()} or {field: [exc.message]},
        ) from None


# --- Studies ------------------------------------------------------------------------------------


class StudyListApi(MedicalApi):
    class FilterSerializer(serializers.Serializer[Any]):
        patient_id = serializers.CharField(required=False, default="", allow_blank=True, max_length=64)
        patient_name = serializers.CharField(
            required=False,
            default="",
            allow_blank=True,
            max_length=324,
            help_text="As QIDO-RS PatientName with fuzzymatching=true: matches the start of any name component, "
            "case-insensitive; * and ? are wildcards.",
        )
        accession = serializers.CharField(required=False, default="", allow_blank=True, max_length=16)
        date_from = serializers.DateField(
            required=False, allow_null=True, default=None, input_formats=["iso-8601", "%Y%m%d"]
        )
        date_to = serializers.DateField(
            required=False, allow_null=True, default=None, input_formats=["iso-8601", "%Y%m%d"]
        )
        modality = serializers.RegexField(
            r"^[A-Za-z0-9_ ]{0,16}$", required=False, default="", allow_blank=True, max_length=16
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if attrs["date_from"] and attrs["date_to"] and attrs["date_from"] > attrs["date_to"]:
                raise serializers.ValidationError({"date_to": ["Must not be before date_from."]})
            return attrs

    @extend_schema(parameters=[FilterSerializer], responses=StudyOutputSerializer(many=True), tags=[SCHEMA_TAG])
    def get(self, request: Request) -> Response:
        """Studies of the archive, newest first, searched on the index (a PHI access row: `search`)."""
        data = self.FilterSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        filters = index_search.StudyFilters(
            patient_id=values["patient_id"],
            patient_name=values["patient_name"],
            accession=values["accession"],
            date_from=values["date_from"].strftime("%Y%m%d") if values["date_from"] else "",
            date_to=values["date_to"].strftime("%Y%m%d") if values["date_to"] else "",
            modality=values["modality"].strip().upper(),
        )
        paginator = self.pagination_class()
        page: list[Study] = (
            paginator.paginate_queryset(index_search.study_search(org=self.org, filters=filters), request, view=self)
            or []
        )
        services.phi_access_record(
            actor=self.actor,
            kind=AccessKind.SEARCH,
            studies=[(study.study_instance_uid, study.patient.patient_id) for study in page],
            path=request.get_full_path(),
        )
        return paginator.get_paginated_response(StudyOutputSerializer(page, many=True).data)


class StudyDetailApi(MedicalApi):
    parser_classes = [JSONParser]

    class DeleteSerializer(serializers.Serializer[Any]):
        reason = serializers.CharField(max_length=500, help_text="Why (kept in the audit log).")

    @extend_schema(responses=StudyDetailOutputSerializer, tags=[SCHEMA_TAG])
    def get(self, request: Request, study_uid: str) -> Response:
        """A study and its series (a PHI access row: `metadata`)."""
        study = selectors.study_get(org=self.org, study_uid=study_uid)
        services.phi_access_record(
            actor=self.actor,
            kind=AccessKind.METADATA,
            studies=[(study.study_instance_uid, study.patient.patient_id)],
            path=request.get_full_path(),
        )
        return Response(StudyDetailOutputSerializer(study).data)

    @extend_schema(request=DeleteSerializer, responses={204: None}, tags=[SCHEMA_TAG], description=ADMIN_NOTE)
    def delete(self, request: Request, study_uid: str) -> Response:
        """Delete a study with all its series and instances (audited with the reason)."""
        data = self.DeleteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        study = selectors.study_get(org=self.org, study_uid=study_uid)
        services.study_delete(actor=self.actor, study=study, reason=data.validated_data["reason"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class SeriesDetailApi(MedicalApi):
    parser_classes = [JSONParser]

    @extend_schema(
        request=StudyDetailApi.DeleteSerializer, responses={204: None}, tags=[SCHEMA_TAG], description=ADMIN_NOTE
    )
    def delete(self, request: Request, study_uid: str, series_uid: str) -> Response:
        """Delete one series of a study (audited with the reason); the study's counts follow."""
        data = StudyDetailApi.DeleteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        series = selectors.series_get(org=self.org, study_uid=study_uid, series_uid=series_uid)
        services.series_delete(actor=self.actor, series=series, reason=data.validated_data["reason"])
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Settings -----------------------------------------------------------------------------------


class SettingsApi(MedicalApi):
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer[Any]):
        duplicate_policy = serializers.ChoiceField(choices=DuplicatePolicy.choices, required=False)
        deidentify_on_receipt = serializers.BooleanField(required=False)
        deidentify_options = serializers.JSONField(
            required=False, help_text='PS3.15 Annex E options, e.g. {"retain_long_modified_dates": true}.'
        )

    @extend_schema(responses=ArchiveSettingsOutputSerializer, tags=[SCHEMA_TAG])
    def get(self, request: Request) -> Response:
        """The archive policy: duplicates, and de-identify on receipt with its options."""
        return Response(ArchiveSettingsOutputSerializer(selectors.archive_settings_get(org=self.org)).data)

    @extend_schema(
        request=InputSerializer, responses=ArchiveSettingsOutputSerializer, tags=[SCHEMA_TAG], description=ADMIN_NOTE
    )
    def patch(self, request: Request) -> Response:
        """Change the archive policy (fields left out keep their value)."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        options = values.get("deidentify_options")
        updated = services.archive_settings_update(
            actor=self.actor,
            duplicate_policy=values.get("duplicate_policy"),
            deidentify_on_receipt=values.get("deidentify_on_receipt"),
            deidentify_options=None if options is None else _deid_options(options, "deidentify_options").to_dict(),
        )
        return Response(ArchiveSettingsOutputSerializer(updated).data)


# --- PHI access log -----------------------------------------------------------------------------


class AccessLogFilterSerializer(serializers.Serializer[Any]):
    study = serializers.CharField(required=False, default="", allow_blank=True, max_length=64)
    user = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=150,
        help_text="A user id, a username, or an actor label (`api-key:<prefix>`).",
    )
    kind = serializers.ChoiceField(choices=AccessKind.choices, required=False)
    since = serializers.DateTimeField(required=False, allow_null=True, default=None)
    until = serializers.DateTimeField(required=False, allow_null=True, default=None)

    class Meta:
        ref_name = "MedicalAccessLogFilter"

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": ["Must be after since."]})
        return attrs


def _access_log_filters(request: Request) -> access_log.AccessLogFilters:
    data = AccessLogFilterSerializer(data=request.query_params)
    data.is_valid(raise_exception=True)
    return access_log.AccessLogFilters(**data.validated_data)


class AccessLogApi(MedicalApi):
    @extend_schema(
        parameters=[AccessLogFilterSerializer],
        responses=PhiAccessOutputSerializer(many=True),
        tags=[SCHEMA_TAG],
        description=f"{ADMIN_NOTE} Reading the log is audited (`medical.access_log.read`).",
    )
    def get(self, request: Request) -> Response:
        """Who read which patient data, newest first."""
        rows = access_log.access_log_read(actor=self.actor, filters=_access_log_filters(request))
        return self.paginate(request, rows, PhiAccessOutputSerializer)


class AccessLogExportApi(MedicalApi):
    renderer_classes = [JSONRenderer]

    @extend_schema(
        parameters=[AccessLogFilterSerializer],
        responses={(200, "text/csv"): OpenApiTypes.BINARY},
        tags=[SCHEMA_TAG],
        description=f"{ADMIN_NOTE} Columns: {', '.join(access_log.CSV_COLUMNS)}. Audited like a read.",
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        """The access log matching the filters as a CSV download (streamed)."""
        rows = access_log.access_log_read(actor=self.actor, filters=_access_log_filters(request), export=True)
        response = StreamingHttpResponse(
            access_log.access_log_csv_lines(rows.iterator(chunk_size=500)), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="phi-access-{self.org.slug}.csv"'
        return response


# --- Exports ------------------------------------------------------------------------------------


class ExportListApi(MedicalApi):
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer[Any]):
        studies = serializers.ListField(
            child=serializers.CharField(max_length=64),
            allow_empty=False,
            max_length=exports.MAX_EXPORT_STUDIES,
            help_text="Study Instance UIDs of this archive.",
        )
        options = serializers.JSONField(
            required=False, default=dict, help_text="PS3.15 Annex E options (all false: the Basic Profile alone)."
        )
        destination = serializers.ChoiceField(
            choices=ExportDestination.choices, required=False, default=ExportDestination.ZIP
        )
        target_organization = serializers.SlugField(
            required=False,
            max_length=50,
            help_text="With destination `organization`: the slug of an organization you are org admin of too "
            "(portal sessions only; an API key cannot write into another organization).",
        )

    @extend_schema(responses=ExportOutputSerializer(many=True), tags=[SCHEMA_TAG], description=ADMIN_NOTE)
    def get(self, request: Request) -> Response:
        """The organization's exports, newest first."""
        self.actor.require_org_admin("see exports", key_scope=DOMAIN)
        return self.paginate(request, exports.export_list(org=self.org), ExportOutputSerializer)

    @extend_schema(
        request=InputSerializer,
        responses={
            202: ExportOutputSerializer,
            400: OpenApiResponse(
                description="`unknown_studies`: `fields.studies` lists the UIDs not in the archive; "
                "`unknown_option` / `options_conflict` for the options."
            ),
        },
        tags=[SCHEMA_TAG],
        description=ADMIN_NOTE,
    )
    def post(self, request: Request) -> Response:
        """Start a de-identified export (a job: poll the export or its job, then download the zip)."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        export = exports.export_start(
            actor=self.actor,
            study_uids=values["studies"],
            options=_deid_options(values["options"], "options").to_dict(),
            destination=values["destination"],
            target_slug=values.get("target_organization", ""),
        )
        export = exports.export_get(org=self.org, export_id=export.pk)
        return Response(ExportOutputSerializer(export).data, status=status.HTTP_202_ACCEPTED)


class ExportDetailApi(MedicalApi):
    @extend_schema(responses=ExportOutputSerializer, tags=[SCHEMA_TAG], description=ADMIN_NOTE)
    def get(self, request: Request, export_id: int) -> Response:
        """An export: its job (status, progress), exported count and quarantined instances with reasons."""
        self.actor.require_org_admin("see exports", key_scope=DOMAIN)
        return Response(ExportOutputSerializer(exports.export_get(org=self.org, export_id=export_id)).data)


class ExportDownloadApi(MedicalApi):
    renderer_classes = [JSONRenderer]

    @extend_schema(
        responses={
            (200, "application/zip"): OpenApiTypes.BINARY,
            409: conflict("`not_ready` until the job has succeeded; `no_download` for an export into an organization."),
        },
        tags=[SCHEMA_TAG],
        description=f"{ADMIN_NOTE} Files at `<study uid>/<series uid>/<sop instance uid>.dcm` (new UIDs).",
    )
    def get(self, request: Request, export_id: int) -> FileResponse:
        """The de-identified instances as a zip (streamed)."""
        self.actor.require_org_admin("download exports", key_scope=DOMAIN)
        export = exports.export_get(org=self.org, export_id=export_id)
        if export.destination != ExportDestination.ZIP:
            raise Conflict("This export was written into another organization; it has no zip.", code="no_download")
        if export.job.status != JobStatus.SUCCEEDED or not export.file:
            raise Conflict("The export is not finished yet; poll its job.", code="not_ready")
        exports.export_download_record(actor=self.actor, export=export)
        return FileResponse(
            default_storage.open(export.file, "rb"),
            as_attachment=True,
            filename=f"deidentified-export-{export.pk}.zip",
            content_type="application/zip",
        )
