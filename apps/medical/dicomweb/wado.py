"""WADO-RS (PS3.18 10.4): retrieve instances, metadata, frames, rendered images and bulk data.

Conformance (what the archive serves, and what it answers 406 to):

- Retrieve study / series / instance: `multipart/related; type="application/dicom"`, one part per
  stored instance, each byte-identical to the file received (streamed from storage in 1 MiB chunks),
  with `Content-Type: application/dicom; transfer-syntax=<stored>` per part. Accepted: that type
  without `transfer-syntax`, with `transfer-syntax=*`, or with the stored syntax of every addressed
  instance; `multipart/related` without `type`, `multipart/*`, `*/*` and no Accept. The archive does
  not transcode, so another explicit transfer syntax is a 406; `application/dicom` alone (a single
  part) is not a PS3.18 retrieve media type and is a 406 too. Without `transfer-syntax` the stored
  syntax is sent (as Orthanc and dcm4chee do), not Explicit VR Little Endian.
- Metadata (`/metadata` at every level): `application/dicom+json`, one object per instance from the
  index (no file is opened); every bulk value, in sequences too, is an absolute `BulkDataURI`
  (`.../instances/{sop}/bulk/{tag}`, nested ones `bulk/{seq}.{item}.{tag}` with 1-based items);
  Pixel Data is always a BulkDataURI; `AvailableTransferSyntaxUID` (0008,3002) is the stored syntax.
  OHIF's `dicomweb` data source fetches images through `/frames/N`, not through this URI.
- Frames (`/frames/{list}`, 1-based, comma-separated): each frame uncompressed (decoded when stored
  compressed and a decoder is installed, else 406), as `multipart/related;
  type="application/octet-stream"` with one part per frame (`transfer-syntax=1.2.840.10008.1.2.1`,
  `Content-Location`), or as a single `application/octet-stream` body for one frame. The media type
  of the stored compressed syntax (PS3.18 Table 8.7.3-4: image/jpeg, image/jls, image/jp2, image/jpx,
  image/jphc, image/dicom-rle) gets the stored bitstream of each frame as is, with
  `transfer-syntax=<stored>`; any other compressed media type or syntax is a 406 (no transcoding).
  `*/*` and `transfer-syntax=*` (OHIF's and cornerstone's default) get uncompressed frames. A
  malformed list ("0", "a", "1,,2") is a 400; a frame past NumberOfFrames a 404.
- Rendered and thumbnail (study, series, instance, frame): `image/jpeg` (default) or `image/png`,
  query `window=center,width[,function]`, `viewport=vw,vh[,sx,sy,sw,sh]`, `quality`; a study or series
  renders its first instance with pixel data, an instance its first frame (`/rendered`) or middle
  frame (`/thumbnail`), a frame list exactly one frame (several would need a multi-frame media type:
  406). Other media types (image/gif, video/*, application/pdf) are a 406; an instance without
  renderable pixel data (an RT plan, a syntax without decoder) a 406 with the reason.
- Bulk data (`/bulk/{tag}`): the element's value as `multipart/related;
  type="application/octet-stream"` (one part) or `application/octet-stream`; Pixel Data comes as
  its uncompressed frames, one after the other. A tag the instance does not hold is a 404.

Every successful request writes one PHI access row (retrieve, metadata, frames, rendered,
thumbnail, bulkdata) naming the study, however many instances or frames it carried.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pydicom
from django.core.files.storage import default_storage
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.tag import BaseTag, Tag
from rest_framework.request import Request

from apps.medical import rendering
from apps.medical.choices import AccessKind
from apps.medical.dicom_json import BULK_URI_PREFIX
from apps.medical.dicomweb.base import (
    DICOM_JSON,
    SCHEMA_TAG,
    Accepted,
    DicomWebView,
    absolute_url,
    accepted,
    dicom_json_response,
)
from apps.medical.models import Instance
from apps.medical.multipart import multipart_stream, new_boundary
from apps.medical.selectors import instance_get, instances_of
from apps.medical.services import phi_access_record
from core.errors import Gone, NotAcceptable, NotFound, ValidationFailed

DICOM = "application/dicom"
OCTET_STREAM = "application/octet-stream"
MULTIPART = "multipart/related"
# What /frames and /bulk send: uncompressed little-endian bytes.
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
_UNCOMPRESSED_SYNTAXES = frozenset({EXPLICIT_VR_LITTLE_ENDIAN, "1.2.840.10008.1.2"})
AVAILABLE_TRANSFER_SYNTAX_TAG = "00083002"
PHOTOMETRIC_INTERPRETATION_TAG = "00280004"
# PS3.18 Table 8.7.3-4: the media type of a frame stored in each compressed transfer syntax.
COMPRESSED_FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
_MEDIA_TYPE_ALIASES = {"image/jls": ("image/x-jls",), "image/dicom-rle": ("image/x-dicom-rle",)}
_PIXEL_DATA_TAGS = frozenset({"7FE00010", "7FE00008", "7FE00009"})
READ_CHUNK_BYTES = 1 << 20

logger = logging.getLogger(__name__)
# A frame list is a client-chosen amount of decoding work; a viewer asks for one frame at a time.
MAX_FRAMES_PER_REQUEST = 4096
_FRAME_LIST = re.compile(r"^[1-9][0-9]{0,9}(,[1-9][0-9]{0,9})*$")
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
# Enough of the index rows for a retrieve; the per-level JSON copies stay in the database.
_NOT_FOR_RETRIEVE = ("attributes", "series__attributes", "series__study__attributes")
_NOT_FOR_METADATA = ("series__attributes", "series__study__attributes")


# --- Accept negotiation -------------------------------------------------------------------------


def _accept_entries(request: HttpRequest) -> list[Accepted]:
    """The Accept entries, best first; PS3.18 8.3.3.1: an `accept` query parameter replaces the
    header (browsers cannot set one, and OHIF appends `?accept=` to BulkDataURIs)."""
    values = request.GET.getlist("accept")
    if not values:
        return accepted(request)
    query_accept = HttpRequest()
    query_accept.META = {"HTTP_ACCEPT": ", ".join(values)}
    return accepted(query_accept)


def _multipart_accepted(
    request: HttpRequest, *, part_type: str, transfer_syntaxes: frozenset[str], single_part: bool
) -> bool:
    """Whether the client takes the `part_type` answer as multipart (True) or single part (False).

    `transfer_syntaxes`: what the answer can be labelled with; a requested `transfer-syntax` must be
    `*` or one of them. Raises NotAcceptable when no Accept entry is satisfiable (PS3.18 8.7.3).
    """
    asked = []
    for entry in _accept_entries(request):
        value, params = entry.media_type.value, entry.media_type.params
        asked.append(value or "(empty)")
        syntax = params.get("transfer-syntax", "*").strip()
        syntax_ok = syntax == "*" or syntax in transfer_syntaxes
        if value in {"*/*", "multipart/*"}:
            return True
        # dicomweb-client asks bulk data as type="*/*"
        part_types = {part_type, part_type.split("/")[0] + "/*", "*/*"}
        if value == MULTIPART and params.get("type", part_type).strip().lower() in part_types and syntax_ok:
            return True
        if single_part and value in {part_type, part_type.split("/")[0] + "/*"} and syntax_ok:
            return False
    offered = f'{MULTIPART}; type="{part_type}"' + (f" or {part_type}" if single_part else "")
    syntaxes = ", ".join(sorted(transfer_syntaxes)) or "as stored (several)"
    raise NotAcceptable(
        f"This resource is served as {offered} with transfer syntax {syntaxes} (the archive does not "
        f"transcode); the request accepts {', '.join(asked[:10])}.",
        code="not_acceptable",
    )


def _image_media_type(request: HttpRequest) -> str:
    """image/jpeg or image/png, as the Accept header prefers (image/jpeg for `*/*`, `image/*`, none)."""
    for entry in _accept_entries(request):
        for media_type in rendering.SUPPORTED_MEDIA_TYPES:
            # dicomweb-client writes `image/` for any image type
            if entry.matches(media_type) or entry.media_type.value == "image/":
                return media_type
    raise NotAcceptable("Rendered images are served as image/jpeg or image/png only.", code="not_acceptable")


# --- reading stored instances -------------------------------------------------------------------


def _file_chunks(name: str) -> Iterator[bytes]:
    """The stored file's bytes in chunks, opened only when the response body gets to it.

    A file lost from storage once the multipart body has started cannot change the status any
    more: the error is logged and the body ends without its closing delimiter, which every
    multipart client reports as a broken response rather than silently missing one instance."""
    try:
        handle = default_storage.open(name, "rb")
    except FileNotFoundError:
        logger.error("The archive's file %s is missing from storage (run medical_storage_check)", name)
        raise
    with handle:
        while chunk := handle.read(READ_CHUNK_BYTES):
            yield chunk


def _missing(instance: Instance) -> Gone:
    logger.error(
        "The archive's file %s of instance %s is missing from storage (run medical_storage_check)",
        instance.file,
        instance.sop_instance_uid,
    )
    return Gone(
        f"The stored file of instance {instance.sop_instance_uid} is missing from the archive's storage; "
        "the archive's administrators have been told.",
        code="instance_file_missing",
    )


def _dataset(instance: Instance) -> Dataset:
    try:
        with default_storage.open(instance.file, "rb") as handle:
            return pydicom.dcmread(handle)
    except FileNotFoundError as exc:
        raise _missing(instance) from exc


def _instance_path(instance: Instance) -> str:
    return (
        f"studies/{instance.series.study.study_instance_uid}/series/{instance.series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}"
    )


@dataclass(frozen=True)
class _Target:
    """The UIDs of a WADO-RS path."""

    study_uid: str
    series_uid: str = ""
    sop_uid: str = ""

    def instances(self, request: Request, *, defer: Iterable[str]) -> list[Instance]:
        org = request.actor.organization  # type: ignore[attr-defined]  # set by OrgPermission
        query = instances_of(org=org, study_uid=self.study_uid, series_uid=self.series_uid, sop_uid=self.sop_uid)
        return list(query.defer(*defer))

    def image_instance(self, request: Request) -> Instance:
        """The instance to render: the addressed one, or the first with pixel data of a study/series."""
        org = request.actor.organization  # type: ignore[attr-defined]
        if self.sop_uid:
            return instance_get(org=org, study_uid=self.study_uid, series_uid=self.series_uid, sop_uid=self.sop_uid)
        query: QuerySet[Instance] = instances_of(org=org, study_uid=self.study_uid, series_uid=self.series_uid)
        query = query.defer(*_NOT_FOR_RETRIEVE)
        found = query.filter(rows__isnull=False).first() or query.first()
        if found is None:  # deleted between the two queries
            raise NotFound(f"{self.series_uid or self.study_uid} not found.")
        return found


def _record(request: Request, kind: str, instances: list[Instance], target: _Target) -> None:
    studies = [(i.series.study.study_instance_uid, i.series.study.patient.patient_id) for i in instances]
    phi_access_record(
        actor=request.actor,  # type: ignore[attr-defined]
        kind=kind,
        studies=studies,
        path=request.path,
        series_instance_uid=target.series_uid,
        sop_instance_uid=target.sop_uid,
    )


def _multipart_response(parts: Iterable[tuple[dict[str, str], Iterable[bytes]]], part_type: str) -> HttpResponseBase:
    boundary = new_boundary()
    return StreamingHttpResponse(
        multipart_stream(parts, boundary), content_type=f'{MULTIPART}; type="{part_type}"; boundary="{boundary}"'
    )


# --- retrieve -----------------------------------------------------------------------------------


def _retrieve(request: Request, target: _Target) -> HttpResponseBase:
    instances = target.instances(request, defer=_NOT_FOR_RETRIEVE)
    syntaxes = {instance.transfer_syntax_uid for instance in instances}
    # An explicit transfer syntax is satisfiable only if every instance is stored in it.
    _multipart_accepted(
        request,
        part_type=DICOM,
        transfer_syntaxes=frozenset(syntaxes) if len(syntaxes) == 1 else frozenset(),
        single_part=False,
    )
    if target.sop_uid and not default_storage.exists(instances[0].file):
        raise _missing(instances[0])  # one instance: still time for a status (410), not a broken body
    _record(request, AccessKind.RETRIEVE, instances, target)
    parts = (
        ({"Content-Type": f"{DICOM}; transfer-syntax={instance.transfer_syntax_uid}"}, _file_chunks(instance.file))
        for instance in instances
    )
    return _multipart_response(parts, DICOM)


_ACCEPT_PARAMETER = OpenApiParameter(
    "accept", str, description="PS3.18 8.3.3.1: media types as in an Accept header; replaces the header when given."
)
_MULTIPART_DICOM = OpenApiResponse(
    OpenApiTypes.BINARY,
    description='`multipart/related; type="application/dicom"`: one part per instance, byte-identical to what '
    "was stored.",
)
_NOT_ACCEPTABLE = OpenApiResponse(
    description="`not_acceptable`: the Accept header asks for a media type or transfer syntax the archive cannot "
    "produce (it does not transcode)."
)


def _retrieve_schema(level: str, operation_id: str) -> Any:
    return extend_schema(
        summary=f"Retrieve a {level} (WADO-RS, PS3.18 10.4)",
        description=(
            f'Every instance of the {level} as `multipart/related; type="application/dicom"`, streamed; '
            "`transfer-syntax=*` or the stored syntax; another syntax or `application/dicom` alone is a 406."
        ),
        parameters=[_ACCEPT_PARAMETER],
        responses={(200, MULTIPART): _MULTIPART_DICOM, 406: _NOT_ACCEPTABLE},
        tags=[SCHEMA_TAG],
        operation_id=operation_id,
    )


class StudyRetrieveApi(DicomWebView):
    """Retrieve a study (`GET /studies/{study}`)."""

    @_retrieve_schema("study", "medical_dicomweb_study_retrieve")
    def get(self, request: Request, study_uid: str) -> HttpResponseBase:
        return _retrieve(request, _Target(study_uid))


class SeriesRetrieveApi(DicomWebView):
    """Retrieve a series (`GET /studies/{study}/series/{series}`)."""

    @_retrieve_schema("series", "medical_dicomweb_series_retrieve")
    def get(self, request: Request, study_uid: str, series_uid: str) -> HttpResponseBase:
        return _retrieve(request, _Target(study_uid, series_uid))


class InstanceRetrieveApi(DicomWebView):
    """Retrieve an instance (`GET /studies/{study}/series/{series}/instances/{sop}`)."""

    @_retrieve_schema("instance", "medical_dicomweb_instance_retrieve")
    def get(self, request: Request, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponseBase:
        return _retrieve(request, _Target(study_uid, series_uid, sop_uid))


# --- metadata -----------------------------------------------------------------------------------


def instance_metadata(request: HttpRequest, instance: Instance) -> dict[str, Any]:
    """The instance's stored DICOM JSON for this request: bulk values as absolute BulkDataURIs
    (Pixel Data always one), AvailableTransferSyntaxUID, and the Photometric Interpretation of the
    uncompressed frames `/frames` and `/bulk` send (RGB for a lossy-JPEG YBR instance; see
    `rendering.uncompressed_photometric_interpretation`), so a viewer converts colour once."""
    bulk_root = absolute_url(request, f"{_instance_path(instance)}/bulk/")
    metadata = _absolute_bulk_uris(instance.attributes, bulk_root, ())
    metadata[AVAILABLE_TRANSFER_SYNTAX_TAG] = {"vr": "UI", "Value": [instance.transfer_syntax_uid]}
    photometric = metadata.get(PHOTOMETRIC_INTERPRETATION_TAG)
    if isinstance(photometric, dict):
        values = photometric.get("Value")
        if isinstance(values, list) and values and isinstance(values[0], str):
            served = rendering.uncompressed_photometric_interpretation(values[0], instance.transfer_syntax_uid)
            if served != values[0]:
                metadata[PHOTOMETRIC_INTERPRETATION_TAG] = {**photometric, "Value": [served]}
    return dict(sorted(metadata.items()))


def _absolute_bulk_uris(attributes: dict[str, Any], bulk_root: str, path: tuple[str, ...]) -> dict[str, Any]:
    rewritten: dict[str, Any] = {}
    for tag, element in attributes.items():
        if not isinstance(element, dict):
            rewritten[tag] = element
            continue
        element = dict(element)
        uri = element.get("BulkDataURI")
        is_pixel_data = not path and tag.upper() in _PIXEL_DATA_TAGS
        if (isinstance(uri, str) and uri.startswith(BULK_URI_PREFIX)) or (is_pixel_data and "InlineBinary" in element):
            element.pop("InlineBinary", None)
            element["BulkDataURI"] = bulk_root + ".".join((*path, tag.upper()))
        if element.get("vr") == "SQ" and isinstance(element.get("Value"), list):
            element["Value"] = [
                _absolute_bulk_uris(item, bulk_root, (*path, tag.upper(), str(number)))
                if isinstance(item, dict)
                else item
                for number, item in enumerate(element["Value"], start=1)
            ]
        rewritten[tag] = element
    return rewritten


def _metadata(request: Request, target: _Target) -> HttpResponseBase:
    if not any(
        entry.matches(DICOM_JSON) or entry.media_type.value == "application/json" for entry in accepted(request)
    ):
        raise NotAcceptable("Metadata is served as application/dicom+json.", code="not_acceptable")
    instances = target.instances(request, defer=_NOT_FOR_METADATA)
    _record(request, AccessKind.METADATA, instances, target)
    return dicom_json_response([instance_metadata(request._request, instance) for instance in instances])


def _metadata_schema(level: str, operation_id: str) -> Any:
    return extend_schema(
        summary=f"Metadata of a {level} (WADO-RS, PS3.18 10.4)",
        description=(
            f"DICOM JSON of every instance of the {level}, from the index (no file is read): absolute "
            "`BulkDataURI`s for pixel data and other bulk values, `AvailableTransferSyntaxUID` (0008,3002)."
        ),
        parameters=[_ACCEPT_PARAMETER],
        responses={
            (200, DICOM_JSON): OpenApiResponse(
                {"type": "array", "items": {"type": "object"}}, description="One DICOM JSON object per instance."
            ),
            406: _NOT_ACCEPTABLE,
        },
        tags=[SCHEMA_TAG],
        operation_id=operation_id,
    )


class StudyMetadataApi(DicomWebView):
    """`GET /studies/{study}/metadata`"""

    @_metadata_schema("study", "medical_dicomweb_study_metadata")
    def get(self, request: Request, study_uid: str) -> HttpResponseBase:
        return _metadata(request, _Target(study_uid))


class SeriesMetadataApi(DicomWebView):
    """`GET /studies/{study}/series/{series}/metadata`"""

    @_metadata_schema("series", "medical_dicomweb_series_metadata")
    def get(self, request: Request, study_uid: str, series_uid: str) -> HttpResponseBase:
        return _metadata(request, _Target(study_uid, series_uid))


class InstanceMetadataApi(DicomWebView):
    """`GET /studies/{study}/series/{series}/instances/{sop}/metadata`"""

    @_metadata_schema("instance", "medical_dicomweb_instance_metadata")
    def get(self, request: Request, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponseBase:
        return _metadata(request, _Target(study_uid, series_uid, sop_uid))


# --- frames -------------------------------------------------------------------------------------


def parse_frame_list(text: str) -> list[int]:
    """PS3.18 `{frames}`: comma-separated 1-based frame numbers (ValidationFailed otherwise)."""
    if not _FRAME_LIST.match(text):
        raise ValidationFailed(
            "Frames are a comma-separated list of frame numbers from 1.",
            fields={"frames": [f"Not a frame list: {text[:40]!r}."]},
        )
    numbers = [int(part) for part in text.split(",")]
    if len(numbers) > MAX_FRAMES_PER_REQUEST:
        raise ValidationFailed(
            f"At most {MAX_FRAMES_PER_REQUEST} frames per request.", fields={"frames": ["Too many frames."]}
        )
    return numbers


def _pixels(call: Any, *args: Any) -> Any:
    """Run a rendering call, mapping its errors once: no pixels → 406, no such frame → 404, bad viewport → 400."""
    try:
        return call(*args)
    except rendering.NotRenderable as exc:
        raise NotAcceptable(f"The instance cannot be served as pixels: {exc.reason}.", code="not_renderable") from None
    except rendering.FrameOutOfRange as exc:
        raise NotFound(f"Frame {exc.frame_number} not found: {exc.reason}.", code="frame_not_found") from None
    except ValueError as exc:
        raise ValidationFailed(str(exc), code="invalid") from None


@dataclass(frozen=True)
class _Encoding:
    """How frames or a bulk value go out: the part media type and transfer syntax, in parts or not."""

    media_type: str = OCTET_STREAM
    transfer_syntax: str = EXPLICIT_VR_LITTLE_ENDIAN
    multipart: bool = True

    @property
    def as_stored(self) -> bool:
        return self.media_type != OCTET_STREAM

    @property
    def content_type(self) -> str:
        return f"{self.media_type}; transfer-syntax={self.transfer_syntax}"


def _frames_encoding(request: HttpRequest, stored_syntax: str) -> _Encoding:
    """Uncompressed octet-stream frames, or, where the client asks for the stored compressed media
    type (PS3.18 Table 8.7.3-4: image/jp2 for JPEG 2000, ...), the stored fragments as they are."""
    stored_media = COMPRESSED_FRAME_MEDIA_TYPES.get(stored_syntax)
    for entry in _accept_entries(request):
        value, params = entry.media_type.value, entry.media_type.params
        syntax = params.get("transfer-syntax", "*").strip()
        if value == MULTIPART:
            value, multipart = params.get("type", OCTET_STREAM).strip().lower(), True
        else:
            multipart = value in {"*/*", "multipart/*"}
        if stored_media and value in {stored_media, *_MEDIA_TYPE_ALIASES.get(stored_media, ())}:
            if syntax in {"*", stored_syntax}:
                return _Encoding(stored_media, stored_syntax, multipart)
        elif value in {OCTET_STREAM, "application/*", "*/*", "multipart/*"} and (
            syntax == "*" or syntax in _UNCOMPRESSED_SYNTAXES
        ):
            return _Encoding(multipart=multipart)
    stored_offer = f" or {stored_media} (as stored)" if stored_media else ""
    raise NotAcceptable(
        f"Frames are served uncompressed as {OCTET_STREAM}{stored_offer}; the archive does not transcode.",
        code="not_acceptable",
    )


def _stored_frames(ds: Dataset, numbers: list[int]) -> list[bytes]:
    """The requested frames' compressed bytes exactly as stored (their fragments joined)."""
    count = rendering.frame_count(ds)
    for number in numbers:
        if not 1 <= number <= count:
            raise rendering.FrameOutOfRange(number, count)
    offsets = ds.get("ExtendedOffsetTable"), ds.get("ExtendedOffsetTableLengths")
    extended = (offsets[0], offsets[1]) if offsets[0] is not None and offsets[1] is not None else None
    try:
        return [
            get_frame(ds.PixelData, number - 1, number_of_frames=count, extended_offsets=extended) for number in numbers
        ]
    except (ValueError, KeyError, IndexError) as exc:
        raise rendering.NotRenderable(f"the stored fragments cannot be split into frames: {exc}") from None


