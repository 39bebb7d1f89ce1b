"""The analysis and routing-rule endpoints answer what the OpenAPI schema documents, on real
objects: tests/api's schemathesis run reaches them with generated ids (404s and 400s); here a
finished analysis, its findings and a rule exist, so their 200 bodies are validated too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.medical.conftest import stow_body, stow_content_type
from tests.medical.diagnosis_fixtures import MODEL_NAME, classifier_version, mednist_files, requires_mednist

pytestmark = [pytest.mark.django_db, requires_mednist]

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def wsgi_keeps_test_connection() -> Iterator[None]:
    """Requests sent straight to the WSGI handler keep the test's database connection (as
    Django's test client does)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_the_analysis_and_rule_responses_match_the_schema(
    api: Any, org: Any, make_api_key: Any, django_capture_on_commit_callbacks: Any, wsgi_keeps_test_connection: None
) -> None:
    # given a finished analysis with findings, and a rule
    classifier_version(org)
    files = mednist_files("CXR", count=2)
    assert api.generic("POST", "/api/v1/medical/dicomweb/studies", stow_body(files), content_type=stow_content_type())
    study_uid = api.get("/api/v1/medical/studies/").json()["results"][0]["study_instance_uid"]
    with django_capture_on_commit_callbacks(execute=True):
        created = api.generic(
            "POST",
            f"/api/v1/medical/studies/{study_uid}/analyses/",
            json.dumps({"model": MODEL_NAME}),
            content_type="application/json",
        )
    assert created.status_code == 202, created.content
    analysis_id = created.json()["analysis"]["id"]
    detail = api.get(f"/api/v1/medical/studies/{study_uid}/analyses/{analysis_id}/").json()
    finding_id = detail["series"][0]["id"]
    rule = api.generic(
        "POST",
        "/api/v1/medical/routing-rules/",
        json.dumps({"name": "chest", "model": MODEL_NAME}),
        content_type="application/json",
    ).json()
    values = {"study_uid": study_uid, "analysis_id": analysis_id, "finding_id": finding_id, "rule_id": rule["id"]}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    headers = {"Authorization": f"Bearer {make_api_key(org)}"}
    paths = [
        "/api/v1/medical/studies/{study_uid}/analyses/",
        "/api/v1/medical/studies/{study_uid}/analyses/{analysis_id}/",
        "/api/v1/medical/studies/{study_uid}/analyses/{analysis_id}/findings/{finding_id}/saliency.png",
        "/api/v1/medical/routing-rules/",
        "/api/v1/medical/routing-rules/{rule_id}/",
    ]
    checked = 0
    # when each GET is called with the real ids, then its answer conforms
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid operation (Err) fails the test here
        if operation.method.upper() != "GET" or operation.path not in paths:
            continue
        parameters = {parameter.name: values[parameter.name] for parameter in operation.path_parameters}
        case = operation.Case(path_parameters=parameters)
        response = case.call(headers=headers)
        assert response.status_code == 200, (operation.path, response.content[:500])
        case.validate_response(response, checks=CHECKS, headers=headers)
        checked += 1
    assert checked == len(paths)
