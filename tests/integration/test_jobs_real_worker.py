"""The job system end to end: PostgreSQL, Redis, and a real prefork Celery worker process.

Timings come from the environment the Makefile sets for this suite (heartbeat 1 s, stale after
3 s, Redis visibility timeout 5 s), so crash recovery is observable in seconds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.conftest import audit_actions, job_row, wait_for
from tests.realservices import RealServices, RealWorker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FINISHED = {"succeeded", "failed", "cancelled"}


def _received(logs: str, task_id: str) -> int:
    """How many deliveries of task `task_id` the worker log shows."""
    return len(re.findall(rf"Task core\.jobs\.tasks\.run_job\[{task_id}\] received", logs))


def _wait_finished(job_id: int, worker: RealWorker, *, timeout: float) -> Any:
    return wait_for(
        lambda: (job := job_row(job_id)).status in FINISHED and job,
        timeout=timeout,
        what=f"job {job_id} to finish",
        worker=worker,
    )


def test_database_is_postgresql_and_broker_is_redis_for_tests_and_worker(
    real_services: RealServices, real_worker: RealWorker, enqueue_job: Callable[..., Any]
) -> None:
    # given
    from django.conf import settings
    from django.db import connection

    from core.celery import app

    # then: this process
    assert connection.vendor == "postgresql"
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert connection.settings_dict["NAME"].startswith("test_")
    assert real_services.database_url.endswith("/" + connection.settings_dict["NAME"])
    assert app.conf.broker_url.startswith("redis://")
    assert app.conf.task_always_eager is False
    # then: the worker process
    stats = real_worker.stats()
    assert stats["broker"]["transport"] == "redis", stats["broker"]
    assert stats["pool"]["max-concurrency"] == 1

    # when: a job runs on the worker
    job = enqueue_job(steps=1, step_seconds=0)
    done = _wait_finished(job.pk, real_worker, timeout=20)

    # then: the worker wrote it into this very PostgreSQL test database, over its own connection
    assert done.status == "succeeded"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        (other_connections,) = cursor.fetchone()
    assert other_connections >= 1


def test_countdown_progress_is_visible_through_the_api_until_success(
    real_worker: RealWorker, enqueue_job: Callable[..., Any], api: Any
) -> None:
    # given
    job = enqueue_job(steps=10, step_seconds=0.3)
    seen: list[float] = []

    # when: a client polls the job like a partner would
    def poll() -> Any:
        response = api.get(f"/api/v1/jobs/{job.pk}/")
        assert response.status_code == 200, response.content
        body = response.json()
        if not seen or seen[-1] != body["progress"]:
            seen.append(body["progress"])
        return body if body["status"] in FINISHED else None

    body = wait_for(poll, timeout=30, interval=0.05, what="countdown to finish", worker=real_worker)

    # then
    assert body["status"] == "succeeded", body
    assert body["progress"] == 1.0
    assert body["result"] == {"steps": 10, "attempt": 1}
    assert body["attempts"] == 1
    assert body["error"] == ""
    assert seen == sorted(set(seen)), f"progress went backwards or repeated: {seen}"
    intermediate = [p for p in seen if 0.0 < p < 1.0]
    assert len(intermediate) >= 3, f"too few intermediate progress values seen: {seen}"
    assert seen[-1] == 1.0
    assert audit_actions(job.pk) == ["core.job.succeeded"]


def test_failing_job_records_its_error_on_the_worker(
    real_worker: RealWorker, enqueue_job: Callable[..., Any], api: Any
) -> None:
    # given
    job = enqueue_job(fail=True)

    # when
    _wait_finished(job.pk, real_worker, timeout=20)

    # then
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["status"] == "failed", body
    assert "RuntimeError: Countdown asked to fail." in body["error"]
    assert body["result"] is None
    assert body["attempts"] == 1
    assert body["finished_at"] is not None
    assert audit_actions(job.pk) == ["core.job.failed"]


def _unacked_deliveries(broker_url: str, task_id: str) -> dict[bytes, float]:
    """The messages of task `task_id` the broker holds as delivered but unacked: tag → delivery time."""
    import json

    import redis

    with redis.Redis.from_url(broker_url) as client:
        times = dict(client.zrange("unacked_index", 0, -1, withscores=True))
        return {
            tag: times[tag]
            for tag, raw in client.hgetall("unacked").items()
            if json.loads(raw)[0]["headers"]["id"] == task_id and tag in times
        }


def test_sigkilled_worker_job_is_taken_over_after_restart_and_finishes_exactly_once(
    real_services: RealServices, real_worker: RealWorker, enqueue_job: Callable[..., Any], settings: Any
) -> None:
    # given: a 10 s job that got well under way
    job = enqueue_job(steps=20, step_seconds=0.5)
    wait_for(lambda: job_row(job.pk).progress > 0.2, timeout=30, what="progress > 0.2", worker=real_worker)

    # when: the worker (main process and pool child) dies at once
    real_worker.kill()
    killed_at = time.monotonic()
    crashed = job_row(job.pk)
    assert crashed.status == "running" and crashed.attempts == 1
    unacked = _unacked_deliveries(real_services.broker_url, job.celery_task_id)
    assert len(unacked) == 1, "acks_late: the message of the running job must still be unacked"
    # ... and stays dead until both redelivery paths are due: the dead owner's heartbeat is stale
    # (worker_ready re-sends it) and the unacked message is past the visibility timeout (the
    # restarted worker's first poll restores it), so two deliveries race for one job.
    visibility_timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    stale_at = crashed.heartbeat_at.timestamp() + settings.JOB_STALE_SECONDS + 0.5
    [(original_tag, delivered_at)] = unacked.items()
    visible_at = delivered_at + visibility_timeout + 0.5
    time.sleep(max(0.0, max(stale_at, visible_at) - time.time()))
    before_restart = len(real_worker.logs())
    real_worker.restart()

    # then: one takeover runs the job to the end
    done = _wait_finished(job.pk, real_worker, timeout=45)
    assert time.monotonic() - killed_at < 60
    assert done.status == "succeeded", (done.status, done.error, real_worker.logs()[-8000:])
    assert done.attempts == 2
    assert done.result == {"steps": 20, "attempt": 2}
    assert done.progress == 1.0

    # both paths delivered it again; the second delivery is dropped by the claim
    def redelivered_twice() -> str | None:
        log = real_worker.logs()[before_restart:]
        return log if _received(log, job.celery_task_id) >= 2 else None

    logs = wait_for(
        redelivered_twice,
        timeout=15,
        what="both redeliveries (visibility timeout and stale re-send)",
        worker=real_worker,
    )
    assert f"Re-sending job {job.pk}" in logs  # the stale-heartbeat path
    assert original_tag not in _unacked_deliveries(real_services.broker_url, job.celery_task_id)  # restored (VT path)
    wait_for(
        lambda: f"Job {job.pk}: delivery dropped" in real_worker.logs(), timeout=15, what="the drop", worker=real_worker
    )
    final = job_row(job.pk)
    assert (final.status, final.attempts, final.result) == ("succeeded", 2, {"steps": 20, "attempt": 2})
    assert audit_actions(job.pk) == ["core.job.succeeded"]


def test_worker_restarted_before_the_heartbeat_is_stale_still_takes_the_job_over(
    real_worker: RealWorker, enqueue_job: Callable[..., Any], settings: Any
) -> None:
    # given
    job = enqueue_job(steps=12, step_seconds=0.5)
    wait_for(lambda: job_row(job.pk).progress > 0.2, timeout=30, what="progress > 0.2", worker=real_worker)

    # when: killed and restarted at once: the dead owner still looks alive to the first sweep
    real_worker.kill()
    killed_at = time.monotonic()
    last_heartbeat = job_row(job.pk).heartbeat_at
    before_restart = len(real_worker.logs())
    real_worker.restart()
    restarted_while_fresh = time.time() < last_heartbeat.timestamp() + settings.JOB_STALE_SECONDS - 0.5

    # then: the delayed sweep after worker start re-sends it once the heartbeat is stale
    done = _wait_finished(job.pk, real_worker, timeout=40)
    assert time.monotonic() - killed_at < 60
    assert (done.status, done.attempts, done.result) == ("succeeded", 2, {"steps": 12, "attempt": 2})
    assert audit_actions(job.pk) == ["core.job.succeeded"]
    if restarted_while_fresh:  # (a starved machine may restart too slowly to tell the sweeps apart)
        logs = real_worker.logs()[before_restart:]
        assert re.search(rf"WARNING/ForkPoolWorker-\d+\] Re-sending job {job.pk} ", logs), logs[-4000:]
        assert not re.search(rf"WARNING/MainProcess\] Re-sending job {job.pk} ", logs), logs[-4000:]


def test_duplicate_delivery_while_the_owner_is_alive_is_dropped(
    real_worker_factory: Callable[..., RealWorker], enqueue_job: Callable[..., Any]
) -> None:
    # given: two pool processes, one of them running the job
    from core.jobs.runner import job_send

    worker = real_worker_factory(concurrency=2)
    job = enqueue_job(steps=8, step_seconds=0.5)
    wait_for(lambda: job_row(job.pk).progress >= 0.25, timeout=30, what="job running", worker=worker)

    # when: the same job's task is delivered again, and the idle pool process takes it
    job_send(job_id=job.pk)

    # then: the duplicate is dropped while the owner still runs the job
    wait_for(
        lambda: f"Job {job.pk}: delivery dropped" in worker.logs(),
        timeout=15,
        what="the duplicate delivery to be dropped",
        worker=worker,
    )
    assert job_row(job.pk).status == "running"
    done = _wait_finished(job.pk, worker, timeout=30)
    assert (done.status, done.attempts, done.result) == ("succeeded", 1, {"steps": 8, "attempt": 1})
    assert _received(worker.logs(), job.celery_task_id) == 2
    assert audit_actions(job.pk) == ["core.job.succeeded"]