def _parts(
    values: list[bytes], locations: list[str], encoding: _Encoding
) -> Iterator[tuple[dict[str, str], Iterable[bytes]]]:
    for value, location in zip(values, locations, strict=True):
        headers = {"Content-Type": encoding.content_type}
        if location:
            headers["Content-Location"] = location
        yield headers, (value,)


def _values_response(values: list[bytes], locations: list[str], encoding: _Encoding) -> HttpResponseBase:
    if encoding.multipart:
        return _multipart_response(_parts(values, locations, encoding), encoding.media_type)
    response = HttpResponse(b"".join(values), content_type=encoding.content_type)
    if len(locations) == 1 and locations[0]:
        response["Content-Location"] = locations[0]
    return response


_OCTET_RESPONSES = {
    (200, MULTIPART): OpenApiResponse(
        OpenApiTypes.BINARY, description='`multipart/related; type="application/octet-stream"`, one part per item.'
    ),
    (200, OCTET_STREAM): OpenApiResponse(OpenApiTypes.BINARY, description="A single part (one frame, or the value)."),
    406: OpenApiResponse(
        description="`not_acceptable`: a compressed media type or transfer syntax was asked for; "
        "`not_renderable`: no pixel data, or no installed decoder for its transfer syntax."
    ),
}


class FramesApi(DicomWebView):
    """`GET .../instances/{sop}/frames/{frames}`: uncompressed frames, or compressed ones as stored."""

    @extend_schema(
        summary="Retrieve frames (WADO-RS, PS3.18 10.4)",
        description=(
            "The listed frames (1-based, comma-separated) uncompressed, one part each, as "
            '`multipart/related; type="application/octet-stream"` (or one frame as `application/octet-stream`); '
            "or, when the stored syntax's media type is asked (image/jp2, image/jls, ...), as stored. "
            "A frame past NumberOfFrames is a 404 `frame_not_found`."
        ),
        parameters=[_ACCEPT_PARAMETER],
        responses={
            **_OCTET_RESPONSES,
            (200, "image/*"): OpenApiResponse(
                OpenApiTypes.BINARY, description="One frame as stored (image/jp2, image/jls, ...), single part."
            ),
            404: OpenApiResponse(description="`not_found` or `frame_not_found`."),
        },
        tags=[SCHEMA_TAG],
        operation_id="medical_dicomweb_frames_retrieve",
    )
    def get(self, request: Request, study_uid: str, series_uid: str, sop_uid: str, frames: str) -> HttpResponseBase:
        numbers = parse_frame_list(frames)
        target = _Target(study_uid, series_uid, sop_uid)
        instance = target.image_instance(request)
        encoding = _frames_encoding(request, instance.transfer_syntax_uid)
        if not encoding.multipart and len(numbers) > 1:
            raise NotAcceptable(
                f'Several frames need multipart/related; type="{encoding.media_type}".', code="not_acceptable"
            )
        ds = _dataset(instance)
        data = _pixels(_stored_frames if encoding.as_stored else rendering.native_frame_bytes, ds, numbers)
        _record(request, AccessKind.FRAMES, [instance], target)
        base = absolute_url(request._request, f"{_instance_path(instance)}/frames/")
        return _values_response(data, [f"{base}{number}" for number in numbers], encoding)


