"""Real-services test layer: PostgreSQL, Redis and a real Celery worker process.

A pytest plugin (registered through `pytest_plugins` in `tests/conftest.py`) for tests marked
`integration`; any suite may use it (the integration suite, browser tests of the portal, ...).

How it is run
    `make test` runs the integration tests in their own pytest invocation, `-m integration`, with
    the services in the environment (`core.env` reads it)::

        DATABASE_URL=postgres://postgres@127.0.0.1:5432/tessera     # pytest-django makes test_tessera
        CELERY_BROKER_URL=redis://127.0.0.1:6379/15                 # broker: only this suite uses db 15
        CACHE_URL=redis://127.0.0.1:6379/14
        JOB_HEARTBEAT_SECONDS=1 JOB_STALE_SECONDS=3 BROKER_VISIBILITY_TIMEOUT=5

    The fast suite (`-m "not integration"`, SQLite, eager Celery) never selects these tests.

Availability: skip outside CI, fail under CI
    Before any fixture of an `integration` test is set up (so before pytest-django tries to create
    the test database), `pytest_runtest_setup` checks, once per session, that the database engine
    is PostgreSQL and answers, and that the broker (and the cache, when it is Redis) is Redis and
    answers. When not, the test is skipped with the reason outside CI; with `CI=true` it fails:
    CI must never go green by silently skipping, or by falling back to SQLite/eager Celery.

Fixtures
    `real_services`        the check above plus assertions (PostgreSQL, Redis broker, eager off);
                           returns `RealServices` (urls, the test database name).
    `real_worker_factory`  `start(concurrency=1, queues=(...))` → a started `RealWorker`; every
                           worker it started is stopped (then SIGKILLed) at teardown.
    `real_worker`          one started worker: `celery -A core worker -Q default,training,inference
                           --concurrency 1 --pool prefork`.

    Both worker fixtures request `transactional_db`: the worker is another process, it only sees
    committed rows, so tests mark `@pytest.mark.django_db(transaction=True)` (requesting the
    fixture makes the test transactional anyway). Fixture order guarantees the worker is stopped
    before pytest-django truncates the tables, and long before it drops the test database.

The worker process
    - its own process group (`start_new_session`), so `.kill()` SIGKILLs the main process and
      every pool child at once, like an OOM kill or a lost machine;
    - `DATABASE_URL` points at the pytest-django test database (e.g. `test_tessera`), the broker
      and cache urls are this process's, `CELERY_TASK_ALWAYS_EAGER=false`, `DJANGO_ENV=test`,
      `MEDIA_ROOT`/`ARTIFACT_ROOT` are the test's (tests/conftest.py puts them under tmp_path),
      the job timings (`JOB_HEARTBEAT_SECONDS`, `JOB_STALE_SECONDS`, `BROKER_VISIBILITY_TIMEOUT`)
      are this process's settings, i.e. the short values from the environment;
    - `--without-mingle --without-gossip --without-heartbeat`: faster start, and no chatter with
      other workers that may share the Redis server;
    - a unique node name; "ready" means it answers a control `ping` addressed to that name;
    - its stdout/stderr (log level INFO) go to one log file per worker, `.logs()` reads it.

    Before a worker fixture starts a worker, the broker's queues (`default`, `training`,
    `inference`, their priority lists) and kombu's unacked-message bookkeeping (`unacked`,
    `unacked_index`, `unacked_mutex`) are deleted, so messages of an earlier test or run never
    leak in. `RealWorker.restart()` does not purge: redelivery after a crash is what it tests.

    Cleanup: teardown stops each worker (SIGTERM, warm shutdown, a few seconds) and SIGKILLs its
    process group if needed; an `atexit` hook kills any group still alive if pytest itself dies.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKER_QUEUES: tuple[str, ...] = ("default", "training", "inference")
WORKER_READY_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 10.0
SERVICE_CONNECT_TIMEOUT = 3

# Process groups of workers still running; killed at interpreter exit if a teardown never ran.
_LIVE_GROUPS: set[int] = set()


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


# --- Are the services there? ---------------------------------------------------------------------


@functools.cache
def services_problem() -> str | None:
    """Why the real services can't be used (None when PostgreSQL and Redis answer). Cached per session."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if "postgresql" not in db["ENGINE"]:
        return f"DATABASE_URL is not PostgreSQL (engine {db['ENGINE']})"
    import psycopg

    try:
        with psycopg.connect(
            host=db.get("HOST") or "127.0.0.1",
            port=int(db.get("PORT") or 5432),
            user=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            dbname="postgres",
            connect_timeout=SERVICE_CONNECT_TIMEOUT,
        ) as conn:
            conn.execute("SELECT 1")
    except (psycopg.Error, OSError) as exc:
        return f"PostgreSQL at {db.get('HOST')}:{db.get('PORT')} does not answer: {exc}"

    urls = {"CELERY_BROKER_URL": settings.CELERY_BROKER_URL}
    cache = settings.CACHES["default"]
    if "redis" in cache["BACKEND"].lower():
        urls["CACHE_URL"] = cache["LOCATION"]
    for name, url in urls.items():
        if not url.startswith(("redis://", "rediss://")):
            return f"{name} is not Redis ({url.split('://')[0]}://)"
        import redis

        try:
            redis.Redis.from_url(url, socket_connect_timeout=SERVICE_CONNECT_TIMEOUT).ping()
        except (redis.RedisError, OSError) as exc:
            return f"Redis at {_redact(url)} ({name}) does not answer: {exc}"
    return None


