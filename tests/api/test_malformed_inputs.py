"""No malformed request is ever a 5xx, on any operation of the partner API.

The routes come from the URL resolver (tests/core/api_routes.py) and the query parameters and
body fields of each from the generated OpenAPI schema, so an endpoint added later is covered
without editing this file (and one missing from the schema fails here). As an org admin with
every scope, against an organization with a trained credit model, a decision and a camera, each
route and method gets:

- path parameters: the seeded ids and names, and malformed ones (zero, negative, huge, unicode,
  very long, NUL);
- for every documented query parameter: a string, a huge, a negative, an empty, a unicode and a
  NUL value, and the parameter repeated (an array);
- for every write method: invalid JSON, JSON of the wrong type, each body field of the wrong type
  or huge, a wrong content type, an empty multipart body and text where a file is expected.

Every answer must be below 500 and, for a 4xx, in the API error shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from tests.api.conftest import SeededOrg
from tests.core.api_routes import ApiRoute, api_routes

pytestmark = pytest.mark.django_db

HUGE_INT = "9" * 30
BAD_PATH_VALUES = ("0", "-1", HUGE_INT, "ü", "x" * 300, "%00", "..%2F..")
BAD_QUERY_VALUES = ("abc", HUGE_INT, "-1", "", "ü\u2603", "a\x00b", "1e400", "2026-13-45T99:99:99")
BAD_FIELD_VALUES: tuple[Any, ...] = ("abc", 10**30, -(10**30), None, [], {"nested": [1]}, "ü" * 5000, True, 1.5e308)
BAD_JSON_BODIES = ('{"unterminated": ', "[]", '"text"', "123", "null", "{}", '{"a": NaN}')


@dataclass(frozen=True)
class Request:
    """One malformed request, described well enough to reproduce it."""

    method: str
    path: str
    what: str
    kwargs: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path} ({self.what})"


def operations_by_route() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The schema's operations keyed by URL pattern in the resolver's `<name>` notation, and the schema."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {path.replace("{", "<").replace("}", ">").lstrip("/"): ops for path, ops in schema["paths"].items()}, schema


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def body_fields(schema: dict[str, Any], operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    content = operation.get("requestBody", {}).get("content", {})
    for media in ("application/json", "multipart/form-data"):
        if media in content:
            return dict(_resolve(schema, content[media]["schema"]).get("properties", {}))
    return {}


def route_path(route: ApiRoute, values: dict[str, str]) -> str:
    path = "/" + route.pattern
    for name in [part[1:-1] for part in route.pattern.split("/") if part.startswith("<")]:
        path = path.replace(f"<{name}>", values.get(name, "1"))
    return path


def malformed_requests(
    route: ApiRoute, method: str, seeded: SeededOrg, schema: dict, operation: dict
) -> Iterator[Request]:
    seeded_values = {name: str(value) for name, value in seeded.values_for("/" + route.pattern).items()}
    path = route_path(route, seeded_values)
    names = [part[1:-1] for part in route.pattern.split("/") if part.startswith("<")]
    for name in names:
        for value in BAD_PATH_VALUES:
            yield Request(method, route_path(route, {**seeded_values, name: value}), f"path {name}={value[:20]!r}", {})
    query = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
    for name in query:
        for value in BAD_QUERY_VALUES:
            yield Request(method, path, f"query {name}={value[:20]!r}", {"data": {name: value}})
        yield Request(method, path, f"query {name} repeated", {"QUERY_STRING": f"{name}=1&{name}=abc&{name}[]=2"})
    if method not in ("post", "put", "patch"):
        return
    for body in BAD_JSON_BODIES:
        yield Request(method, path, f"JSON {body}", {"data": body, "content_type": "application/json"})
    fields = body_fields(schema, operation)
    for name in fields:
        for value in BAD_FIELD_VALUES:
            yield Request(method, path, f"JSON {name}={str(value)[:20]}", {"data": {name: value}, "format": "json"})
            if value is not None and not isinstance(value, (list, dict)):  # as a form field (text for a file)
                yield Request(method, path, f"multipart {name}={str(value)[:20]}", {"data": {name: str(value)}})
    yield Request(method, path, "text/plain body", {"data": "amount=3", "content_type": "text/plain"})
    yield Request(method, path, "XML body", {"data": "<a>1</a>", "content_type": "application/xml"})
    yield Request(method, path, "empty multipart", {"data": {}, "format": "multipart"})
    yield Request(
        method,
        path,
        "broken multipart",
        {"data": "--nope\r\nContent-Disposition: form-data", "content_type": "multipart/form-data; boundary=nope"},
    )
    yield Request(
        method, path, "JSON as octet-stream", {"data": json.dumps({"a": 1}), "content_type": "application/octet-stream"}
    )


def send(client: APIClient, request: Request) -> Any:
    kwargs = dict(request.kwargs)
    extra = {"QUERY_STRING": kwargs.pop("QUERY_STRING")} if "QUERY_STRING" in kwargs else {}
    if request.method == "get" or request.method == "delete":
        return getattr(client, request.method)(request.path, kwargs.get("data"), **extra)
    return getattr(client, request.method)(request.path, **kwargs, **extra)


def test_every_route_is_in_the_schema() -> None:
    # given
    operations, _ = operations_by_route()
    # when
    missing = [
        f"{m.upper()} /{r.pattern}" for r in api_routes() for m in r.methods if m not in operations.get(r.pattern, {})
    ]
    # then
    assert not missing


def test_no_malformed_request_is_a_server_error(seeded_org: SeededOrg) -> None:
    # given: an org admin with every scope, and the routes with their documented parameters
    client = APIClient(raise_request_exception=False)  # a crash is a 500 to report, not an exception
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {seeded_org.raw_key}")
    operations, schema = operations_by_route()
    routes = [(route, method) for route in api_routes() for method in route.methods]
    routes.sort(key=lambda pair: pair[1] == "delete")  # deletes last: they remove seeded objects
    failures: list[str] = []
    sent = 0
    # when
    for route, method in routes:
        operation = operations.get(route.pattern, {}).get(method, {})
        for request in malformed_requests(route, method, seeded_org, schema, operation):
            sent += 1
            response = send(client, request)
            if response.status_code >= 500:
                failures.append(f"{request}: {response.status_code} {response.content[:200]!r}")
            elif response.status_code >= 400 and set(response.json()) != {"error"}:
                failures.append(f"{request}: {response.status_code} not in the error shape")
    # then
    assert sent > 500
    assert not failures, "\n".join(failures)