# --- bulk data ----------------------------------------------------------------------------------


def _bulk_element_value(ds: Dataset, tag_path: str) -> bytes:
    """The raw value of `tag_path` (`TAG` or `SEQ.ITEM.TAG...`, ITEM 1-based); NotFound if absent.

    Pixel Data comes as its uncompressed frames, one after the other."""
    steps = tag_path.split(".")
    if len(steps) % 2 == 0 or not all(_TAG.match(step) for step in steps[::2]):
        raise NotFound(f"The instance holds no element {tag_path[:60]!r}.")
    current = ds
    for depth in range(0, len(steps) - 1, 2):
        sequence = current.get(Tag(steps[depth]))
        item_text = steps[depth + 1]
        if sequence is None or sequence.VR != "SQ" or not item_text.isdigit():
            raise NotFound(f"The instance holds no element {tag_path[:60]!r}.")
        number = int(item_text)
        if not 1 <= number <= len(sequence.value):
            raise NotFound(f"The instance holds no element {tag_path[:60]!r}.")
        current = sequence.value[number - 1]
    tag: BaseTag = Tag(steps[-1])
    stored = current.get_item(tag)  # before conversion: the value's bytes as the file holds them
    if stored is None:
        raise NotFound(f"The instance holds no element {tag_path[:60]!r}.")
    stored_value = stored.value
    element = current[tag]
    if element.VR == "SQ" or element.value is None:
        raise NotFound(f"Element {tag_path[:60]!r} holds no bulk value.")
    if current is ds and f"{int(tag):08X}" in _PIXEL_DATA_TAGS:
        return b"".join(_pixels(rendering.native_frame_bytes, ds, range(1, rendering.frame_count(ds) + 1)))
    if isinstance(element.value, bytes):
        return element.value
    if isinstance(stored_value, bytes):
        return stored_value
    return str(element.value).encode()


