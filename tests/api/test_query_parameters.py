"""Query parameters are validated by serializers: a bad value is a 400 naming the parameter."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import assert_error

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/api/v1/finance/models/credit-risk/monitoring/", {"version": "x"}, "version"),
        ("/api/v1/finance/models/credit-risk/monitoring/", {"window_days": "0"}, "window_days"),
        ("/api/v1/finance/decisions/", {"batch_id": "9" * 30}, "batch_id"),
        ("/api/v1/traffic/videos/", {"camera": "abc"}, "camera"),
        ("/api/v1/traffic/detections/", {"camera": "9" * 30}, "camera"),
        ("/api/v1/traffic/detections/", {"class": "x" * 101}, "class"),
    ],
)
def test_a_malformed_query_parameter_is_a_400_naming_it(api: Any, path: str, query: dict[str, str], field: str) -> None:
    # when
    response = api.get(path, query)
    # then
    error = assert_error(response, 400, "invalid")
    assert list(error["fields"]) == [field]


def test_monitoring_post_validates_window_days_in_query_and_body(api: Any) -> None:
    # when
    in_query = api.post("/api/v1/finance/models/credit-risk/monitoring/?window_days=abc")
    in_body = api.post("/api/v1/finance/models/credit-risk/monitoring/", {"window_days": 0}, format="json")
    # then
    assert list(assert_error(in_query, 400, "invalid")["fields"]) == ["window_days"]
    assert list(assert_error(in_body, 400, "invalid")["fields"]) == ["window_days"]


@pytest.mark.parametrize("query", [{"page": "abc"}, {"page": "0"}, {"page_size": "-1"}, {"page_size": "x"}])
def test_a_malformed_page_or_page_size_is_a_400(api: Any, query: dict[str, str]) -> None:
    # when
    response = api.get("/api/v1/jobs/", query)
    # then
    error = assert_error(response, 400, "invalid")
    assert list(error["fields"]) == list(query)


def test_a_page_past_the_end_is_a_404_and_a_big_page_size_is_clamped(api: Any) -> None:
    # when
    past_the_end = api.get("/api/v1/jobs/", {"page": "9" * 30})
    clamped = api.get("/api/v1/jobs/", {"page_size": "100000", "page": "last"})
    # then
    assert_error(past_the_end, 404, "not_found")
    assert clamped.status_code == 200
