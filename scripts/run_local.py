"""`make run`: prepare the database and the demo, then serve the portal and API with a worker.

Steps, all idempotent so `make run` can be repeated any number of times:

1. `migrate`, `collectstatic`, `seed_demo` (the demo organization, one user per role, and each
   domain app's demo models through its `DomainAppConfig.seed_demo`);
2. a demo API key with every scope, kept in `$VAR_DIR/demo_api_key.txt` and reused while it
   still authenticates (a new one is created only when it no longer does); the `/metrics` bearer
   token (`METRICS_TOKEN`, else one generated once into `$VAR_DIR/metrics_token.txt`), and an
   emptied `PROMETHEUS_MULTIPROC_DIR` (`$VAR_DIR/prometheus`) shared by the web server and the
   worker, so one scrape counts both;
3. three child processes: the web server, gunicorn (`core.wsgi`, one worker with WEB_THREADS
   threads so the portal, the API and the job-progress polling are served together; its access
   log on stdout; production models warmed in the background, `scripts/gunicorn_conf.py`), and
   one Celery worker for every queue with the stale-job reaper embedded (`-B`), whose pool
   processes warm the production models too (`ml/signals.py`), and the DICOM listener
   (`manage.py dicom_listener`: a storage SCP for C-ECHO and C-STORE on every interface, port
   `DICOM_PORT` (11112), AE title `DICOM_AE_TITLE` (TESSERA); it accepts only the calling AE
   titles org admins configure at `/api/v1/medical/dicom-nodes/`).

Ctrl-C (SIGINT) or SIGTERM stops every child and exits 0. If a child dies on its own, the
others are stopped and this script exits non-zero, so a half-running demo never lingers.

With no configuration this runs fully embedded: SQLite and a filesystem broker under
`$VAR_DIR`. When `DATABASE_URL` / `CELERY_BROKER_URL` are set, those are used as they are.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from core import env

DEMO_KEY_NAME = "demo (make run)"
WORKER_QUEUES = "default,training,inference"
WORKER_CONCURRENCY = "2"
WEB_WORKERS = "1"  # one process: its threads share the loaded models (a second would load them again)
WEB_THREADS = "8"
SERVER_START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.3


def log(message: str) -> None:
    print(f"[make run] {message}", flush=True)


# --- Preparation (in this process) ---------------------------------------------------------------


def prepare() -> str:
    """Migrate, collect static files, seed the demo; return the demo API key."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    Path(settings.VAR_DIR).mkdir(parents=True, exist_ok=True)
    if str(settings.CELERY_BROKER_URL).startswith("filesystem://"):
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        for key in ("data_folder_in", "data_folder_out", "control_folder"):
            Path(str(options[key])).mkdir(parents=True, exist_ok=True)

    log(f"Database: {describe_url(database_url(settings.DATABASES['default']))}")
    log(f"Broker:   {describe_url(str(settings.CELERY_BROKER_URL))}")
    log("Applying migrations …")
    call_command("migrate", interactive=False, verbosity=1)
    log("Collecting static files …")
    call_command("collectstatic", interactive=False, verbosity=0)
    log("Seeding the demo organization (idempotent) …")
    call_command("seed_demo")
    api_key = demo_api_key(Path(settings.VAR_DIR) / "demo_api_key.txt")

    # The children open their own connections; do not hold SQLite handles across their lifetime.
    from django.db import connections

    connections.close_all()
    return api_key


def demo_api_key(path: Path) -> str:
    """Reuse the key stored at `path` while it authenticates; otherwise create and store a new one."""
    from core.management.commands.seed_demo import DEMO_ORG
    from core.tenancy.actors import Actor
    from core.tenancy.choices import Scope
    from core.tenancy.selectors import api_key_from_raw, organization_get_by_slug
    from core.tenancy.services import api_key_create

    org = organization_get_by_slug(slug=DEMO_ORG)
    if path.exists():
        raw_key = path.read_text().strip()
        existing = api_key_from_raw(raw_key=raw_key)
        if existing is not None and existing.is_active and existing.organization_id == org.pk:
            log(f"Reusing the demo API key in {path}.")
            return raw_key
    new_key = api_key_create(actor=Actor.system(org), name=DEMO_KEY_NAME, scopes=Scope.values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new_key.raw_key + "\n")
    path.chmod(0o600)
    log(f"Created a demo API key with every scope; stored in {path}.")
    return new_key.raw_key


