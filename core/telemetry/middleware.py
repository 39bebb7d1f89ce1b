"""Records every HTTP request: resolved route, method, status and latency (no I/O on the request path)."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core.telemetry.recording import http_request_record

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "<unmatched>"
STATIC_ROUTE = "<static>"


def route_of(request: HttpRequest) -> str:
    """The URL pattern that served `request` (`api/v1/jobs/<int:pk>/`), never the raw path.

    Raw paths carry ids and names, which would make every request its own series (and leak
    model names); an unresolved path (404) and static files get one fixed label each.
    """
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route:
        return str(match.route)[:300]
    if request.path.startswith(str(settings.STATIC_URL)):
        return STATIC_ROUTE
    return UNMATCHED_ROUTE


class HttpTelemetryMiddleware:
    """Outermost middleware: times the whole request, then counts it under its route."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            return response
        finally:
            method = request.method if request.method in _METHODS else "OTHER"
            http_request_record(
                route=route_of(request), method=method, status=status, seconds=time.perf_counter() - started
            )
