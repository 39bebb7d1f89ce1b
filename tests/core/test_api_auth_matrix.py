"""Every route under /api/v1/ refuses bad credentials (401) and missing scopes (403).

Routes come from the URL resolver, so a route another app adds later is covered without
touching this file. Past the gate, a key with every scope is never answered a 500, with or without
malformed query parameters (tests/api/test_malformed_inputs.py sends every kind of malformed path
value, query parameter and body to every route).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core.tenancy.choices import Scope
from tests.conftest import assert_error
from tests.core.api_routes import ApiRoute, api_routes

ROUTES = api_routes()
ROUTE_METHODS = [
    pytest.param(route, method, id=f"{method.upper()} /{route.pattern}") for route in ROUTES for method in route.methods
]
SCOPED_ROUTE_METHODS = [
    pytest.param(route, method, id=f"{method.upper()} /{route.pattern}")
    for route in ROUTES
    for method in route.methods
    if route.required_scope
]
BAD_CREDENTIALS = ("missing", "malformed", "unknown", "wrong_secret", "revoked", "expired")


def call(client: APIClient, route: ApiRoute, method: str, authorization: str | None = None, query: str = "") -> Any:
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    path = f"{route.path}?{query}" if query else route.path
    if method in ("post", "put", "patch"):
        return getattr(client, method)(path, {}, format="json", **headers)
    return getattr(client, method)(path, **headers)


@functools.cache
def documented_query_parameters() -> dict[tuple[str, str], list[str]]:
    """(route pattern, method) → the query parameters the OpenAPI schema documents for it."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        (path.replace("{", "<").replace("}", ">").lstrip("/"), method): [
            p["name"] for p in operation.get("parameters", []) if p["in"] == "query"
        ]
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    }


@pytest.fixture
def authorization_for(org: Any, make_api_key: Callable[..., str]) -> Callable[[str], str | None]:
    """The Authorization header value for one kind of bad credential."""
    from core.tenancy.actors import Actor
    from core.tenancy.models import ApiKey
    from core.tenancy.selectors import api_key_from_raw
    from core.tenancy.services import api_key_revoke

    def make(kind: str) -> str | None:
        if kind == "missing":
            return None
        if kind == "malformed":
            return f"Token {make_api_key(org)}"
        if kind == "unknown":
            return "Bearer tsk_0123456789ab_no-such-key"
        raw = make_api_key(org, expires_at=timezone.now() + timedelta(days=1))
        api_key = api_key_from_raw(raw_key=raw)
        assert api_key is not None
        if kind == "wrong_secret":
            return f"Bearer tsk_{api_key.prefix}_not-the-secret"
        if kind == "revoked":
            api_key_revoke(actor=Actor.system(org), api_key=api_key)
        elif kind == "expired":
            ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        return f"Bearer {raw}"

    return make


def test_the_matrix_enumerates_the_platform_routes() -> None:
    # given / when: the routes read from the resolver
    patterns = {route.pattern for route in ROUTES}
    # then
    assert {"api/v1/jobs/", "api/v1/jobs/<job_id>/", "api/v1/jobs/<job_id>/cancel/"} <= patterns
    assert all(route.methods for route in ROUTES)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", BAD_CREDENTIALS)
@pytest.mark.parametrize(("route", "method"), ROUTE_METHODS)
def test_bad_credentials_are_401(
    route: ApiRoute, method: str, kind: str, authorization_for: Callable[[str], str | None]
) -> None:
    # given
    authorization = authorization_for(kind)
    # when
    response = call(APIClient(), route, method, authorization)
    # then
    error = assert_error(response, 401)
    assert error["code"] in {"not_authenticated", "authentication_failed"}
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "method"), SCOPED_ROUTE_METHODS)
def test_key_without_the_required_scope_is_403(
    route: ApiRoute, method: str, org: Any, api_client_for: Callable[..., APIClient]
) -> None:
    # given: a valid key with every scope but the one the view requires
    client = api_client_for(org, scopes=tuple(s for s in Scope.values if s != route.required_scope))
    # when
    response = call(client, route, method)
    # then
    assert_error(response, 403, "permission_denied")


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "method"), ROUTE_METHODS)
def test_key_with_every_scope_gets_past_the_gate_without_a_crash(route: ApiRoute, method: str, api: APIClient) -> None:
    # given: every documented query parameter with a value of the wrong type
    names = documented_query_parameters().get((route.pattern, method), [])
    garbage = "&".join(f"{name}=not-a-%E2%98%83-value&{name}=99999999999999999999" for name in names)
    # when: dummy ids and an empty body, without and with the malformed query parameters
    for query in ("", garbage) if garbage else ("",):
        response = call(api, route, method, query=query)
        # then: whatever the view answers (404, 400, ...), it is not an auth refusal, and never a 500
        assert response.status_code not in (401, 403), (query, response.content[:300])
        assert response.status_code < 500, (query, response.content[:300])
