"""The serving path: every prediction of every domain goes through here.

    prediction = runtime.predict(version, inputs, **options)      # outputs + timings
    attributions = runtime.explain(version, inputs, **options)    # kind.explain (SHAP, Grad-CAM, ...)
    for output in runtime.stream(version, frames, **options): ... # stateful streams (tracking)
    encoder = runtime.preprocessor(version)                       # the version's recorded preprocessing

The runtime owns, for all of them: device resolution (`ML_DEVICE`) and precision (`ML_HALF`:
half on CUDA where the kind allows), a per-process LRU cache of loaded versions (`ML_CACHE_SIZE`)
so a request never reloads a model, batching (`kind.max_batch_size`), the inference context
(`torch.inference_mode()` for torch kinds), timing, per-version call statistics and serving telemetry
(`ml.telemetry`: Prometheus and per-minute rollups, no I/O per call), warm-up of
the production versions when a serving process starts (`ML_WARM_UP`), and releasing memory
(GPU included) when a version is evicted.

Loading: the first use of a version in a process fetches its artifact (verifying every file's
sha256 against the manifest) and calls the kind's `load`; concurrent first uses of the same
version wait for that one load, while requests for versions already loaded are served
meanwhile (the cache lock is never held during a load).

Domain code never holds a loaded model object; `load_version` is for `ml/` itself, tests and
benchmarks that compare our path with the raw library.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings

from ml import telemetry
from ml.artifacts import artifact_fetch
from ml.kinds import AnyKind, CapabilityMissing, get_kind

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


def resolve_half(kind: AnyKind, device: str) -> bool:
    """Half precision: only on CUDA, only for kinds that support it, unless `ML_HALF` is off."""
    return bool(device.startswith("cuda") and kind.supports_half and getattr(settings, "ML_HALF", True))


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
    kind: AnyKind
    model: Any
    device: str
    half: bool
    directory: Path
    load_seconds: float
    preprocessor: Any = None


@dataclass(frozen=True)
class Prediction:
    """Outputs of one predict/explain call, with its timing in milliseconds."""

    outputs: Sequence[Any]
    predict_ms: float
    loaded_from_cache: bool
    device: str


@dataclass
class CallStats:
    """What one process served with one version: calls, inputs and time spent (telemetry's source)."""

    calls: int = 0
    inputs: int = 0
    total_ms: float = 0.0
    errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "inputs": self.inputs, "total_ms": round(self.total_ms, 3), "errors": self.errors}


@dataclass
class _VersionCache:
    items: OrderedDict[int, LoadedVersion] = field(default_factory=OrderedDict)
    loading: dict[int, threading.Lock] = field(default_factory=dict)
    stats: dict[int, CallStats] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    loads: int = 0
    hits: int = 0

    def get(self, version: ModelVersion) -> tuple[LoadedVersion, bool]:
        key = version.pk
        with self.lock:
            item = self._hit(key)
            if item is not None:
                return item, True
            pending = self.loading.setdefault(key, threading.Lock())
        with pending:  # one load per version; other versions are served meanwhile
            with self.lock:
                item = self._hit(key)
                if item is not None:
                    return item, True
            try:
                item = _load(version)
            finally:
                with self.lock:
                    self.loading.pop(key, None)
            with self.lock:
                self.loads += 1
                self.items[key] = item
                evicted = []
                while len(self.items) > max(1, settings.ML_CACHE_SIZE):
                    evicted.append(self.items.popitem(last=False)[1])
        for old in evicted:
            _release(old)
        return item, False

    def _hit(self, key: int) -> LoadedVersion | None:
        item = self.items.get(key)
        if item is not None:
            self.items.move_to_end(key)
            self.hits += 1
        return item

    def record(self, version_id: int, *, inputs: int, ms: float, failed: bool = False) -> None:
        with self.lock:
            stats = self.stats.setdefault(version_id, CallStats())
            stats.calls += 1
            stats.inputs += inputs
            stats.total_ms += ms
            stats.errors += int(failed)

    def clear(self) -> None:
        with self.lock:
            items = list(self.items.values())
            self.items.clear()
            self.stats.clear()
            self.loads = self.hits = 0
        for item in items:
            _release(item)

    def info(self) -> dict[str, Any]:
        with self.lock:
            return {
                "size": len(self.items),
                "loads": self.loads,
                "hits": self.hits,
                "versions": list(self.items),
                "stats": {version_id: stats.as_dict() for version_id, stats in self.stats.items()},
            }


_cache = _VersionCache()


