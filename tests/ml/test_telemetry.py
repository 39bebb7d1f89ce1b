"""Serving telemetry of `ml.runtime`: Prometheus counts per organization, model, version and alias,
the per-minute prediction rollups, and the operations page (org admins, own organization only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from core.telemetry.rollups import buffers_clear, telemetry_flush
from core.tenancy.actors import Actor
from ml import runtime
from ml.models import PredictionRollup
from ml.selectors import serving_version_get
from ml.services import model_alias_set
from tests.core.test_metrics import TOKEN, scrape, value

pytestmark = pytest.mark.django_db

PREDICTIONS = "tessera_ml_predictions_total"


@pytest.fixture(autouse=True)
def _metrics_settings(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    buffers_clear()


@pytest.fixture
def served(org: Any, import_version: Callable[..., Any]) -> Any:
    """Model `tiny` of acme with v1 (staging) and v2 (production)."""
    import_version(org, weight=(1.0, 0.0))
    import_version(org, weight=(0.0, 1.0))
    actor = Actor.system(org)
    model_alias_set(actor=actor, name="tiny", alias="staging", version_number=1)
    model_alias_set(actor=actor, name="tiny", alias="production", version_number=2)
    return org


def _predict(org: Any, *, alias: str = "production", number: int | None = None, inputs: Any = None) -> Any:
    version = serving_version_get(org=org, name="tiny", alias=alias, number=number)
    return runtime.predict(version, inputs if inputs is not None else [[1.0, 2.0]])


def test_predictions_are_counted_per_org_model_version_and_alias(served: Any) -> None:
    # given
    before = scrape()
    # when: 3 through production, 2 through staging, 1 pinned by number, 1 batch of 4 inputs
    for _ in range(3):
        _predict(served)
    for _ in range(2):
        _predict(served, alias="staging")
    _predict(served, number=2)
    _predict(served, inputs=[[0.0, 1.0]] * 4)
    after = scrape()

    # then
    def delta(name: str, **labels: str) -> float:
        return value(after, name, organization="acme", model="tiny", **labels) - value(
            before, name, organization="acme", model="tiny", **labels
        )

    assert delta(PREDICTIONS, version="2", alias="production", method="predict", device="cpu") == 4
    assert delta(PREDICTIONS, version="1", alias="staging") == 2
    assert delta(PREDICTIONS, version="2", alias="") == 1
    assert delta("tessera_ml_prediction_errors_total") == 0
    assert delta("tessera_ml_prediction_duration_seconds_count") == 7
    assert delta("tessera_ml_prediction_batch_size_sum", alias="production") == 3 + 4


def test_a_failing_prediction_counts_as_an_error(served: Any) -> None:
    before = scrape()
    with pytest.raises(Exception):  # noqa: B017 - whatever torch raises for a wrong input width
        _predict(served, inputs=[[1.0, 2.0, 3.0]])
    after = scrape()
    labels = {"organization": "acme", "model": "tiny", "version": "2", "alias": "production"}
    errors = "tessera_ml_prediction_errors_total"
    assert value(after, errors, **labels) - value(before, errors, **labels) == 1
    assert value(after, PREDICTIONS, **labels) - value(before, PREDICTIONS, **labels) == 1


def test_predictions_roll_up_per_minute_version_and_alias(served: Any) -> None:
    # when
    for _ in range(5):
        _predict(served)
    _predict(served, alias="staging")
    with pytest.raises(Exception):  # noqa: B017
        _predict(served, inputs=[[1.0]])
    telemetry_flush()
    # then
    rows = PredictionRollup.objects.filter(organization=served)
    totals = {(row.version.number, row.alias): (row.count, row.errors) for row in rows}
    assert totals == {(2, "production"): (6, 1), (1, "staging"): (1, 0)}
    production = rows.get(alias="production")
    assert sum(production.latency_buckets) == 6 and production.items == 6 and production.device == "cpu"


def test_no_telemetry_is_recorded_when_disabled(served: Any) -> None:
    from core.telemetry.recording import telemetry_disabled

    with telemetry_disabled():
        _predict(served)
    telemetry_flush()
    assert not PredictionRollup.objects.exists()


def test_the_operations_page_draws_the_orgs_models_jobs_and_processes(
    served: Any, other_org: Any, import_version: Callable[..., Any], client_for: Callable[..., Any]
) -> None:
    # given: acme served tiny; globex served its own model
    for _ in range(3):
        _predict(served)
    import_version(other_org, name="globex-secret-model")
    model_alias_set(actor=Actor.system(other_org), name="globex-secret-model", alias="production", version_number=1)
    runtime.predict(serving_version_get(org=other_org, name="globex-secret-model"), [[1.0, 1.0]])
    telemetry_flush()  # also records this process's heartbeat when a flusher runs; none runs in tests
    from django.utils import timezone

    from core.telemetry.models import ProcessHeartbeat

    ProcessHeartbeat.objects.create(host="web-1", pid=42, role="web", started_at=timezone.now())
    # when
    response = client_for(served, "org_admin").get("/models/-/operations/?hours=1")
    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-model="tiny"' in html
    assert html.count("<svg") >= 5  # requests, latency, errors per model; queue depth; outcomes; heartbeats
    assert "Requests per minute" in html and "Latency p50 / p99" in html and "Error rate" in html
    assert "v2 (production)" in html and "web web-1:42" in html
    assert "globex-secret-model" not in html and "Globex" not in html


def test_the_operations_page_is_for_org_admins_only(served: Any, client_for: Callable[..., Any]) -> None:
    assert client_for(served, "credit_analyst").get("/models/-/operations/").status_code == 403
    from django.test import Client

    assert Client().get("/models/-/operations/").status_code == 302  # to the login page


def test_the_operations_page_of_an_org_without_traffic_says_so(other_org: Any, client_for: Callable[..., Any]) -> None:
    response = client_for(other_org, "org_admin").get("/models/-/operations/?hours=oops")
    assert response.status_code == 200
    assert 'data-testid="no-predictions"' in response.content.decode()


def test_a_new_request_forgets_the_alias_its_thread_noted_before(served: Any) -> None:
    from django.core.signals import request_started

    from ml.telemetry import alias_of

    version = serving_version_get(org=served, name="tiny", alias="staging")
    assert alias_of(version.pk) == "staging"
    request_started.send(sender=None)
    assert alias_of(version.pk) == ""
