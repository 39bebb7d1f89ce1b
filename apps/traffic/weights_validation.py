"""Launching the out-of-process validator of uploaded ultralytics weights.

A `.pt` checkpoint is a pickle that can run code when loaded, so the web and worker processes
never load an upload themselves: `weights_inspect` runs `apps.traffic.validate_weights` in a
short-lived child process (isolated mode, offline environment, no proxy reachable, CPU time and
file size limits, its own session) and returns the JSON report it prints.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.traffic.limits import limit
from apps.traffic.ml_offline import OFFLINE_ENV


def weights_inspect(path: Path) -> dict[str, Any]:
    """Load `path` with ultralytics in a short-lived subprocess and return its JSON report."""
    with tempfile.TemporaryDirectory() as home:
        # ultralytics recognises checkpoints by their `.pt` suffix; uploads arrive without one.
        candidate = Path(home) / "candidate.pt"
        shutil.copyfile(path, candidate)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(settings.BASE_DIR),
            "HOME": home,
            "YOLO_CONFIG_DIR": home,
            "MPLCONFIGDIR": home,
            "CUDA_VISIBLE_DEVICES": "",  # validation needs no GPU
            # Anything that honours proxies (requests, urllib) is sent to a closed port.
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "ALL_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "",
            **OFFLINE_ENV,
        }
        try:
            completed = subprocess.run(
                [sys.executable, "-I", "-c", _VALIDATOR_BOOTSTRAP, str(candidate)],
                cwd=home,
                env=env,
                capture_output=True,
                text=True,
                timeout=limit("TRAFFIC_WEIGHTS_VALIDATION_TIMEOUT_S"),
                preexec_fn=_limit_resources if os.name == "posix" else None,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": "validation timed out"}
    lines = [line for line in completed.stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        return {"ok": False, "error": f"validator exited with status {completed.returncode}"}
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"ok": False, "error": "validator produced no report"}
    return result


# `-I` (isolated mode) ignores PYTHONPATH and the user site, so the bootstrap puts the project on
# the path explicitly and runs the validator module.
_VALIDATOR_BOOTSTRAP = (
    "import os, sys; sys.path.insert(0, os.environ['PYTHONPATH']); "
    "from apps.traffic.validate_weights import main; sys.exit(main(['validate_weights', sys.argv[1]]))"
)


def _limit_resources() -> None:  # pragma: no cover - runs in the child
    import resource

    seconds = limit("TRAFFIC_WEIGHTS_VALIDATION_TIMEOUT_S")
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024 * 1024, 64 * 1024 * 1024))
    os.setsid()