class BulkDataApi(DicomWebView):
    """`GET .../instances/{sop}/bulk/{tag}`: one element's value (the metadata's BulkDataURIs)."""

    @extend_schema(
        summary="Retrieve bulk data (WADO-RS, PS3.18 10.4)",
        description=(
            "The value of element `tag` (8 hex digits; nested `SEQ.ITEM.TAG` with 1-based items, as the "
            'metadata\'s BulkDataURIs name them) as `multipart/related; type="application/octet-stream"` '
            "(one part) or `application/octet-stream`. Pixel Data comes uncompressed."
        ),
        parameters=[_ACCEPT_PARAMETER],
        responses={**_OCTET_RESPONSES, 404: OpenApiResponse(description="`not_found`: no such instance or element.")},
        tags=[SCHEMA_TAG],
        operation_id="medical_dicomweb_bulkdata_retrieve",
    )
    def get(self, request: Request, study_uid: str, series_uid: str, sop_uid: str, tag: str) -> HttpResponseBase:
        multipart = _multipart_accepted(
            request, part_type=OCTET_STREAM, transfer_syntaxes=_UNCOMPRESSED_SYNTAXES, single_part=True
        )
        target = _Target(study_uid, series_uid, sop_uid)
        instance = target.image_instance(request)
        value = _bulk_element_value(_dataset(instance), tag.upper())
        _record(request, AccessKind.BULKDATA, [instance], target)
        return _values_response([value], [""], _Encoding(multipart=multipart))


