"""Out-of-process validation of uploaded ultralytics weights.

A `.pt` file is a pickle: loading it can run arbitrary code. The web and worker processes
never load an upload before this validator has: `python -m apps.traffic.validate_weights FILE`
runs in a separate, short-lived process (with a timeout, resource limits, the offline
environment and no proxy reachable), loads the file with ultralytics and prints one JSON line:

    {"ok": true, "task": "detect", "names": {"0": "person", ...}, "parameters": 2616248, ...}
    {"ok": false, "error": "..."}

This module must not import Django: it runs outside the project's settings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def inspect_weights(path: Path) -> dict[str, Any]:
    from apps.traffic.ml_offline import configure_ultralytics_offline

    configure_ultralytics_offline()
    from ultralytics import YOLO

    model = YOLO(str(path), task=None)
    inner: Any = model.model
    names = getattr(inner, "names", None) or {}
    if isinstance(names, list):
        names = dict(enumerate(names))
    yaml_cfg = getattr(inner, "yaml", {}) or {}
    return {
        "ok": True,
        "task": model.task,
        "model_class": type(inner).__name__,
        "names": {str(index): str(name) for index, name in names.items()},
        "parameters": int(sum(p.numel() for p in inner.parameters())) if hasattr(inner, "parameters") else 0,
        "architecture": str(yaml_cfg.get("yaml_file", "")) if isinstance(yaml_cfg, dict) else "",
        "imgsz": int((getattr(inner, "args", {}) or {}).get("imgsz", 640))
        if isinstance(getattr(inner, "args", None), dict)
        else 640,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(json.dumps({"ok": False, "error": "usage: validate_weights FILE"}))
        return 2
    try:
        report = inspect_weights(Path(argv[1]))
    except BaseException as exc:  # noqa: BLE001 - any failure to load means "not valid weights"
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:1000]}))
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
