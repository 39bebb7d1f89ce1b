"""`/metrics` (Prometheus text format) and the platform's rollups: HTTP requests and jobs.

Counters are process-wide, so every test compares a scrape before and after what it did.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from core.telemetry.models import HttpRollup, JobRollup, ProcessHeartbeat
from core.telemetry.rollups import (
    LATENCY_BUCKETS_MS,
    RollupBuffer,
    buffers_clear,
    latency_quantile_ms,
    rollup_rows_merge,
    telemetry_flush,
    telemetry_prune,
)

TOKEN = "test-metrics-token-0123456789"

pytestmark = pytest.mark.django_db

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: Client | None = None, token: str = TOKEN) -> Samples:
    """Every sample of one authorised scrape, keyed by (name, sorted labels); parsed with prometheus_client."""
    response = (client or Client()).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum over samples of `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


@pytest.fixture(autouse=True)
def _metrics_settings(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    buffers_clear()


def test_metrics_count_exactly_the_http_requests_made(api: Any, org: Any) -> None:
    # given
    before = scrape()
    # when: three job lists and two unknown jobs (404, an id in the path)
    for _ in range(3):
        assert api.get("/api/v1/jobs/").status_code == 200
    for job_id in (999_998, 999_999):
        assert api.get(f"/api/v1/jobs/{job_id}/").status_code == 404
    after = scrape()
    # then: counted under the route pattern, never the raw path with its id
    routes = {dict(labels)["route"] for (name, labels) in after if name == "tessera_http_requests_total"}
    assert not any("999998" in route or "999999" in route for route in routes), routes
    detail_route = next(route for route in routes if route.startswith("api/v1/jobs/") and "<" in route)
    name = "tessera_http_requests_total"
    assert (
        value(after, name, route="api/v1/jobs/", status="200") - value(before, name, route="api/v1/jobs/", status="200")
        == 3
    )
    assert (
        value(after, name, route=detail_route, status="404") - value(before, name, route=detail_route, status="404")
        == 2
    )
    histogram = "tessera_http_request_duration_seconds_count"
    assert value(after, histogram, route="api/v1/jobs/") - value(before, histogram, route="api/v1/jobs/") == 3


def test_the_http_rollup_has_the_requests_of_the_minute(api: Any, org: Any) -> None:
    # when
    for _ in range(4):
        api.get("/api/v1/jobs/")
    telemetry_flush()
    # then
    rows = HttpRollup.objects.filter(route="api/v1/jobs/", method="GET", status=200)
    assert sum(row.count for row in rows) == 4
    assert sum(sum(row.latency_buckets) for row in rows) == 4
    assert all(row.minute.second == 0 and row.minute.microsecond == 0 for row in rows)


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer"])
def test_an_unauthenticated_or_wrong_token_caller_gets_401_and_no_metrics(org: Any, header: str | None) -> None:
    # given: something is recorded that names the organization
    from core.telemetry.recording import job_record

    job_record(organization_id=org.pk, queue="default", kind="core.countdown", outcome="succeeded", seconds=0.1)
    # when
    response = Client().get("/metrics", headers={"Authorization": header} if header else {})
    # then
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    body = response.content.decode()
    assert "tessera_" not in body and "# TYPE" not in body and org.slug not in body
    assert response.json()["error"]["code"] == "not_authenticated"


def test_metrics_are_closed_when_neither_token_nor_networks_are_configured(settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 403
    assert "tessera_" not in response.content.decode()


def test_the_network_allowlist_admits_and_refuses_by_client_address(settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "192.168.1.7"]
    assert Client(REMOTE_ADDR="10.2.3.4").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="192.168.1.7").get("/metrics").status_code == 200
    refused = Client(REMOTE_ADDR="127.0.0.1").get("/metrics")
    assert refused.status_code == 403 and "tessera_" not in refused.content.decode()


def test_with_both_the_network_and_the_token_are_required(settings: Any) -> None:
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    inside = Client(REMOTE_ADDR="10.0.0.9")
    assert inside.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert inside.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 403


def test_a_malformed_network_fails_the_system_check(settings: Any) -> None:
    from core.telemetry.signals import check_metrics_networks

    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/33"]
    assert [error.id for error in check_metrics_networks()] == ["core.telemetry.E001"]


def test_metrics_refuses_other_methods() -> None:
    assert Client().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_jobs_are_counted_by_queue_kind_and_outcome_and_rolled_up_per_org(
    org: Any, other_org: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from core.jobs.runner import job_enqueue
    from core.tenancy.actors import Actor

    # given
    before = scrape()
    # when: two jobs succeed and one fails (eager Celery runs them inline)
    for params in ({"steps": 1, "step_seconds": 0}, {"steps": 1, "step_seconds": 0}, {"fail": True}):
        with django_capture_on_commit_callbacks(execute=True):
            job_enqueue(actor=Actor.system(org), kind="core.countdown", params=params)
    after = scrape()
    telemetry_flush()
    # then
    labels = {"queue": "default", "kind": "core.countdown"}
    ok = value(after, "tessera_jobs_total", outcome="succeeded", **labels)
    ok -= value(before, "tessera_jobs_total", outcome="succeeded", **labels)
    failed = value(after, "tessera_jobs_total", outcome="failed", **labels)
    failed -= value(before, "tessera_jobs_total", outcome="failed", **labels)
    assert (ok, failed) == (2, 1)
    duration = "tessera_job_duration_seconds_count"
    assert value(after, duration, **labels) - value(before, duration, **labels) == 3
    rows = {row.outcome: row.count for row in JobRollup.objects.filter(organization=org, kind="core.countdown")}
    assert rows == {"succeeded": 2, "failed": 1}
    assert not JobRollup.objects.filter(organization=other_org).exists()


def _buffer(model: Any, key_fields: tuple[str, ...]) -> RollupBuffer:
    return RollupBuffer(
        f"test-{model.__name__}",
        write=lambda items: rollup_rows_merge(model, items, key_fields=key_fields),
        prune=lambda before: 0,
        register=False,
    )


def test_rollups_count_per_minute_and_add_up_across_flushes() -> None:
    # given: events at 12:00:10, 12:00:50 and 12:01:05 of one key, and one of another key
    buffer = _buffer(HttpRollup, ("route", "method", "status"))
    noon = datetime(2026, 1, 5, 12, 0, tzinfo=UTC).timestamp()
    buffer.add(("a/", "GET", 200), ms=3.0, at=noon + 10)
    buffer.add(("a/", "GET", 200), ms=30.0, at=noon + 50)
    buffer.add(("a/", "GET", 200), ms=700.0, at=noon + 65)
    buffer.add(("a/", "GET", 500), ms=1.0, failed=True, at=noon + 20)
    # when: flushed, then one more event of the first minute flushed later (another process, say)
    assert buffer.flush() == 3
    buffer.add(("a/", "GET", 200), ms=4.0, at=noon + 59)
    buffer.flush()
    # then
    rows = {(row.minute.minute, row.status): row for row in HttpRollup.objects.filter(route="a/")}
    assert {key: row.count for key, row in rows.items()} == {(0, 200): 3, (1, 200): 1, (0, 500): 1}
    first = rows[(0, 200)]
    assert first.latency_ms_sum == pytest.approx(37.0)
    assert first.latency_ms_max == pytest.approx(30.0)
    assert sum(first.latency_buckets) == 3 and len(first.latency_buckets) == len(LATENCY_BUCKETS_MS) + 1
    assert rows[(0, 500)].errors == 1 and first.errors == 0


def test_a_failed_write_keeps_the_buffered_minutes_for_the_next_flush() -> None:
    calls: list[int] = []

    def flaky(items: Any) -> None:
        calls.append(len(items))
        if len(calls) == 1:
            raise RuntimeError("database away")

    buffer = RollupBuffer("test-flaky", write=flaky, prune=lambda before: 0, register=False)
    buffer.add(("x",), ms=1.0)
    with pytest.raises(RuntimeError):
        buffer.flush()
    buffer.add(("x",), ms=2.0)
    assert buffer.flush() == 1
    assert calls == [1, 1]


def test_prune_respects_the_retention(settings: Any, org: Any) -> None:
    # given
    settings.TELEMETRY_RETENTION_DAYS = 7
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    for age_days in (8, 6):
        HttpRollup.objects.create(minute=now - timedelta(days=age_days), route="r/", method="GET", status=200, count=1)
        JobRollup.objects.create(
            minute=now - timedelta(days=age_days), organization=org, queue="default", kind="k", outcome="succeeded"
        )
    ProcessHeartbeat.objects.create(host="h", pid=1, role="web", started_at=now, seen_at=now - timedelta(days=2))
    # when
    telemetry_prune(now=now)
    # then
    assert [row.minute for row in HttpRollup.objects.all()] == [now - timedelta(days=6)]
    assert [row.minute for row in JobRollup.objects.all()] == [now - timedelta(days=6)]
    assert not ProcessHeartbeat.objects.exists()


def test_quantiles_interpolate_inside_their_bucket() -> None:
    buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    buckets[LATENCY_BUCKETS_MS.index(10)] = 100  # 100 events in (5, 10] ms
    assert latency_quantile_ms(buckets, 0.5) == pytest.approx(7.5)
    assert latency_quantile_ms(buckets, 0.99) == pytest.approx(9.95)
    assert latency_quantile_ms(buckets, 0.5, maximum=8.0) == pytest.approx(6.5)
    assert latency_quantile_ms([0] * len(buckets), 0.5) is None
    overflow = [0] * len(buckets)
    overflow[-1] = 1
    assert latency_quantile_ms(overflow, 0.5, maximum=90_000.0) == 90_000.0


def test_disabled_telemetry_records_nothing(api: Any) -> None:
    from core.telemetry.recording import telemetry_disabled

    before = scrape()
    with telemetry_disabled():
        api.get("/api/v1/jobs/")
    after = scrape()
    assert value(after, "tessera_http_requests_total", route="api/v1/jobs/") == value(
        before, "tessera_http_requests_total", route="api/v1/jobs/"
    )


def test_make_run_banner_prints_the_metrics_token() -> None:
    from scripts.run_local import banner

    text = banner(port=8000, api_key="k", metrics_token="tok-123")
    assert 'curl -H "Authorization: Bearer tok-123" http://127.0.0.1:8000/metrics' in text


def test_the_prune_task_is_registered_for_beat_and_prunes(settings: Any) -> None:
    from core.celery import app
    from core.telemetry.tasks import prune_telemetry

    schedule = settings.CELERY_BEAT_SCHEDULE["telemetry-prune"]
    assert schedule["task"] == prune_telemetry.name and prune_telemetry.name in app.tasks
    HttpRollup.objects.create(minute=datetime(2000, 1, 1, tzinfo=UTC), route="old/", method="GET", status=200)
    assert prune_telemetry.apply().get() == 1
    assert not HttpRollup.objects.exists()


def test_make_run_generates_the_metrics_token_once_and_empties_the_multiprocess_folder(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scripts.run_local import demo_metrics_token, prometheus_multiproc_dir

    monkeypatch.delenv("METRICS_TOKEN", raising=False)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    path = tmp_path / "metrics_token.txt"
    token = demo_metrics_token(path)
    assert len(token) >= 40 and demo_metrics_token(path) == token and oct(path.stat().st_mode)[-3:] == "600"
    monkeypatch.setenv("METRICS_TOKEN", "from-the-environment")
    assert demo_metrics_token(path) == "from-the-environment"
    (tmp_path / "prometheus").mkdir()
    (tmp_path / "prometheus" / "counter_123.db").write_bytes(b"old")
    folder = prometheus_multiproc_dir(tmp_path)
    assert folder == tmp_path / "prometheus" and not list(folder.iterdir())
