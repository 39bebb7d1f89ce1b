"""Request-level middleware: request ids for audit/logs, the API body size limit (413), and the
JSON error shape for the error pages Django renders by itself under /api/."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import filesizeformat

from core.api.exceptions import json_error_response
from core.audit.context import client_ip_var, request_id_var

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    """Gives every request an id (honouring a sane incoming X-Request-ID) and records the client IP."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]  # our attribute on the request; HttpRequest's stubs cannot know it
        id_token = request_id_var.set(request_id)
        ip_token = client_ip_var.set(request.META.get("REMOTE_ADDR") or None)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(id_token)
            client_ip_var.reset(ip_token)
        response["X-Request-ID"] = request_id
        return response


class ApiBodySizeLimitMiddleware:
    """Refuse API bodies above `API_MAX_UPLOAD_BYTES` before anything reads them.

    A view that streams its body to storage itself (DICOMweb STOW-RS: a study can be several
    gigabytes, sent chunked with no Content-Length) says so with `streams_request_body = True`
    and is not limited here.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., HttpResponse], view_args: object, view_kwargs: object
    ) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None
        view_class = getattr(view_func, "cls", None) or getattr(view_func, "view_class", None)
        if getattr(view_class, "streams_request_body", False):
            return None
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.API_MAX_UPLOAD_BYTES:
            limit = filesizeformat(settings.API_MAX_UPLOAD_BYTES).replace("\xa0", " ")
            return json_error_response(413, "too_large", f"Request body is larger than the {limit} limit.")
        return None


class ApiHtmlErrorMiddleware:
    """Under /api/, an HTML error page Django rendered by itself (the DEBUG 404 page for an
    unknown URL, the DEBUG 500 page) is replaced by the JSON error shape, so API clients see
    one shape in every environment. Responses from API views are JSON already and pass as is."""

    _CODES = {404: ("not_found", "Not found."), 500: ("server_error", "Internal error")}

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        is_html = response.get("Content-Type", "").startswith("text/html")
        if request.path.startswith("/api/") and is_html and response.status_code in self._CODES:
            code, message = self._CODES[response.status_code]
            if response.status_code == 500:
                message = f"{message} (request id {getattr(request, 'request_id', '')})."
            return json_error_response(response.status_code, code, message)
        return response
