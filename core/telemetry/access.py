"""Who may scrape `/metrics`: a bearer token (`METRICS_TOKEN`) and/or a network allowlist.

- `METRICS_ALLOWED_NETWORKS` set: the client address (`REMOTE_ADDR`; behind a proxy, the
  proxy's) must be in one of the networks, else 403.
- `METRICS_TOKEN` set: `Authorization: Bearer <token>` must match, else 401 (a wrong token is
  refused even from an allowed network).
- Neither set: the endpoint is closed (403): the metrics name organizations and models, so they
  are never served to whoever asks.

A refusal carries the error shape only, never a metric.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
from collections.abc import Sequence

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, JsonResponse

from core.api.exceptions import json_error_response

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.cache
def parse_networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    """`METRICS_ALLOWED_NETWORKS` entries as networks (a bare address is a /32 or /128)."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {value!r} is not an IP network ({exc}).") from exc
    return tuple(networks)


def _allowed_networks() -> tuple[Network, ...]:
    values: Sequence[str] = settings.METRICS_ALLOWED_NETWORKS
    return parse_networks(tuple(values))


def _address_allowed(request: HttpRequest, networks: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR") or "")
    except ValueError:
        return False
    return any(address in network for network in networks)


def metrics_refusal(request: HttpRequest) -> JsonResponse | None:
    """None when the request may read the metrics, else the 401/403 response to send."""
    token: str = settings.METRICS_TOKEN
    networks = _allowed_networks()
    if not token and not networks:
        return json_error_response(403, "metrics_disabled", "Set METRICS_TOKEN or METRICS_ALLOWED_NETWORKS.")
    if networks and not _address_allowed(request, networks):
        return json_error_response(403, "permission_denied", "This address may not read the metrics.")
    if token:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.encode()):
            response = json_error_response(401, "not_authenticated", "A valid metrics bearer token is required.")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return None