def _load(version: ModelVersion) -> LoadedVersion:
    kind = get_kind(version.kind)
    device = resolve_device()
    half = resolve_half(kind, device)
    started = time.perf_counter()
    directory = Path(settings.MODEL_CACHE_DIR) / f"v{version.pk}-{version.artifact_sha256[:12]}-{uuid.uuid4().hex[:8]}"
    artifact_fetch(prefix=version.artifact_path, manifest=version.manifest, destination=directory)
    try:
        model = kind.load(directory, device=device, half=half)
        with inference_context(kind):
            kind.warm_up(model)
        preprocessor = kind.preprocessor(model) if kind.supports("preprocessor") else None
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    seconds = time.perf_counter() - started
    logger.info("Loaded %s on %s%s in %.2fs", version, device, " (half)" if half else "", seconds)
    return LoadedVersion(
        version_id=version.pk,
        kind=kind,
        model=model,
        device=device,
        half=half,
        directory=directory,
        load_seconds=seconds,
        preprocessor=preprocessor,
    )


def _release(item: LoadedVersion) -> None:
    """Free an evicted version: the kind's own resources, its files, and CUDA's cached blocks.

    A request still running on it keeps its own reference, so it finishes normally.
    """
    try:
        item.kind.unload(item.model)
    except Exception:  # releasing must never break the request that caused the eviction
        logger.exception("Unloading version %s failed", item.version_id)
    shutil.rmtree(item.directory, ignore_errors=True)
    if item.device.startswith("cuda"):
        import torch

        item.model = None
        torch.cuda.empty_cache()


def load_version(version: ModelVersion) -> LoadedVersion:
    """The loaded model for `version`, from this process's cache when present (ml/, tests, benchmarks)."""
    return _cache.get(version)[0]


@contextlib.contextmanager
def inference_context(kind: AnyKind) -> Iterator[None]:
    """`torch.inference_mode()` for torch kinds (no autograd bookkeeping); nothing otherwise."""
    if kind.uses_torch:
        import torch

        with torch.inference_mode():
            yield
    else:
        yield


def _require(kind: AnyKind, capability: str) -> None:
    if not kind.supports(capability):
        raise CapabilityMissing(f"Model kind {kind.name} does not offer {capability!r}.")


def _batches(
    kind: AnyKind, inputs: Sequence[Any], options: dict[str, Any]
) -> list[tuple[Sequence[Any], dict[str, Any]]]:
    """`inputs` in the kind's batches, each with its options: those the kind names in
    `per_input_options` (one value per input) sliced alike, the others whole."""
    for name in kind.per_input_options:
        values = options.get(name)
        if values is not None and len(values) != len(inputs):
            raise ValueError(f"Option {name!r} needs one value per input: {len(values)} for {len(inputs)} inputs.")
    size = kind.max_batch_size
    if not size or len(inputs) <= size:
        return [(inputs, options)]
    batches = []
    for start in range(0, len(inputs), size):
        sliced = {
            name: value[start : start + size] if name in kind.per_input_options and value is not None else value
            for name, value in options.items()
        }
        batches.append((inputs[start : start + size], sliced))
    return batches


def _joined(parts: list[Sequence[Any]]) -> Sequence[Any]:
    if len(parts) == 1:
        return parts[0]
    import numpy as np

    if all(isinstance(part, np.ndarray) for part in parts):
        return cast(Sequence[Any], np.concatenate(cast(list[np.ndarray], parts)))
    return [output for part in parts for output in part]


def _call(version: ModelVersion, method: str, inputs: Sequence[Any], options: dict[str, Any]) -> Prediction:
    loaded, from_cache = _cache.get(version)
    if method != "predict":
        _require(loaded.kind, method)
    function = getattr(loaded.kind, method)
    started = time.perf_counter()
    failed = True
    try:
        with inference_context(loaded.kind):
            outputs = _joined(
                [
                    function(loaded.model, batch, **batch_options)
                    for batch, batch_options in _batches(loaded.kind, inputs, options)
                ]
            )
        failed = False
    finally:
        elapsed_ms = (time.perf_counter() - started) * 1000
        _record(version, method=method, inputs=len(inputs), ms=elapsed_ms, failed=failed, device=loaded.device)
    return Prediction(outputs=outputs, predict_ms=elapsed_ms, loaded_from_cache=from_cache, device=loaded.device)


