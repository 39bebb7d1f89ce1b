"""API-key authentication for the partner API: `Authorization: Bearer tsk_<prefix>_<secret>`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from core.tenancy.models import ApiKey
from core.tenancy.selectors import api_key_from_raw
from core.tenancy.services import api_key_touch


class ApiKeyUser:
    """The `request.user` of an API-key request: authenticated, but not a Django user."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.username = f"api-key:{api_key.prefix}"

    def get_username(self) -> str:
        return self.username

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticate a request by API key; no header means "try the next authenticator"."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0] != self.keyword:
            raise exceptions.AuthenticationFailed("Malformed Authorization header; expected 'Bearer <api key>'.")
        api_key = api_key_from_raw(raw_key=parts[1])
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key has been revoked.")
        if not api_key.is_active:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        api_key_touch(api_key=api_key)
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents API-key auth in the OpenAPI schema as HTTP bearer."""

    target_class = "core.tenancy.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "Tessera API key: `Bearer tsk_<prefix>_<secret>`"}