def require_real_services() -> None:
    """Skip (outside CI) or fail (CI=true) the current test when the real services are missing."""
    problem = services_problem()
    if problem is None:
        return
    if in_ci():
        pytest.fail(f"CI=true and the real services are required: {problem}", pytrace=False)
    pytest.skip(f"real services unavailable ({problem}); they are required when CI=true")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture: pytest-django would otherwise error while creating the test database.
    if item.get_closest_marker("integration") is not None:
        require_real_services()


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


# --- real_services ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealServices:
    """What an integration test runs against."""

    database_url: str  # the pytest-django test database, as a worker process must reach it
    broker_url: str
    cache_url: str | None


def wait_until_serving(
    server: subprocess.Popen[Any], ready: Callable[[], bool], logs: Callable[[], str], *, what: str, seconds: float = 60
) -> None:
    """Poll `ready()` (connection errors count as not yet) until it holds; fail with `logs()` if
    `server` exits first or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if ready():
                return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not start:\n{logs()}")
        time.sleep(0.2)


def worker_database_url() -> str:
    """A `DATABASE_URL` for the database this test process uses now (the pytest-django test DB)."""
    from django.db import connection

    db = connection.settings_dict
    auth = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{auth + '@' if auth else ''}{host}:{port}/{quote(db['NAME'], safe='')}"


@pytest.fixture
def real_services(settings: Any) -> RealServices:
    """PostgreSQL and Redis, checked live; eager Celery off for this test."""
    require_real_services()
    from django.db import connection

    from core.celery import app

    assert connection.vendor == "postgresql", connection.vendor
    assert app.conf.broker_url.startswith(("redis://", "rediss://")), app.conf.broker_url
    with app.connection_for_write() as conn:
        assert conn.transport.driver_type == "redis", conn.transport.driver_type
    app.conf.task_always_eager = False  # also for a test that forgot the `integration` marker
    cache = settings.CACHES["default"]
    cache_url = cache["LOCATION"] if "redis" in cache["BACKEND"].lower() else None
    return RealServices(database_url=worker_database_url(), broker_url=app.conf.broker_url, cache_url=cache_url)


# --- The worker -------------------------------------------------------------------------------------


def broker_purge(broker_url: str, queues: Sequence[str] = WORKER_QUEUES) -> int:
    """Delete the queues' messages and kombu's unacked bookkeeping in the broker's Redis db."""
    import redis

    with redis.Redis.from_url(broker_url) as client:
        keys: list[Any] = ["unacked", "unacked_index", "unacked_mutex"]
        for queue in queues:
            keys.append(queue)
            keys.extend(client.scan_iter(match=f"{queue}\x06\x16*"))  # kombu's priority sub-queues
        return int(client.delete(*keys))