def demo_metrics_token(path: Path) -> str:
    """`METRICS_TOKEN` from the environment, else the one stored at `path` (created once)."""
    if env.is_set("METRICS_TOKEN"):
        return env.get("METRICS_TOKEN")
    if path.exists() and path.read_text().strip():
        return path.read_text().strip()
    import secrets

    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(token + "\n")
    path.chmod(0o600)
    log(f"Created a metrics token for /metrics; stored in {path}.")
    return token


def prometheus_multiproc_dir(var_dir: Path) -> Path:
    """`PROMETHEUS_MULTIPROC_DIR` (default `$VAR_DIR/prometheus`), emptied: the children start afresh."""
    folder = Path(env.get("PROMETHEUS_MULTIPROC_DIR") or var_dir / "prometheus")
    if folder.exists():
        for stale in folder.glob("*.db"):
            stale.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def database_url(db: Mapping[str, Any]) -> str:
    if str(db["ENGINE"]).endswith("sqlite3"):
        return f"sqlite://{db['NAME']}"
    return f"{str(db['ENGINE']).rsplit('.', 1)[-1]}://{db.get('HOST') or 'localhost'}/{db['NAME']}"


def describe_url(url: str) -> str:
    """The URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


# --- Supervision of the two children ----------------------------------------------------------------


@dataclass
class Child:
    """A supervised child process."""

    name: str
    process: subprocess.Popen[bytes]

    def exited(self) -> int | None:
        return self.process.poll()


def start_child(name: str, argv: Sequence[str]) -> Child:
    # Own session: a terminal Ctrl-C reaches only this supervisor, which stops the children in
    # order (web first, then the worker's warm shutdown) instead of both racing on SIGINT.
    process = subprocess.Popen(
        list(argv), cwd=env.BASE_DIR, start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    log(f"Started {name} (pid {process.pid}).")
    return Child(name=name, process=process)


def stop_children(children: Sequence[Child], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every running child, wait up to `timeout`, then SIGKILL what is left (and its group).

    A worker's warm shutdown lets a running job finish; one that outlasts `timeout` is killed and
    its job, left with a stale heartbeat, is re-sent when a worker starts next (core.jobs.signals).
    """
    for child in children:
        if child.exited() is None:
            log(f"Stopping {child.name} …")
            child.process.terminate()
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{child.name} did not stop within {timeout:.0f} s; killing it.")
            # Not reaped yet, so its pid is still its process group: this also kills pool processes.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()


def wait_for_port(port: int, children: Sequence[Child], timeout: float = SERVER_START_TIMEOUT_S) -> bool:
    """True once 127.0.0.1:`port` accepts connections; False if a child died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(child.exited() is not None for child in children):
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(POLL_INTERVAL_S)
    return False


def banner(*, port: int, api_key: str, metrics_token: str = "") -> str:
    from core.management.commands.seed_demo import DEMO_USERS

    url = f"http://127.0.0.1:{port}"
    logins = "\n".join(
        f"    {username:<10} {password:<22} ({role.label})" for username, (role, password) in DEMO_USERS.items()
    )
    return f"""
