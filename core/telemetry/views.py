"""`/metrics`: the Prometheus text format of every process on this host (see `core.telemetry.prometheus`)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from core.telemetry.access import metrics_refusal
from core.telemetry.prometheus import exposition


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
