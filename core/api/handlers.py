"""URL-level error views: JSON in the API error shape under /api/, HTML elsewhere."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.defaults import page_not_found, server_error

from core.api.exceptions import json_error_response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_error_response(404, "not_found", "Not found.")
    return page_not_found(request, exception)


def server_failure(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        request_id = getattr(request, "request_id", "")
        return json_error_response(500, "server_error", f"Internal error (request id {request_id}).")
    return server_error(request)