# --- rendered and thumbnail ---------------------------------------------------------------------

_RENDER_PARAMETERS = [
    OpenApiParameter("window", str, description="`center,width[,function]` (linear, linear-exact, sigmoid)."),
    OpenApiParameter("viewport", str, description="`vw,vh[,sx,sy,sw,sh]`: fit inside vw x vh, optionally a region."),
    OpenApiParameter("quality", int, description="JPEG quality, 1..100."),
    _ACCEPT_PARAMETER,
]


def _render(request: Request, target: _Target, *, kind: str, frames: str = "") -> HttpResponseBase:
    media_type = _image_media_type(request)
    try:
        params = rendering.parse_render_query(request.query_params, media_type=media_type)
    except ValueError as exc:
        raise ValidationFailed(str(exc), code="invalid") from None
    numbers = parse_frame_list(frames) if frames else []
    if len(numbers) > 1:
        raise NotAcceptable(
            "Several frames render only as a multi-frame media type (image/gif, video), which the archive "
            "does not produce; ask for one frame.",
            code="not_acceptable",
        )
    instance = target.image_instance(request)
    ds = _dataset(instance)
    if kind == AccessKind.THUMBNAIL and not numbers:
        image = _pixels(rendering.render_thumbnail, ds, params)
    else:
        if kind == AccessKind.THUMBNAIL and params.viewport is None:
            params = replace(params, viewport=rendering.Viewport(*rendering.THUMBNAIL_VIEWPORT))
        image = _pixels(rendering.render_frame, ds, numbers[0] if numbers else 1, params)
    _record(request, kind, [instance], target)
    return HttpResponse(image, content_type=media_type)


