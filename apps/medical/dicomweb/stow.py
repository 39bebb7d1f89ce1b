"""STOW-RS (PS3.18 10.5): `POST /studies` and `POST /studies/{study}` with a
`multipart/related; type="application/dicom"` body.

The body is read as a stream (chunked bodies included), each part written to a scratch file and
stored or refused on its own. The answer is the PS3.18 Store Instances Response Module as DICOM
JSON, with the status the standard gives: 200 all stored, 202 some failed or warned, 409 none
stored, 400 a malformed body, 415 a media type other than application/dicom.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from rest_framework.request import Request

from apps.medical.choices import ReceivedVia
from apps.medical.dicom_files import CANNOT_UNDERSTAND, InstanceRefused
from apps.medical.dicomweb.base import (
    DICOM_JSON,
    SCHEMA_TAG,
    DicomWebView,
    absolute_url,
    dicom_json_response,
    request_body_stream,
)
from apps.medical.multipart import MultipartError, ReceivedPart, multipart_parts, request_boundary
from apps.medical.receiving import ReceivedFile, ReceiveReport, instances_receive
from apps.medical.routing import studies_received_on_receipt, studies_with_new_instances
from core.errors import UnsupportedMediaType, ValidationFailed
from core.storage import scratch_directory

DICOM = "application/dicom"


_STORE_RESPONSE = OpenApiTypes.OBJECT  # the Store Instances Response Module as DICOM JSON (PS3.18 F.2)


class StowApi(DicomWebView):
    """Store instances (STOW-RS)."""

    streams_request_body = True  # not limited by API_MAX_UPLOAD_MB: parts stream to storage

    @extend_schema(
        summary="Store instances (STOW-RS, PS3.18 10.5)",
        description=(
            'A `multipart/related; type="application/dicom"` body, one instance per part (chunked bodies '
            "welcome). Answers the Store Instances Response Module: `ReferencedSOPSequence` (stored, with "
            "`WarningReason` for a kept duplicate), `FailedSOPSequence` with `FailureReason` codes."
        ),
        request={"multipart/related": OpenApiTypes.BINARY},
        responses={
            (200, DICOM_JSON): OpenApiResponse(_STORE_RESPONSE, description="Every instance stored."),
            (202, DICOM_JSON): OpenApiResponse(_STORE_RESPONSE, description="Some stored; others failed or warned."),
            (409, DICOM_JSON): OpenApiResponse(_STORE_RESPONSE, description="None stored (see FailedSOPSequence)."),
        },
        tags=[SCHEMA_TAG],
        operation_id="medical_dicomweb_store",
    )
    def post(self, request: Request, study_uid: str = "") -> HttpResponse:
        content_type = request.META.get("CONTENT_TYPE", "")
        try:
            boundary, media_type = request_boundary(content_type)
        except MultipartError as exc:
            if content_type.lower().startswith("multipart/related"):
                raise ValidationFailed(str(exc), code="bad_multipart") from None
            raise UnsupportedMediaType(
                'STOW-RS takes multipart/related; type="application/dicom".', code="unsupported_media_type"
            ) from None
        part_type = media_type.params.get("type", DICOM).lower()
        if part_type != DICOM:
            raise UnsupportedMediaType(
                f"Only application/dicom parts are stored (type={part_type} was sent).", code="unsupported_media_type"
            )
        stream = request_body_stream(request._request)
        with scratch_directory(prefix="stow-") as folder:
            # The whole body is read (to scratch files, one per part) before anything is stored:
            # a body that turns out malformed (a client that died mid-body, no closing boundary)
            # is a 400 that stored nothing, not a 400 that kept the instances before the break.
            try:
                parts = list(multipart_parts(stream, boundary, folder))
            except MultipartError as exc:
                raise ValidationFailed(f"Malformed multipart body: {exc}", code="bad_multipart") from None
            if not parts:
                raise ValidationFailed("The body holds no parts.", code="bad_multipart")
            refused_parts = [_wrong_part_type(part) for part in parts if part.content_type.value not in {DICOM, ""}]

            def files() -> Iterator[ReceivedFile]:
                for part in parts:
                    if part.content_type.value in {DICOM, ""}:
                        yield ReceivedFile(path=part.path, sha256=part.sha256, size=part.size)

            report = instances_receive(
                actor=self.actor, files=files(), received_via=ReceivedVia.STOW, expected_study_uid=study_uid
            )
        report.refused.extend(refused_parts)
        studies_received_on_receipt(actor=self.actor, study_ids=studies_with_new_instances(report.stored))
        return _stow_response(request, report, study_uid)


def _wrong_part_type(part: ReceivedPart) -> InstanceRefused:
    return InstanceRefused(CANNOT_UNDERSTAND, f"A part of type {part.content_type.value} is not application/dicom.")


def _stow_response(request: Request, report: ReceiveReport, study_uid: str) -> HttpResponse:
    """The Store Instances Response Module (PS3.18 Table 10.5.3-1) and its status code."""
    response = Dataset()
    studies = {outcome.instance.series.study.study_instance_uid for outcome in report.stored}
    if study_uid or len(studies) == 1:
        response.RetrieveURL = absolute_url(request._request, f"studies/{study_uid or next(iter(studies))}")
    referenced = []
    for outcome in report.stored:
        instance = outcome.instance
        item = Dataset()
        item.ReferencedSOPClassUID = instance.sop_class_uid
        item.ReferencedSOPInstanceUID = instance.sop_instance_uid
        item.RetrieveURL = absolute_url(
            request._request,
            f"studies/{instance.series.study.study_instance_uid}/series/{instance.series.series_instance_uid}"
            f"/instances/{instance.sop_instance_uid}",
        )
        if outcome.warning_reason is not None:
            item.WarningReason = outcome.warning_reason
        referenced.append(item)
    failed = []
    for refusal in report.refused:
        item = Dataset()
        item.ReferencedSOPClassUID = refusal.sop_class_uid
        item.ReferencedSOPInstanceUID = refusal.sop_instance_uid
        item.FailureReason = refusal.reason
        failed.append(item)
    if referenced:
        response.ReferencedSOPSequence = Sequence(referenced)
    if failed:
        response.FailedSOPSequence = Sequence(failed)
    warnings = [outcome.warning for outcome in report.warnings] + [refusal.message for refusal in report.refused]
    if not report.stored:
        status = 409
    elif report.refused or report.warnings:
        status = 202
    else:
        status = 200
    headers = {}
    if warnings:
        # RFC 7234 Warning header, as PS3.18 8.5 uses it; one line, ASCII
        text = "; ".join(dict.fromkeys(warnings))[:1000].encode("ascii", "replace").decode()
        headers["Warning"] = f'299 tessera "{text.replace(chr(34), chr(39))}"'
    return dicom_json_response(response.to_json_dict(), status=status, headers=headers)


@extend_schema_view(post=extend_schema(operation_id="medical_dicomweb_study_store", tags=[SCHEMA_TAG]))
class StudyStowApi(StowApi):
    """Store instances into one study (STOW-RS `POST /studies/{study}`): others are refused."""
