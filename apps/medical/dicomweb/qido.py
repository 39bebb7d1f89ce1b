"""QIDO-RS (PS3.18 10.6): search for studies, series and instances.

`GET /studies`, `/studies/{study}/series`, `/series`, `/studies/{study}/series/{series}/instances`,
`/studies/{study}/instances` and `/instances` answer a JSON array of DICOM JSON objects
(`application/dicom+json`, or `application/json` to a client that asks only for that), matched
on the index only (see apps.medical.qido_query for the matching rules). Nothing matching is
`200 []` (PS3.18 allows 200 or 204; OHIF expects an array). The path's UIDs are matching keys
like the query's: an unknown study, or another organization's, matches nothing (`200 []`,
which discloses nothing), as `?StudyInstanceUID=` would. Every search writes one PHI access row
(kind `search`) with the studies it returned, an empty search included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request

from apps.medical.choices import AccessKind
from apps.medical.dicomweb.base import (
    DICOM_JSON,
    SCHEMA_TAG,
    DicomWebView,
    absolute_url,
    dicom_json_response,
    negotiate,
)
from apps.medical.qido_query import MAX_RESULTS, Level, qido_search, query_parse, results_build, studies_touched
from apps.medical.services import phi_access_record
from core.errors import NotAcceptable

JSON = "application/json"
_View = TypeVar("_View", bound=Callable[..., Any])

_RESULTS = {"type": "array", "items": {"type": "object", "additionalProperties": True}}
_CONTROL_PARAMETERS = [
    OpenApiParameter("limit", OpenApiTypes.INT, description=f"At most this many results (1..{MAX_RESULTS})."),
    OpenApiParameter("offset", OpenApiTypes.INT, description="Skip this many results."),
    OpenApiParameter(
        "fuzzymatching",
        OpenApiTypes.BOOL,
        description="Person names match case-insensitively at the start of any name component.",
    ),
    OpenApiParameter(
        "includefield",
        OpenApiTypes.STR,
        many=True,
        explode=True,
        description="Extra attributes to return: tags (`00081030`) or keywords, comma-separated or repeated; `all`.",
    ),
]


def _keys(*keywords: str) -> list[OpenApiParameter]:
    return [
        OpenApiParameter(keyword, OpenApiTypes.STR, description="Matching key (PS3.18 8.3.4.1); also by tag.")
        for keyword in keywords
    ]


_STUDY_KEYS = ("PatientName", "PatientID", "StudyDate", "AccessionNumber", "ModalitiesInStudy", "StudyInstanceUID")
_SERIES_KEYS = ("Modality", "SeriesInstanceUID", "SeriesNumber")
_INSTANCE_KEYS = ("SOPInstanceUID", "SOPClassUID", "InstanceNumber")


def _schema(operation_id: str, summary: str, keys: tuple[str, ...]) -> Callable[[_View], _View]:
    decorator: Callable[[_View], _View] = extend_schema(
        summary=summary,
        description=(
            "QIDO-RS search (PS3.18 10.6) on the archive's index: single values, `*`/`?` wildcards, "
            "date and time ranges, UID lists, `fuzzymatching`, `includefield`, `limit`/`offset`. "
            "A DICOM attribute the index does not match on is ignored and named in the `Warning` header; "
            "an unknown one is a 400. Nothing matching is `200 []`."
        ),
        parameters=[*_CONTROL_PARAMETERS, *_keys(*keys)],
        responses={
            (200, DICOM_JSON): OpenApiResponse(_RESULTS, description="The matches, as DICOM JSON objects."),
            (200, JSON): OpenApiResponse(_RESULTS, description="The same, to a client accepting only JSON."),
            406: OpenApiResponse(description="`not_acceptable`: the Accept header allows no JSON answer."),
        },
        tags=[SCHEMA_TAG],
        operation_id=operation_id,
    )
    return decorator


class _SearchApi(DicomWebView):
    """A QIDO-RS search at one level; subclasses name the level."""

    level = Level.STUDY

    def search(self, request: Request, *, study_uid: str = "", series_uid: str = "") -> HttpResponse:
        accepted = negotiate(request._request, [DICOM_JSON, JSON])
        if accepted is None:
            raise NotAcceptable("QIDO-RS answers application/dicom+json (or application/json).", code="not_acceptable")
        params = dict(request.query_params.lists())
        query = query_parse(params, level=self.level, study_uid=study_uid, series_uid=series_uid)
        rows = qido_search(org=self.org, query=query)
        results = results_build(query=query, rows=rows, retrieve_root=absolute_url(request._request, ""))
        phi_access_record(
            actor=self.actor,
            kind=AccessKind.SEARCH,
            studies=studies_touched(query=query, rows=rows),
            path=request.get_full_path(),
            series_instance_uid=series_uid,
        )
        warnings = [f"{key} is not a supported matching key at this level (ignored)" for key in query.ignored]
        if len(rows) > query.limit:
            warnings.append("There are additional results that can be requested (use limit and offset)")
        headers = {"Warning": f'299 tessera "{"; ".join(warnings)}"'} if warnings else {}
        response = dicom_json_response(results, headers=headers)
        if accepted.media_type.value == JSON:
            response["Content-Type"] = JSON
        return response


class StudySearchApi(_SearchApi):
    """Search for studies (`GET /studies`)."""

    level = Level.STUDY

    @_schema("medical_dicomweb_search_studies", "Search for studies (QIDO-RS)", _STUDY_KEYS)
    def get(self, request: Request) -> HttpResponse:
        return self.search(request)


class SeriesSearchApi(_SearchApi):
    """Search for series of every study (`GET /series`)."""

    level = Level.SERIES

    @_schema("medical_dicomweb_search_series", "Search for series (QIDO-RS)", _STUDY_KEYS + _SERIES_KEYS)
    def get(self, request: Request) -> HttpResponse:
        return self.search(request)


class StudySeriesSearchApi(_SearchApi):
    """Search for the series of one study (`GET /studies/{study}/series`)."""

    level = Level.SERIES

    @_schema("medical_dicomweb_search_study_series", "Search for a study's series (QIDO-RS)", _SERIES_KEYS)
    def get(self, request: Request, study_uid: str) -> HttpResponse:
        return self.search(request, study_uid=study_uid)


class InstanceSearchApi(_SearchApi):
    """Search for instances of every study (`GET /instances`)."""

    level = Level.INSTANCE

    @_schema(
        "medical_dicomweb_search_instances",
        "Search for instances (QIDO-RS)",
        _STUDY_KEYS + _SERIES_KEYS + _INSTANCE_KEYS,
    )
    def get(self, request: Request) -> HttpResponse:
        return self.search(request)


class StudyInstanceSearchApi(_SearchApi):
    """Search for the instances of one study (`GET /studies/{study}/instances`)."""

    level = Level.INSTANCE

    @_schema(
        "medical_dicomweb_search_study_instances",
        "Search for a study's instances (QIDO-RS)",
        _SERIES_KEYS + _INSTANCE_KEYS,
    )
    def get(self, request: Request, study_uid: str) -> HttpResponse:
        return self.search(request, study_uid=study_uid)


class SeriesInstanceSearchApi(_SearchApi):
    """Search for the instances of one series (`GET /studies/{study}/series/{series}/instances`)."""

    level = Level.INSTANCE

    @_schema("medical_dicomweb_search_series_instances", "Search for a series' instances (QIDO-RS)", _INSTANCE_KEYS)
    def get(self, request: Request, study_uid: str, series_uid: str) -> HttpResponse:
        return self.search(request, study_uid=study_uid, series_uid=series_uid)
