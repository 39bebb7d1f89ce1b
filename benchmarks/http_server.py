"""A real gunicorn server for the latency benchmarks, and timed requests to it (no client library)."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed_request(
    port: int, method: str, path: str, key: str, body: bytes | None = None, *, timeout: float = 600
) -> tuple[int, float]:
    """(status, milliseconds) of one request on a fresh connection, the body read to the end."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, (time.perf_counter() - started) * 1000


@contextmanager
def gunicorn_server(var_dir: Path, key: str, ready_path: str, *, threads: int = 1) -> Iterator[int]:
    """A gunicorn with 1 worker and `threads` threads on a free port; yields the port once `ready_path` answers 200."""
    port = free_port()
    env = {**os.environ, "VAR_DIR": str(var_dir), "DJANGO_ENV": "test", "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    command = [sys.executable, "-m", "gunicorn", "core.wsgi:application", "-b", f"127.0.0.1:{port}"]
    server = subprocess.Popen(
        [*command, "-w", "1", "--threads", str(threads), "--timeout", "600"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                if timed_request(port, "GET", ready_path, key)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError(f"gunicorn did not answer {ready_path} with 200")
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)
