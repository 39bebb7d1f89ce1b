from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rest_framework.throttling import SimpleRateThrottle

from core.tenancy.models import ApiKey

if TYPE_CHECKING:
    from rest_framework.request import Request


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Rate limit per API key (session users are limited per user)."""

    scope = "api_key"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.prefix}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