def _render_schema(what: str, kind: str, operation_id: str) -> Any:
    verb = "Thumbnail of" if kind == AccessKind.THUMBNAIL else "Rendered"
    return extend_schema(
        summary=f"{verb} {what} (WADO-RS, PS3.18 8.3.5 / 10.4)",
        description=(
            "`image/jpeg` (default) or `image/png`; modality LUT and VOI applied (the `window` given, else the "
            "instance's). A study or series shows its first instance with pixel data; a thumbnail is at most "
            "128 x 128 unless a viewport is given."
        ),
        parameters=_RENDER_PARAMETERS,
        responses={
            (200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="The image."),
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The image."),
            404: OpenApiResponse(description="`not_found`, or `frame_not_found`: a frame past NumberOfFrames."),
            406: OpenApiResponse(
                description="`not_acceptable`: a media type other than image/jpeg or image/png, or several frames; "
                "`not_renderable`: no pixel data, or no installed decoder."
            ),
        },
        tags=[SCHEMA_TAG],
        operation_id=operation_id,
    )


class StudyRenderedApi(DicomWebView):
    @_render_schema("study", AccessKind.RENDERED, "medical_dicomweb_study_rendered")
    def get(self, request: Request, study_uid: str) -> HttpResponseBase:
        return _render(request, _Target(study_uid), kind=AccessKind.RENDERED)


