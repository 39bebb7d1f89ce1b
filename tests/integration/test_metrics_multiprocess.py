"""Telemetry under the real services: gunicorn with two workers and a Celery worker process share
one `PROMETHEUS_MULTIPROC_DIR`, and one `/metrics` scrape of either web worker counts the requests
both web workers served and the job the Celery worker ran; each process flushes its rollups.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import job_row, wait_for
from tests.realservices import REPO_ROOT, RealServices, wait_until_serving

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TOKEN = "integration-metrics-token"
REQUESTS = 24


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, token: str | None = TOKEN) -> tuple[int, str]:
    assert url.startswith("http://127.0.0.1:")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})  # noqa: S310 - our local server
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - http://127.0.0.1 only
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def _total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(v for n, ls, v in samples if n == name and labels.items() <= ls.items())


@pytest.fixture
def telemetry_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The multiprocess folder and short flushes, in the environment the children inherit."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    monkeypatch.setenv("METRICS_TOKEN", TOKEN)
    monkeypatch.setenv("TELEMETRY_FLUSH_SECONDS", "1")
    monkeypatch.setenv("ML_WARM_UP", "off")
    return folder


@pytest.fixture
def gunicorn(real_services: RealServices, settings: Any, tmp_path: Path, telemetry_env: Path) -> Iterator[str]:
    """gunicorn with two sync workers and the project's gunicorn_conf, on the test database."""
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_ENV": "test",
        "DJANGO_SETTINGS_MODULE": "core.settings",
        "DATABASE_URL": real_services.database_url,
        "CELERY_BROKER_URL": real_services.broker_url,
        "VAR_DIR": str(tmp_path / "server-var"),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "ARTIFACT_ROOT": str(settings.ARTIFACT_ROOT),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }
    if real_services.cache_url:
        env["CACHE_URL"] = real_services.cache_url
    log = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "core.wsgi:application", "-c", "python:scripts.gunicorn_conf"]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "-b", f"127.0.0.1:{port}", "-w", "2", "--threads", "1"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(
            server,
            lambda: _get(f"{url}/healthz", token=None)[0] in (200, 503),
            lambda: log.read_text(errors="replace")[-6000:],
            what="gunicorn",
        )
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


def _hammer(url: str, count: int, threads: int = 6) -> list[int]:
    """`count` requests to `url` from `threads` concurrent clients (a new connection each)."""
    statuses: list[int] = []
    lock = threading.Lock()
    per_thread = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]

    def run(n: int) -> None:
        for _ in range(n):
            status, _ = _get(url, token=None)
            with lock:
                statuses.append(status)

    workers = [threading.Thread(target=run, args=(n,)) for n in per_thread]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return statuses


def test_one_scrape_counts_both_web_workers_and_the_celery_worker(
    gunicorn: str,
    real_worker_factory: Callable[..., Any],
    enqueue_job: Callable[..., Any],
    org: Any,
    telemetry_env: Path,
) -> None:
    from core.telemetry.models import HttpRollup, JobRollup, ProcessHeartbeat

    # given: a Celery worker sharing the multiprocess folder
    worker = real_worker_factory()
    # when: requests from concurrent clients (both sync web workers serve), and a job on the worker
    statuses = _hammer(f"{gunicorn}/api/v1/jobs/", REQUESTS)
    assert statuses == [401] * REQUESTS  # no key: refused by the API, still counted
    job = enqueue_job("core.countdown", steps=1, step_seconds=0)
    wait_for(lambda: job_row(job.pk).status == "succeeded", timeout=60, what="the job", worker=worker)

    # then: one scrape (whichever web worker answers) counts everything
    def scraped() -> list[tuple[str, dict[str, str], float]] | None:
        status, text = _get(f"{gunicorn}/metrics")
        assert status == 200, text[:300]
        samples = _samples(text)
        return samples if _total(samples, "tessera_jobs_total", kind="core.countdown") >= 1 else None

    samples = wait_for(scraped, timeout=30, what="the job in /metrics", worker=worker)
    assert _total(samples, "tessera_http_requests_total", route="api/v1/jobs/", status="401") == REQUESTS
    assert _total(samples, "tessera_http_request_duration_seconds_count", route="api/v1/jobs/") == REQUESTS
    assert _total(samples, "tessera_jobs_total", queue="default", kind="core.countdown", outcome="succeeded") == 1
    # the requests were served by both web workers: each wrote its own counter file
    web_pids = {row.pid for row in ProcessHeartbeat.objects.filter(role="web")} or set()
    counter_pids = {int(path.stem.rsplit("_", 1)[1]) for path in telemetry_env.glob("counter_*.db")}
    assert len(counter_pids) >= 3, counter_pids  # two web workers and the worker's pool process

    # and each process flushed its rollups (web workers and the Celery pool process)
    wait_for(
        lambda: sum(r.count for r in HttpRollup.objects.filter(route="api/v1/jobs/", status=401)) == REQUESTS,
        timeout=30,
        what="the HTTP rollups of both web workers",
    )
    wait_for(
        lambda: JobRollup.objects.filter(organization=org, kind="core.countdown", outcome="succeeded").exists(),
        timeout=30,
        what="the job rollup",
        worker=worker,
    )
    web_pids = set(ProcessHeartbeat.objects.filter(role="web").values_list("pid", flat=True))
    assert len(web_pids) == 2, web_pids
    assert len(web_pids & counter_pids) == 2
    assert ProcessHeartbeat.objects.filter(role="worker").exists()

    # an unauthenticated scrape gets nothing
    status, text = _get(f"{gunicorn}/metrics", token="wrong")
    assert status == 401 and "tessera_" not in text and org.slug not in text