================================================================================
  Tessera is running: {url}/

  Portal logins (demo organization):
{logins}

  Demo API key (every scope; also in $VAR_DIR/demo_api_key.txt):
    {api_key}

  Try the API:
    curl -H "Authorization: Bearer {api_key}" {url}/api/v1/ml/models/
    curl -H "Authorization: Bearer {api_key}" {url}/api/v1/jobs/
  API docs: {url}/api/docs/     Health: {url}/healthz

  Prometheus metrics (token also in $VAR_DIR/metrics_token.txt unless METRICS_TOKEN is set):
    curl -H "Authorization: Bearer {metrics_token}" {url}/metrics
  Operations page (org admins): {url}/models/-/operations/

  DICOM listener (C-ECHO, C-STORE): AE title {env.get("DICOM_AE_TITLE")}, port {env.get_int("DICOM_PORT")}
    allow a modality's calling AE title first:
    curl -H "Authorization: Bearer {api_key}" -H "Content-Type: application/json" \\
      -d '{{"ae_title": "MY_MODALITY"}}' {url}/api/v1/medical/dicom-nodes/

  Press Ctrl-C to stop the web server, the worker and the DICOM listener.
================================================================================
""".rstrip()


def web_command(python: str, port: int) -> list[str]:
    """gunicorn serving `core.wsgi` on 127.0.0.1:`port` with `scripts/gunicorn_conf.py`."""
    return [
        python, "-m", "gunicorn", "core.wsgi:application",
        "-c", "python:scripts.gunicorn_conf",
        "--bind", f"127.0.0.1:{port}", "--workers", WEB_WORKERS, "--threads", WEB_THREADS,
    ]  # fmt: skip


def worker_command(python: str) -> list[str]:
    """One Celery worker for every queue, with the stale-job reaper embedded (`-B`)."""
    return [
        python, "-m", "celery", "-A", "core", "worker", "-B",
        "-Q", WORKER_QUEUES, "--concurrency", WORKER_CONCURRENCY, "-l", "info",
    ]  # fmt: skip


def listener_command(python: str) -> list[str]:
    """The DICOM listener (storage SCP) on `DICOM_PORT` with `DICOM_AE_TITLE` (it reads both itself)."""
    return [python, "manage.py", "dicom_listener"]


def supervise(children: Sequence[Child], stop_requested: list[int]) -> int:
    """Block until a stop signal (→ 0) or until a child exits on its own (→ non-zero)."""
    while True:
        if stop_requested:
            log(f"Received {signal.Signals(stop_requested[0]).name}; shutting down.")
            stop_children(children)
            return 0
        for child in children:
            code = child.exited()
            if code is not None:
                log(f"{child.name} exited with code {code}; stopping the rest.")
                stop_children([c for c in children if c is not child])
                return code if code > 0 else 1
        time.sleep(POLL_INTERVAL_S)


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
    port = env.get_int("PORT")
    api_key = prepare()
    # Telemetry of the children: one multiprocess folder for gunicorn and the worker (one scrape
    # of /metrics sums both), and the scrape token, passed on through the environment.
    var_dir = Path(env.get("VAR_DIR"))
    metrics_token = demo_metrics_token(var_dir / "metrics_token.txt")
    os.environ["METRICS_TOKEN"] = metrics_token
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prometheus_multiproc_dir(var_dir))

    stop_requested: list[int] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if stop_requested:  # a second Ctrl-C: stop waiting for a graceful shutdown
            raise KeyboardInterrupt
        stop_requested.append(signum)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    python = sys.executable
    children: list[Child] = []
    try:
        children.append(start_child("web server (gunicorn)", web_command(python, port)))
        children.append(start_child("worker (celery)", worker_command(python)))
        children.append(start_child("DICOM listener", listener_command(python)))
        if wait_for_port(port, children) and wait_for_port(env.get_int("DICOM_PORT"), children):
            print(banner(port=port, api_key=api_key, metrics_token=metrics_token), flush=True)
        return supervise(children, stop_requested)
    except KeyboardInterrupt:
        log("Interrupted again; killing the children.")
        stop_children(children, timeout=0)
        return 0
    finally:
        if any(child.exited() is None for child in children):
            stop_children(children)


if __name__ == "__main__":
    sys.exit(main())
