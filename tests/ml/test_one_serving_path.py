"""The one serving path, checked over every domain app (a new domain is covered without edits):
domain code reaches models only through `ml.runtime`'s predict/explain/stream/preprocessor."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parents[2] / "apps"
# Holding a loaded model (or the runtime's cache) would bypass timing, the inference context,
# device and precision handling, batching and the call counters.
BYPASSES = re.compile(r"\bload_version\b|runtime\._cache\b|\bloaded_for_training\b|\.kind\.(track|predict)\(")


@pytest.mark.parametrize("app", sorted(path.name for path in APPS.iterdir() if (path / "apps.py").exists()))
def test_no_domain_module_holds_a_loaded_model(app: str) -> None:
    # given every module of the domain app
    offenders = [
        f"{path.relative_to(APPS.parent)}:{number}: {line.strip()}"
        for path in sorted((APPS / app).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if BYPASSES.search(line)
    ]
    # then none loads a version or calls a kind itself
    assert offenders == []
