"""The reports API for partners (EHR / RIS integration): a study's report versions, drafts, the
signature and amendments.

`GET/POST /api/v1/medical/studies/{study}/reports/`, `GET/PATCH /api/v1/medical/reports/{id}/`,
`POST .../sign/` and `POST .../amend/`. API keys with the `medical` scope and portal sessions of
clinicians and org admins read and write drafts; signing is a person's attestation, so it needs a
clinician's portal session (session cookie + CSRF token): an API key is refused with 403
`signature_requires_person`. Every read is an audit row and a PHI access row (`report`).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from apps.medical import reports, selectors
from apps.medical.apis import MedicalApi
from apps.medical.report_serializers import (
    ReportContentInputSerializer,
    ReportCreateInputSerializer,
    ReportOutputSerializer,
)
from core.api.schema import conflict

SCHEMA_TAG = "medical: reports"
SIGN_NOTE = (
    "Only a clinician's portal session (session cookie and CSRF token) can sign: signing is a person's "
    "attestation, so an API key is refused (403 `signature_requires_person`), and so is a user without the "
    "clinician role (403 `signature_requires_clinician`)."
)


def _content(values: dict[str, str]) -> reports.ReportContent:
    return reports.ReportContent(
        findings=values.get("findings"),
        impression=values.get("impression"),
        ai_decision=values.get("ai_decision"),
        final_label=values.get("final_label"),
    )


class ReportApi(MedicalApi):
    parser_classes = [JSONParser]

    def _answer(self, report_id: int, *, code: int = status.HTTP_200_OK) -> Response:
        report = reports.report_get(org=self.org, report_id=report_id)
        return Response(ReportOutputSerializer(report).data, status=code)


class StudyReportListApi(ReportApi):
    @extend_schema(responses=ReportOutputSerializer(many=True), tags=[SCHEMA_TAG])
    def get(self, request: Request, study_uid: str) -> Response:
        """Every version of the study's report, newest first (`amends` / `amended_by` link the chain)."""
        study = selectors.study_get(org=self.org, study_uid=study_uid)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(reports.report_list(org=self.org, study=study), request, view=self) or []
        reports.report_read_record(actor=self.actor, study=study, reports=page, path=request.get_full_path())
        return paginator.get_paginated_response(ReportOutputSerializer(page, many=True).data)

    @extend_schema(
        request=ReportCreateInputSerializer,
        responses={
            201: ReportOutputSerializer,
            409: conflict("`report_exists`: the study has a report already (edit its draft, or amend it)."),
        },
        tags=[SCHEMA_TAG],
    )
    def post(self, request: Request, study_uid: str) -> Response:
        """Start the study's report as a draft (version 1), reviewing an analysis of the study."""
        data = ReportCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        study = selectors.study_get(org=self.org, study_uid=study_uid)
        report = reports.report_create(
            actor=self.actor,
            study=study,
            content=_content(values),
            analysis_id=values.get("analysis"),
            default_latest_analysis="analysis" not in values,
        )
        return self._answer(report.pk, code=status.HTTP_201_CREATED)


class ReportDetailApi(ReportApi):
    @extend_schema(responses=ReportOutputSerializer, tags=[SCHEMA_TAG])
    def get(self, request: Request, report_id: int) -> Response:
        """One report version (a signed one stays readable after it is amended)."""
        report = reports.report_get(org=self.org, report_id=report_id)
        reports.report_read_record(actor=self.actor, study=report.study, reports=[report], path=request.get_full_path())
        return Response(ReportOutputSerializer(report).data)

    @extend_schema(
        request=ReportContentInputSerializer,
        responses={200: ReportOutputSerializer, 409: conflict("`report_signed`: a signed report is immutable.")},
        tags=[SCHEMA_TAG],
    )
    def patch(self, request: Request, report_id: int) -> Response:
        """Change a draft's findings, impression, AI decision or final label (fields left out stay)."""
        data = ReportContentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        report = reports.report_get(org=self.org, report_id=report_id)
        reports.report_update(actor=self.actor, report=report, content=_content(data.validated_data))
        return self._answer(report.pk)


class ReportSignApi(ReportApi):
    @extend_schema(
        request=None,
        responses={
            200: ReportOutputSerializer,
            403: OpenApiResponse(description=SIGN_NOTE),
            409: conflict("`report_signed`: already signed."),
        },
        tags=[SCHEMA_TAG],
        description=f"{SIGN_NOTE} The signed report is immutable, with its signer, time and content sha256; a "
        "VERIFIED DICOM SR with the decision is written into the study (`sr_sop_instance_uid`).",
    )
    def post(self, request: Request, report_id: int) -> Response:
        """Sign a draft (a clinician's attestation)."""
        report = reports.report_get(org=self.org, report_id=report_id)
        reports.report_sign(actor=self.actor, report=report)
        return self._answer(report.pk)


class ReportAmendApi(ReportApi):
    @extend_schema(
        request=None,
        responses={
            201: ReportOutputSerializer,
            409: conflict("`report_not_signed`: only a signed report is amended; `report_amended`: amended already."),
        },
        tags=[SCHEMA_TAG],
    )
    def post(self, request: Request, report_id: int) -> Response:
        """Amend a signed report: a new draft version linked to it (`amends`), starting from its content."""
        report = reports.report_get(org=self.org, report_id=report_id)
        amendment = reports.report_amend(actor=self.actor, report=report)
        return self._answer(amendment.pk, code=status.HTTP_201_CREATED)
