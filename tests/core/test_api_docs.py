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