class SeriesRenderedApi(DicomWebView):
    @_render_schema("series", AccessKind.RENDERED, "medical_dicomweb_series_rendered")
    def get(self, request: Request, study_uid: str, series_uid: str) -> HttpResponseBase:
        return _render(request, _Target(study_uid, series_uid), kind=AccessKind.RENDERED)


class InstanceRenderedApi(DicomWebView):
    @_render_schema("instance", AccessKind.RENDERED, "medical_dicomweb_instance_rendered")
    def get(self, request: Request, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponseBase:
        return _render(request, _Target(study_uid, series_uid, sop_uid), kind=AccessKind.RENDERED)


class FrameRenderedApi(DicomWebView):
    @_render_schema("frame", AccessKind.RENDERED, "medical_dicomweb_frame_rendered")
    def get(self, request: Request, study_uid: str, series_uid: str, sop_uid: str, frames: str) -> HttpResponseBase:
        return _render(request, _Target(study_uid, series_uid, sop_uid), kind=AccessKind.RENDERED, frames=frames)


class StudyThumbnailApi(DicomWebView):
    @_render_schema("study", AccessKind.THUMBNAIL, "medical_dicomweb_study_thumbnail")
    def get(self, request: Request, study_uid: str) -> HttpResponseBase:
        return _render(request, _Target(study_uid), kind=AccessKind.THUMBNAIL)


class SeriesThumbnailApi(DicomWebView):
    @_render_schema("series", AccessKind.THUMBNAIL, "medical_dicomweb_series_thumbnail")
    def get(self, request: Request, study_uid: str, series_uid: str) -> HttpResponseBase:
        return _render(request, _Target(study_uid, series_uid), kind=AccessKind.THUMBNAIL)


class InstanceThumbnailApi(DicomWebView):
    @_render_schema("instance", AccessKind.THUMBNAIL, "medical_dicomweb_instance_thumbnail")
    def get(self, request: Request, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponseBase:
        return _render(request, _Target(study_uid, series_uid, sop_uid), kind=AccessKind.THUMBNAIL)


class FrameThumbnailApi(DicomWebView):
    @_render_schema("frame", AccessKind.THUMBNAIL, "medical_dicomweb_frame_thumbnail")
    def get(self, request: Request, study_uid: str, series_uid: str, sop_uid: str, frames: str) -> HttpResponseBase:
        return _render(request, _Target(study_uid, series_uid, sop_uid), kind=AccessKind.THUMBNAIL, frames=frames)
