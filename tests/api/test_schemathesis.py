"""schemathesis against the live `/api/schema/`: every operation, a few generated examples each.

For every operation of the schema (so an endpoint added later is covered without editing this
file), schemathesis generates valid and invalid requests from the schema, sends them through the
Django WSGI app as an org admin with every scope, and checks that the answer is never a 5xx, has a
documented status code and content type, and matches the documented schema. Each GET with path
parameters is also called once with the seeded objects' ids, so detail responses are validated
too, not only their 404s.

Exclusions: none. Jobs are enqueued but not run here (the test database is not transactional, so
`on_commit` never publishes them): a POST that starts training or a video analysis answers 202 with
a queued job without training anything. The job functions have their own tests in their domains.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import SeededOrg

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("wsgi_keeps_test_connection")]

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 5
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)


@schemathesis.serializer("multipart/related")
def _multipart_related(ctx: Any, value: Any) -> bytes:
    """DICOMweb STOW-RS bodies: generated values are sent as raw bytes (the endpoint must refuse them as 4xx)."""
    return value if isinstance(value, bytes) else str(value).encode()


def load_schema() -> Any:
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


def test_every_operation_conforms_to_the_schema(seeded_org_with_detections: SeededOrg) -> None:
    # given: the schema as served, and an org admin's key
    seeded_org = seeded_org_with_detections
    schema = load_schema()
    headers = {"Authorization": f"Bearer {seeded_org.raw_key}"}
    failures: set[str] = set()
    statuses: dict[str, set[int]] = {}

    def check(case: Any) -> None:
        label = f"{case.operation.method.upper()} {case.operation.path}"
        response = case.call(headers=headers)
        statuses.setdefault(label, set()).add(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected: every operation runs
            found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
            failures.update(f"{label}: {str(failure)[:600]}" for failure in found)

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40

    # when: each operation is called with generated requests (and GETs once with seeded ids)
    for operation in operations:

        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=st.one_of(*(operation.as_strategy(generation_mode=mode) for mode in MODES)))
        def call(case: Any) -> None:
            check(case)

        call()
        path_names = [p.name for p in operation.path_parameters]
        values = seeded_org.values_for(operation.path)
        seeded = {name: values[name] for name in path_names if name in values}
        if operation.method.upper() == "GET" and path_names and len(seeded) == len(path_names):
            check(operation.Case(path_parameters=seeded))

    # then
    assert not failures, "\n\n".join(sorted(failures))
    # and the seeded objects were reached: detail responses were validated, not only their 404s
    succeeded = {label for label, codes in statuses.items() if any(200 <= code < 300 for code in codes)}
    print("\n".join(f"{label}: {sorted(codes)}" for label, codes in sorted(statuses.items())))
    assert {
        "GET /api/v1/finance/datasets/{dataset_id}/",
        "GET /api/v1/finance/decisions/{decision_id}/",
        "GET /api/v1/finance/models/{name}/versions/{number}/",
        "GET /api/v1/traffic/cameras/{camera_id}/",
        "GET /api/v1/traffic/detections/{run_id}/",
        "GET /api/v1/traffic/detections/{run_id}/image/",
        "GET /api/v1/traffic/detections/{run_id}/annotated/",
        "GET /api/v1/traffic/models/{name}/class-map/",
        "GET /api/v1/traffic/cameras/{camera_id}/frame/",
        "GET /api/v1/traffic/videos/{video_id}/",
        "GET /api/v1/traffic/videos/{video_id}/crossings/",
        "GET /api/v1/finance/batches/{batch_id}/results/",
        "GET /api/v1/jobs/{job_id}/",
        "GET /api/v1/ml/models/{name}/versions/{number}/artifact/",
    } <= succeeded
