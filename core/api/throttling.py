from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from core.tenancy.models import ApiKey

if TYPE_CHECKING:
    from rest_framework.request import Request


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Rate limit per API key (session users are limited per user)."""

    scope = "api_key"

    def get_rate(self) -> str | None:
        # DRF reads the rates once, at import (`THROTTLE_RATES`); read them per request instead
        # so that `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]` overrides (tests, settings reloads) apply.
        rates: dict[str, Any] = api_settings.DEFAULT_THROTTLE_RATES
        if self.scope not in rates:
            raise ImproperlyConfigured(f"No default throttle rate set for {self.scope!r} scope.")
        rate: str | None = rates[self.scope]
        return rate

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.prefix}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
