"""`/api/schema/` is valid OpenAPI 3; `/api/docs/` works offline (no CDN, static files served)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.views import serve
from django.test import RequestFactory
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db


class AssetUrls(HTMLParser):
    """Collects `<script src>` and `<link href>` URLs of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def test_schema_is_valid_openapi_3(client: Any) -> None:
    # when: no key needed to read the schema
    response = client.get("/api/schema/", {"format": "json"})
    # then
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    validate(schema)
    assert "/api/v1/jobs/{job_id}/" in schema["paths"]


def test_schema_documents_the_api_key_scheme(client: Any) -> None:
    # when
    schema = client.get("/api/schema/", {"format": "json"}).json()
    # then
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    job_get = schema["paths"]["/api/v1/jobs/{job_id}/"]["get"]
    assert {"ApiKey": []} in job_get["security"]


def test_docs_page_loads_only_local_assets_and_they_are_served(client: Any) -> None:
    # when
    response = client.get("/api/docs/")
    # then
    assert response.status_code == 200
    html = response.content.decode()
    parser = AssetUrls()
    parser.feed(html)
    assert parser.urls, "the page should load Swagger UI's script and stylesheet"
    for url in parser.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"external asset {url}"
        assert parts.path.startswith(settings.STATIC_URL), url
        relative = parts.path.removeprefix(settings.STATIC_URL)
        assert finders.find(relative), f"{relative} is not in any static folder"
        served = serve(RequestFactory().get(parts.path), relative, insecure=True)
        assert served.status_code == 200, url
    assert "http://" not in html and "https://" not in html  # no CDN reference anywhere in the page


@pytest.mark.urls("tests.core.probe_urls")
def test_nested_input_serializers_get_unique_component_names(client: Any) -> None:
    # given: a view with the nested `InputSerializer` convention (tests.core.probe_urls)
    # when
    schemas = client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]
    # then: named after the enclosing view, not the bare "InputRequest" every view would share
    assert "ProbeEchoInputRequest" in schemas
    assert "InputRequest" not in schemas


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in schema["paths"].items() for method, op in ops.items()]


def test_every_operation_documents_its_errors_in_the_error_shape(client: Any) -> None:
    # when
    schema = client.get("/api/schema/", {"format": "json"}).json()
    # then: one Error component, {"error": {code, message, fields}}
    error = schema["components"]["schemas"]["Error"]
    assert set(error["properties"]["error"]["required"]) == {"code", "message", "fields"}
    for method, path, operation in _operations(schema):
        responses = operation["responses"]
        label = f"{method.upper()} {path}"
        assert {"401", "403", "429"} <= set(responses), label  # every operation is authenticated and throttled
        if any(p["in"] == "path" for p in operation.get("parameters", [])):
            assert {"400", "404"} <= set(responses), label
        if "requestBody" in operation:
            assert {"400", "413", "415"} <= set(responses), label
        for status, response in responses.items():
            if status.startswith("4"):
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_declared_conflicts_are_documented(client: Any) -> None:
    # when
    paths = client.get("/api/schema/", {"format": "json"}).json()["paths"]
    # then: what only the view knows is declared by it
    assert "409" in paths["/api/v1/traffic/cameras/"]["post"]["responses"]
    assert "409" in paths["/api/v1/ml/models/{name}/versions/{number}/artifact/"]["get"]["responses"]
    assert "404" in paths["/api/v1/finance/scores/"]["post"]["responses"]
    assert "404" not in paths["/api/v1/finance/policy/"]["patch"]["responses"]


def test_paginated_lists_are_documented_with_the_envelope(client: Any) -> None:
    # when
    schema = client.get("/api/schema/", {"format": "json"}).json()
    lists = [
        (path, op)
        for method, path, op in _operations(schema)
        if method == "get" and any(p["name"] == "page_size" for p in op.get("parameters", []))
    ]
    # then: every list that paginates answers {"count", "next", "previous", "results"}
    assert {path for path, _ in lists} >= {
        "/api/v1/jobs/",
        "/api/v1/finance/batches/",
        "/api/v1/finance/datasets/",
        "/api/v1/finance/decisions/",
        "/api/v1/finance/models/",
        "/api/v1/ml/models/",
        "/api/v1/traffic/cameras/",
        "/api/v1/traffic/videos/",
    }
    components = schema["components"]["schemas"]
    for path, op in lists:
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        body = components[ref.rsplit("/", 1)[-1]]
        if "oneOf" in body:  # the alias history: a page, or "which version was live at"
            continue
        assert {"count", "next", "previous", "results"} <= set(body["properties"]), path
        assert body["properties"]["results"]["type"] == "array", path