def _record(version: ModelVersion, *, method: str, inputs: int, ms: float, failed: bool, device: str) -> None:
    """This process's per-version statistics and the serving telemetry (`ml.telemetry`) of one call."""
    _cache.record(version.pk, inputs=inputs, ms=ms, failed=failed)
    telemetry.record_call(version, method=method, inputs=inputs, ms=ms, failed=failed, device=device)


def predict(version: ModelVersion, inputs: Sequence[Any], **options: Any) -> Prediction:
    """The version's kind `predict` on `inputs` with the cached loaded model (batched, timed)."""
    return _call(version, "predict", inputs, options)


def explain(version: ModelVersion, inputs: Sequence[Any], **options: Any) -> Prediction:
    """The version's kind `explain` on `inputs`: one attribution per input (CapabilityMissing if none)."""
    return _call(version, "explain", inputs, options)


def stream(version: ModelVersion, inputs: Iterable[Any], **options: Any) -> Iterator[Any]:
    """The version's kind `stream` over `inputs`, consumed lazily (e.g. tracking over video frames).

    Each output is computed inside the inference context, which is left again before the output
    is handed to the caller, so the caller's own work between frames runs normally.
    """
    loaded, _ = _cache.get(version)
    _require(loaded.kind, "stream")
    outputs = loaded.kind.stream(loaded.model, inputs, **options)
    count, spent_ms, failed = 0, 0.0, True
    try:
        while True:
            started = time.perf_counter()
            with inference_context(loaded.kind):
                try:
                    output = next(outputs)
                except StopIteration:
                    failed = False
                    return
            spent_ms += (time.perf_counter() - started) * 1000
            count += 1
            yield output
    except GeneratorExit:  # the caller stopped consuming: not an error of the model
        failed = False
        raise
    finally:
        _record(version, method="stream", inputs=count, ms=spent_ms, failed=failed, device=loaded.device)


def preprocessor(version: ModelVersion) -> Any:
    """The version's recorded preprocessing (e.g. a feature encoder), built once per loaded version."""
    loaded, _ = _cache.get(version)
    _require(loaded.kind, "preprocessor")
    return loaded.preprocessor


def device_of(version: ModelVersion) -> str:
    """Where `version` runs in this process (loads it if needed)."""
    return _cache.get(version)[0].device


@contextlib.contextmanager
def loaded_for_training(version: ModelVersion) -> Iterator[Any]:
    """A private loaded copy of `version` for a warm start (fine-tuning), outside the serving cache.

    Training may run for hours and mutate what it was given, so it never shares the serving copy;
    the copy (and its files) is released when the block ends.
    """
    kind = get_kind(version.kind)
    device = resolve_device()
    directory = Path(settings.MODEL_CACHE_DIR) / f"parent-v{version.pk}-{uuid.uuid4().hex[:8]}"
    artifact_fetch(prefix=version.artifact_path, manifest=version.manifest, destination=directory)
    item = LoadedVersion(
        version_id=version.pk,
        kind=kind,
        model=None,
        device=device,
        half=False,
        directory=directory,
        load_seconds=0.0,
    )
    try:
        item.model = kind.load(directory, device=device, half=False)
        yield item.model
    finally:
        _release(item)


def warm_up(versions: Iterable[ModelVersion]) -> list[int]:
    """Load `versions` into this process's cache now (a failure is logged, not raised)."""
    warmed = []
    for version in versions:
        try:
            _cache.get(version)
            warmed.append(version.pk)
        except Exception:  # one broken version must not stop the process from serving the rest
            logger.exception("Warm-up of %s failed", version)
    return warmed


def warm_up_production() -> list[int]:
    """Load the production versions of every organization, most recently promoted first.

    Called when a serving process starts (gunicorn workers, Celery inference workers) unless
    `ML_WARM_UP=off`; stops at `ML_CACHE_SIZE` versions so warming never evicts.
    """
    if str(getattr(settings, "ML_WARM_UP", "production")).lower() != "production":
        return []
    from ml.choices import PRODUCTION_ALIAS
    from ml.models import ModelVersion

    versions = (
        ModelVersion.objects.filter(aliases__name=PRODUCTION_ALIAS)
        .select_related("registered_model")
        .order_by("-aliases__updated_at")[: max(1, settings.ML_CACHE_SIZE)]
    )
    return warm_up(list(versions))


def cache_info() -> dict[str, Any]:
    return _cache.info()


def cache_clear() -> None:
    """Forget every loaded version and this process's serving answers (tests, operators)."""
    from ml.selectors import serving_cache_clear

    _cache.clear()
    serving_cache_clear()
    telemetry.labels_clear()
