"""Every API failure answers `{"error": {"code", "message", "fields"}}` with the right status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.conftest import assert_error
from tests.core.probe_urls import BOOM_PATH, PROBE_PATH

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.core.probe_urls")]


def test_valid_json_body_is_accepted(api: APIClient) -> None:
    # when
    response = api.post(PROBE_PATH, {"amount": 3}, format="json")
    # then
    assert response.status_code == 200
    assert response.json() == {"amount": 3}


@pytest.mark.parametrize("path", ["/api/v1/no-such-thing/", "/api/nowhere", "/api/v1/jobs/not-an-int/"])
def test_unknown_api_url_is_json_404(api: APIClient, path: str) -> None:
    # when
    response = api.get(path)
    # then
    error = assert_error(response, 404, "not_found")
    assert response["Content-Type"] == "application/json"
    assert error["fields"] == {}


def test_unknown_api_url_is_json_404_in_debug_too(client: Any, settings: Any) -> None:
    # given: DEBUG, as in `make run`, where Django renders its HTML "page not found"
    settings.DEBUG = True
    # when
    response = client.get("/api/v1/no-such-thing/")
    # then
    assert_error(response, 404, "not_found")
    # and the portal keeps Django's HTML page
    assert client.get("/no-such-page/")["Content-Type"].startswith("text/html")


def test_unknown_api_url_is_404_even_without_a_key(client: Any) -> None:
    # when / then: routing comes first, nothing to authenticate against
    assert_error(client.get("/api/v1/no-such-thing/"), 404, "not_found")


def test_wrong_method_is_405(api: APIClient) -> None:
    # when
    response = api.delete("/api/v1/jobs/")
    # then
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


def test_xml_body_to_json_endpoint_is_415(api: APIClient) -> None:
    # when
    response = api.post(PROBE_PATH, "<amount>3</amount>", content_type="application/xml")
    # then
    error = assert_error(response, 415, "unsupported_media_type")
    assert "application/xml" in error["message"]


def test_malformed_json_is_400_parse_error(api: APIClient) -> None:
    # when
    response = api.post(PROBE_PATH, '{"amount": 3', content_type="application/json")
    # then
    assert_error(response, 400, "parse_error")


def test_invalid_field_is_400_with_field_messages(api: APIClient) -> None:
    # when
    response = api.post(PROBE_PATH, {"amount": -1}, format="json")
    # then
    error = assert_error(response, 400, "invalid")
    assert list(error["fields"]) == ["amount"]
    assert error["fields"]["amount"]


def test_body_over_the_limit_is_413_before_authentication(client: Any, settings: Any) -> None:
    # given
    settings.API_MAX_UPLOAD_BYTES = 1024
    body = '{"amount": 1, "padding": "' + "x" * 2048 + '"}'
    # when: no key at all, and the body is never read
    response = client.post(PROBE_PATH, body, content_type="application/json")
    # then
    error = assert_error(response, 413, "too_large")
    assert "1.0 KB" in error["message"]


def test_body_under_the_limit_passes(api: APIClient, settings: Any) -> None:
    # given
    settings.API_MAX_UPLOAD_BYTES = 1024
    # when
    response = api.post(PROBE_PATH, {"amount": 1}, format="json")
    # then
    assert response.status_code == 200


def test_throttling_is_per_api_key_and_answers_429(
    settings: Any, org: Any, api_client_for: Callable[..., APIClient]
) -> None:
    # given: two requests a minute per key
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "2/min"}}
    cache.clear()
    first, second = api_client_for(org), api_client_for(org)
    # when
    statuses = [first.get("/api/v1/jobs/").status_code for _ in range(2)]
    throttled = first.get("/api/v1/jobs/")
    # then
    assert statuses == [200, 200]
    error = assert_error(throttled, 429, "throttled")
    assert int(throttled["Retry-After"]) > 0
    assert "throttled" in error["message"].lower()
    assert second.get("/api/v1/jobs/").status_code == 200  # another key has its own budget
    cache.clear()


def test_unexpected_exception_is_json_500_with_request_id(api: APIClient) -> None:
    # given
    api.raise_request_exception = False
    # when
    response = api.get(BOOM_PATH, HTTP_X_REQUEST_ID="req-123")
    # then
    error = assert_error(response, 500, "server_error")
    assert "req-123" in error["message"]
    assert response["X-Request-ID"] == "req-123"


@pytest.mark.parametrize(
    ("path", "body"), [(PROBE_PATH, {"amount": -1}), (PROBE_PATH, '{"amount": 3'), ("/api/v1/jobs/999/", None)]
)
def test_error_bodies_match_the_documented_error_component(api: APIClient, client: Any, path: str, body: Any) -> None:
    # given: the Error component every operation's 4xx responses refer to
    import jsonschema

    error_schema = client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]["Error"]
    # when: a validation error, a parse error, a not-found
    if body is None:
        response = api.get(path)
    elif isinstance(body, str):
        response = api.post(path, body, content_type="application/json")
    else:
        response = api.post(path, body, format="json")
    # then
    assert 400 <= response.status_code < 500
    jsonschema.validate(response.json(), error_schema)
