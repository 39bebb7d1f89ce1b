"""What every DICOMweb (PS3.18) endpoint shares: authentication and scope, Accept negotiation,
the `application/dicom+json` answer, absolute URLs behind a trusted proxy, and reading the
request body as a stream (chunked bodies included).

DICOMweb speaks its own media types, so these views bypass DRF's renderer negotiation (which
would answer 406 to `Accept: application/dicom+json` before the view runs) and negotiate
themselves with `negotiate()`; errors still use Tessera's JSON error shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from django.http import HttpRequest, HttpResponse
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request

from apps.medical.choices import DOMAIN
from apps.medical.multipart import MediaType
from core.api.views import OrgAPIView
from core.errors import LengthRequired

DICOM_JSON = "application/dicom+json"
SCHEMA_TAG = "medical: DICOMweb"
API_ROOT = "/api/v1/medical/dicomweb"


class _AnyAccept(BaseContentNegotiation):
    """Hand DRF's own renderer (used for error bodies only) whatever the client accepts."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class DicomWebView(OrgAPIView):
    """Base of the DICOMweb views: the `medical` scope (API key) or a clinician / org admin session."""

    required_scope = DOMAIN
    content_negotiation_class = _AnyAccept
    renderer_classes = [JSONRenderer]
    parser_classes: list[Any] = []


@dataclass(frozen=True)
class Accepted:
    """One entry of an Accept header, with its quality."""

    media_type: MediaType
    quality: float

    def matches(self, value: str) -> bool:
        wanted = self.media_type.value
        if wanted in {"*/*", ""}:
            return True
        if wanted.endswith("/*"):
            return value.split("/")[0] == wanted.split("/")[0]
        return wanted == value


def accepted(request: HttpRequest) -> list[Accepted]:
    """The Accept header's entries, best first (no header means `*/*`)."""
    header = request.headers.get("Accept", "") or "*/*"
    entries: list[Accepted] = []
    for raw in _split_accept(header):
        media_type = MediaType.parse(raw)
        if not media_type.value and raw.strip().startswith("*"):
            media_type = MediaType(value="*/*", params=media_type.params)
        try:
            quality = float(media_type.params.get("q", "1"))
        except ValueError:
            quality = 1.0
        if quality > 0:
            entries.append(Accepted(media_type=media_type, quality=quality))
    return sorted(entries, key=lambda entry: -entry.quality)


def _split_accept(header: str) -> list[str]:
    """Split on commas outside quotes (a multipart type's `type="application/dicom"` is quoted)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def negotiate(request: HttpRequest, offered: Sequence[str]) -> Accepted | None:
    """The client's best entry that one of `offered` satisfies (None: answer 406).

    Returns the Accept entry itself, so callers can read its parameters (a multipart
    `type=` or `transfer-syntax=`)."""
    entries = accepted(request)
    for entry in entries:
        if any(entry.matches(value) for value in offered):
            return entry
    return None


def dicom_json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(body, separators=(",", ":")), status=status, content_type=DICOM_JSON)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def absolute_url(request: HttpRequest, path: str) -> str:
    """`path` under the DICOMweb root as an absolute URL for this request's host (X-Forwarded-Host
    and -Proto are honoured when TRUSTED_PROXY is set; see core.settings)."""
    return request.build_absolute_uri(f"{API_ROOT}/{path.lstrip('/')}")


def request_body_stream(request: HttpRequest) -> IO[bytes]:
    """The request body as a stream, without loading it.

    With a Content-Length, Django's own bounded stream. Without one (`Transfer-Encoding:
    chunked`), the WSGI input itself: gunicorn de-chunks it and marks it `wsgi.input_terminated`
    (Django 5.2 would read such a body as empty; Django ticket #35838).
    """
    if request.META.get("CONTENT_LENGTH"):
        return request  # type: ignore[return-value]  # HttpRequest is a readable stream (read/readline)
    if not request.META.get("wsgi.input_terminated"):
        raise LengthRequired(
            "Send a Content-Length, or a chunked body to a server that de-chunks it (gunicorn, as `make run` does)."
        )
    stream: IO[bytes] = request.META["wsgi.input"]
    return stream
