"""Inference runtime: device resolution and a per-process LRU cache of loaded versions.

A request never reloads a model: the first use of a version in a process fetches its
artifact (verifying every file's sha256 against the manifest), calls the kind's `load` on the
resolved device and keeps the result; later calls reuse it. Torch kinds predict under
`torch.inference_mode()`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from ml.artifacts import artifact_fetch
from ml.kinds import ModelKind, get_kind

if TYPE_CHECKING:
    from ml.models import ModelVersion

logger = logging.getLogger(__name__)


class DeviceUnavailable(RuntimeError):
    """ML_DEVICE asks for a device this machine does not have."""


def resolve_device(requested: str | None = None) -> str:
    """Map `ML_DEVICE` (`auto`, `cpu`, `cuda`, `cuda:N`) to a concrete torch device string.

    `auto` picks `cuda` when torch sees a GPU and `cpu` otherwise. Explicit CUDA requests on a
    machine without one raise DeviceUnavailable rather than silently running on CPU.
    """
    requested = (requested or settings.ML_DEVICE or "auto").strip().lower()
    if requested == "cpu":
        return "cpu"
    cuda_available, cuda_count = _cuda_state()
    if requested == "auto":
        return "cuda:0" if cuda_available else "cpu"
    if requested == "cuda" or requested.startswith("cuda:"):
        index = 0 if requested == "cuda" else _parse_index(requested)
        if not cuda_available or index >= cuda_count:
            raise DeviceUnavailable(f"ML_DEVICE={requested} but this machine has {cuda_count} CUDA device(s).")
        return f"cuda:{index}"
    raise DeviceUnavailable(f"ML_DEVICE must be auto, cpu, cuda or cuda:N; got {requested!r}.")


def _parse_index(requested: str) -> int:
    try:
        index = int(requested.split(":", 1)[1])
    except ValueError as exc:
        raise DeviceUnavailable(f"Bad CUDA device {requested!r}; use cuda:N.") from exc
    if index < 0:  # torch would read a negative index as "the current device", not what was asked
        raise DeviceUnavailable(f"Bad CUDA device {requested!r}; use cuda:N with N >= 0.")
    return index


def _cuda_state() -> tuple[bool, int]:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency, but kinds need not use it
        return False, 0
    available = torch.cuda.is_available()
    return available, torch.cuda.device_count() if available else 0


@dataclass
class LoadedVersion:
    """A version loaded in this process: the kind's loaded object and where it runs."""

    version_id: int
    kind: ModelKind
    model: Any
    device: str
    directory: Path
    load_seconds: float


@dataclass(frozen=True)
class Prediction:
    """Outputs of one predict call, with timings in milliseconds."""

    outputs: list[Any]
    predict_ms: float
    loaded_from_cache: bool
    device: str


class _VersionCache:
    def __init__(self) -> None:
        self._items: OrderedDict[int, LoadedVersion] = OrderedDict()
        self._lock = threading.RLock()
        self.loads = 0
        self.hits = 0

    def get(self, version: ModelVersion) -> tuple[LoadedVersion, bool]:
        with self._lock:
            item = self._items.get(version.pk)
            if item is not None:
                self._items.move_to_end(version.pk)
                self.hits += 1
                return item, True
            item = _load(version)
            self.loads += 1
            self._items[version.pk] = item
            while len(self._items) > max(1, settings.ML_CACHE_SIZE):
                _, evicted = self._items.popitem(last=False)
                shutil.rmtree(evicted.directory, ignore_errors=True)
            return item, False

    def clear(self) -> None:
        with self._lock:
            for item in self._items.values():
                shutil.rmtree(item.directory, ignore_errors=True)
            self._items.clear()
            self.loads = self.hits = 0

    def info(self) -> dict[str, Any]:
        with self._lock:
            return {"size": len(self._items), "loads": self.loads, "hits": self.hits, "versions": list(self._items)}


_cache = _VersionCache()


def _load(version: ModelVersion) -> LoadedVersion:
    kind = get_kind(version.kind)
    device = resolve_device()
    started = time.perf_counter()
    directory = Path(settings.MODEL_CACHE_DIR) / f"v{version.pk}-{version.artifact_sha256[:12]}-{uuid.uuid4().hex[:8]}"
    artifact_fetch(prefix=version.artifact_path, manifest=version.manifest, destination=directory)
    model = kind.load(directory, device=device)
    seconds = time.perf_counter() - started
    logger.info("Loaded %s on %s in %.2fs", version, device, seconds)
    return LoadedVersion(
        version_id=version.pk, kind=kind, model=model, device=device, directory=directory, load_seconds=seconds
    )


def load_version(version: ModelVersion) -> LoadedVersion:
    """The loaded model for `version`, from this process's cache when present."""
    return _cache.get(version)[0]


@contextlib.contextmanager
def inference_context(kind: ModelKind) -> Iterator[None]:
    if kind.uses_torch:
        import torch

        with torch.inference_mode():
            yield
    else:
        yield


def predict(version: ModelVersion, inputs: Sequence[Any], **options: Any) -> Prediction:
    """Run the version's kind `predict` on `inputs` with the cached loaded model."""
    loaded, from_cache = _cache.get(version)
    started = time.perf_counter()
    with inference_context(loaded.kind):
        outputs = loaded.kind.predict(loaded.model, inputs, **options)
    return Prediction(
        outputs=outputs,
        predict_ms=(time.perf_counter() - started) * 1000,
        loaded_from_cache=from_cache,
        device=loaded.device,
    )


def cache_info() -> dict[str, Any]:
    return _cache.info()


def cache_clear() -> None:
    _cache.clear()