class RealWorker:
    """A `celery worker` subprocess in its own process group."""

    def __init__(
        self, *, env: dict[str, str], log_path: Path, concurrency: int = 1, queues: Sequence[str] = WORKER_QUEUES
    ) -> None:
        self.env = env
        self.log_path = log_path
        self.concurrency = concurrency
        self.queues = tuple(queues)
        self.nodename = f"int-{uuid.uuid4().hex[:10]}@{socket.gethostname()}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "core",
            "worker",
            "-Q",
            ",".join(self.queues),
            "--concurrency",
            str(self.concurrency),
            "--pool",
            "prefork",
            "-n",
            self.nodename,
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ]

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, timeout: float = WORKER_READY_TIMEOUT) -> RealWorker:
        """Start the process and wait until it answers a ping; fails the test with its log if it can't."""
        assert not self.is_running(), "worker already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _LIVE_GROUPS.add(self.process.pid)
        self.wait_ready(timeout=timeout)
        return self

    def wait_ready(self, *, timeout: float = WORKER_READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                pytest.fail(f"worker exited with {self.process and self.process.returncode}:\n{self.logs()[-6000:]}")
            if self.ping(timeout=0.5):
                return
            time.sleep(0.2)
        self.kill()
        pytest.fail(f"worker not ready after {timeout:.0f}s:\n{self.logs()[-6000:]}")

    def ping(self, *, timeout: float = 1.0) -> bool:
        from core.celery import app

        return bool(app.control.ping(destination=[self.nodename], timeout=timeout))

    def stats(self, *, timeout: float = 2.0) -> dict[str, Any]:
        """`celery inspect stats` of this worker (broker transport, pool, ...)."""
        from core.celery import app

        replies = app.control.inspect(destination=[self.nodename], timeout=timeout).stats() or {}
        return dict(replies.get(self.nodename) or {})

    def kill(self) -> None:
        """SIGKILL the whole process group (main process and pool children), as a crash would."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        _LIVE_GROUPS.discard(self.process.pid)

    def stop(self, *, timeout: float = WORKER_STOP_TIMEOUT) -> None:
        """Warm shutdown (SIGTERM: running tasks finish); SIGKILL the group after `timeout` seconds.

        SIGTERM goes to the main process only: it shuts its pool down itself (a SIGTERM to the
        whole group would kill the pool children first, and Celery would report them lost).
        """
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        self.kill()  # the group: no pool child may outlive its parent

    def restart(self, *, timeout: float = WORKER_READY_TIMEOUT) -> RealWorker:
        """Stop if running (a killed worker stays killed), then start again; the broker is not purged."""
        if self.is_running():
            self.stop()
        return self.start(timeout=timeout)

    def logs(self) -> str:
        """Everything every start of this worker wrote (stdout and stderr)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@atexit.register
def _kill_leftover_workers() -> None:
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def worker_env(*, services: RealServices, settings: Any, var_dir: Path) -> dict[str, str]:
    """The environment of a worker process: this test's database, broker, cache, storage and timings."""
    env = {
        **os.environ,
        "DJANGO_ENV": "test",
        "DJANGO_SETTINGS_MODULE": "core.settings",
        "DATABASE_URL": services.database_url,
        "CELERY_BROKER_URL": services.broker_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "VAR_DIR": str(var_dir),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "ARTIFACT_ROOT": str(settings.ARTIFACT_ROOT),
        "JOB_HEARTBEAT_SECONDS": str(settings.JOB_HEARTBEAT_SECONDS),
        "JOB_STALE_SECONDS": str(settings.JOB_STALE_SECONDS),
        "BROKER_VISIBILITY_TIMEOUT": str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]),
        "PYTHONUNBUFFERED": "1",
    }
    if services.cache_url:
        env["CACHE_URL"] = services.cache_url
    else:
        env.pop("CACHE_URL", None)
    return env


@pytest.fixture
def real_worker_factory(
    real_services: RealServices, transactional_db: None, settings: Any, tmp_path: Path
) -> Iterator[Callable[..., RealWorker]]:
    """`start(concurrency=1, queues=WORKER_QUEUES)` → a started RealWorker, stopped at teardown."""
    workers: list[RealWorker] = []

    def start(*, concurrency: int = 1, queues: Sequence[str] = WORKER_QUEUES) -> RealWorker:
        if not workers:  # a second worker of the same test must not lose the first one's messages
            broker_purge(real_services.broker_url)
        index = len(workers) + 1
        worker = RealWorker(
            env=worker_env(services=real_services, settings=settings, var_dir=tmp_path / f"worker-{index}-var"),
            log_path=tmp_path / f"worker-{index}.log",
            concurrency=concurrency,
            queues=queues,
        )
        workers.append(worker)
        return worker.start()

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop(timeout=5)


@pytest.fixture
def real_worker(real_worker_factory: Callable[..., RealWorker]) -> RealWorker:
    """One started worker on every queue, concurrency 1, prefork."""
    return real_worker_factory()
