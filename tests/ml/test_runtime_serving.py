"""`ml.runtime` as the one serving path: cache locking, eviction, batching, capabilities, streams,
timing, warm-up, and the warm-start copy training gets. A real (tiny torch) kind underneath."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile

from core.tenancy.actors import Actor
from ml import runtime
from ml.kinds import CapabilityMissing, register_kind, unregister_kind
from ml.services import model_alias_set, model_version_import
from tests.ml.tiny_kind import TinyLogReg, state_dict_bytes

pytestmark = pytest.mark.django_db

PROBE_KIND = "tests.probe"


class ProbeKind(TinyLogReg):
    """TinyLogReg plus every optional capability, instrumented so tests can see what the runtime did."""

    name = PROBE_KIND
    max_batch_size = 3

    def __init__(self) -> None:
        self.load_gate: dict[int, threading.Event] = {}  # weight[0] → released when set
        self.loads: list[float] = []
        self.batches: list[int] = []
        self.unloaded: list[float] = []
        self.warmed: list[float] = []
        self.grad_enabled_in_predict: list[bool] = []
        self.predict_sleep = 0.0

    def load(self, directory: Path, *, device: str, half: bool = False) -> torch.nn.Linear:
        model = super().load(directory, device=device, half=half)
        key = float(model.weight[0, 0].detach())
        gate = self.load_gate.get(int(key))
        if gate is not None:
            assert gate.wait(timeout=10), "the test never released this load"
        self.loads.append(key)
        return model

    def predict(self, loaded: torch.nn.Linear, inputs: Sequence[Any], **options: Any) -> list[Any]:
        self.batches.append(len(inputs))
        self.grad_enabled_in_predict.append(torch.is_grad_enabled())
        if self.predict_sleep:
            time.sleep(self.predict_sleep)
        return super().predict(loaded, inputs, **options)

    def explain(self, loaded: torch.nn.Linear, inputs: Sequence[Any], **options: Any) -> list[Any]:
        # contribution of each coordinate to the logit: w_i * x_i
        weights = loaded.weight[0].tolist()
        return [[w * x for w, x in zip(weights, point, strict=True)] for point in inputs]

    def stream(self, loaded: torch.nn.Linear, inputs: Iterable[Any], **options: Any) -> Iterator[Any]:
        running = 0.0
        for point in inputs:
            running += float(self.predict(loaded, [point])[0])
            yield {"running_sum": running, "grad_enabled": torch.is_grad_enabled()}

    def preprocessor(self, loaded: torch.nn.Linear) -> Any:
        return {"n_features": int(loaded.weight.shape[1])}

    def warm_up(self, loaded: torch.nn.Linear) -> None:
        self.warmed.append(float(loaded.weight[0, 0].detach()))

    def unload(self, loaded: torch.nn.Linear) -> None:
        self.unloaded.append(float(loaded.weight[0, 0].detach()))


@pytest.fixture
def probe() -> Iterator[ProbeKind]:
    kind = ProbeKind()
    register_kind(kind)
    yield kind
    unregister_kind(PROBE_KIND)


def _version(org: Any, weight: float, name: str = "probe") -> Any:
    upload = SimpleUploadedFile("weights.pt", state_dict_bytes((weight, weight), 0.0))
    return model_version_import(actor=Actor.system(org), name=name, kind=PROBE_KIND, upload=upload)


def test_a_cold_load_does_not_block_requests_for_loaded_versions(org, probe, settings):
    # given: version 1 is loaded; version 2's load will hang until released
    settings.ML_CACHE_SIZE = 4
    warm, cold = _version(org, 1.0), _version(org, 2.0)
    runtime.predict(warm, [[1.0, 1.0]])
    probe.load_gate[2] = threading.Event()
    loader = threading.Thread(target=runtime.predict, args=(cold, [[1.0, 1.0]]))
    loader.start()
    time.sleep(0.2)  # the loader thread is now inside kind.load for version 2
    # when: a request for the warm version arrives meanwhile
    started = time.perf_counter()
    served = runtime.predict(warm, [[1.0, 1.0]])
    waited = time.perf_counter() - started
    probe.load_gate[2].set()
    loader.join(timeout=10)
    # then: it was served from the cache without waiting for the cold load
    assert served.loaded_from_cache is True
    assert waited < 0.15
    assert probe.loads == [1.0, 2.0]


def test_concurrent_first_uses_of_one_version_load_it_once(org, probe):
    # given
    version = _version(org, 3.0)
    probe.load_gate[3] = threading.Event()
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(runtime.predict(version, [[0.5, 0.5]]))) for _ in range(4)
    ]
    # when
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    probe.load_gate[3].set()
    for thread in threads:
        thread.join(timeout=10)
    # then
    assert probe.loads == [3.0]
    assert len(results) == 4
    assert sorted(r.loaded_from_cache for r in results) == [False, True, True, True]


def test_eviction_unloads_the_least_recently_used_version(org, probe, settings):
    # given
    settings.ML_CACHE_SIZE = 1
    first, second = _version(org, 1.0), _version(org, 2.0)
    runtime.predict(first, [[1.0, 1.0]])
    directory = runtime.load_version(first).directory
    # when
    runtime.predict(second, [[1.0, 1.0]])
    # then: the kind released version 1 and its files are gone
    assert probe.unloaded == [1.0]
    assert not directory.exists()
    assert runtime.cache_info()["versions"] == [second.pk]


def test_predict_is_split_into_the_kinds_batches_and_joined_in_order(org, probe):
    # given: max_batch_size 3, seven points with rising x
    version = _version(org, 1.0)
    points = [[float(i) - 3.0, 0.0] for i in range(7)]
    # when
    prediction = runtime.predict(version, points)
    # then
    assert probe.batches[-3:] == [3, 3, 1]
    expected = [float(torch.sigmoid(torch.tensor(p[0]))) for p in points]
    assert prediction.outputs == pytest.approx(expected, abs=1e-6)


def test_torch_kinds_predict_without_autograd(org, probe):
    # given
    version = _version(org, 1.0)
    # when
    runtime.predict(version, [[1.0, 1.0]])
    # then
    assert probe.grad_enabled_in_predict == [False]


def test_predict_ms_measures_the_kinds_predict(org, probe):
    # given: a predict that takes 60 ms
    version = _version(org, 1.0)
    runtime.predict(version, [[0.0, 0.0]])  # load outside the measurement
    probe.predict_sleep = 0.06
    # when
    prediction = runtime.predict(version, [[0.0, 0.0]])
    # then
    assert 60 <= prediction.predict_ms < 1000
    stats = runtime.cache_info()["stats"][version.pk]
    assert stats["calls"] == 2
    assert stats["inputs"] == 2
    assert stats["total_ms"] >= 60


def test_explain_goes_through_the_runtime(org, probe):
    # given
    version = _version(org, 2.0)
    # when
    explained = runtime.explain(version, [[1.0, -0.5]])
    # then
    assert explained.outputs == [pytest.approx([2.0, -1.0])]


def test_a_missing_capability_is_a_clear_error(org, import_version):
    # given: the plain tiny kind offers no explain and no stream
    version = import_version(org)
    # then
    with pytest.raises(CapabilityMissing, match="explain"):
        runtime.explain(version, [[1.0, 1.0]])
    with pytest.raises(CapabilityMissing, match="stream"):
        list(runtime.stream(version, [[1.0, 1.0]]))


def test_stream_runs_each_step_in_the_inference_context_but_not_the_caller(org, probe):
    # given
    version = _version(org, 1.0)
    seen_by_caller: list[bool] = []
    # when
    outputs = []
    for output in runtime.stream(version, iter([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])):
        seen_by_caller.append(torch.is_grad_enabled())
        outputs.append(output)
    # then: 0.5 + 0.5 + 0.5, computed under inference mode, while the caller ran normally
    assert [o["running_sum"] for o in outputs] == pytest.approx([0.5, 1.0, 1.5])
    assert [o["grad_enabled"] for o in outputs] == [False, False, False]
    assert seen_by_caller == [True, True, True]
    assert runtime.cache_info()["stats"][version.pk]["inputs"] == 3


def test_preprocessor_is_the_kinds_and_built_once(org, probe):
    # given
    version = _version(org, 1.0)
    # when
    first = runtime.preprocessor(version)
    second = runtime.preprocessor(version)
    # then
    assert first == {"n_features": 2}
    assert first is second
    assert probe.loads == [1.0]


def test_loading_warms_the_model_up_once(org, probe):
    # given
    version = _version(org, 4.0)
    # when
    runtime.predict(version, [[1.0, 1.0]])
    runtime.predict(version, [[1.0, 1.0]])
    # then
    assert probe.warmed == [4.0]


def test_warm_up_production_loads_every_production_version(org, other_org, probe, settings):
    # given: acme's production is v2 (v1 stays unused); globex has one version
    settings.ML_CACHE_SIZE = 8
    _version(org, 1.0)
    v2 = _version(org, 2.0)
    model_alias_set(actor=Actor.system(org), name="probe", alias="production", version_number=v2.number)
    theirs = _version(other_org, 5.0)
    # when
    warmed = runtime.warm_up_production()
    # then
    assert sorted(warmed) == sorted([v2.pk, theirs.pk])
    assert sorted(probe.loads) == [2.0, 5.0]


def test_warm_up_can_be_turned_off(org, probe, settings):
    # given
    settings.ML_WARM_UP = "off"
    _version(org, 1.0)
    # then
    assert runtime.warm_up_production() == []
    assert probe.loads == []


def test_training_gets_a_private_copy_released_afterwards(org, probe):
    # given
    version = _version(org, 6.0)
    served = runtime.load_version(version)
    # when
    with runtime.loaded_for_training(version) as parent:
        copy_weight = float(parent.weight[0, 0].detach())
        parent.weight.data.fill_(0.0)  # training mutates its copy
    # then: the serving copy is untouched, the private copy was unloaded
    assert copy_weight == 6.0
    assert float(served.model.weight[0, 0].detach()) == 6.0
    assert probe.unloaded == [0.0]  # the mutated private copy, not the serving one


@pytest.mark.django_db(transaction=True)
def test_a_starting_worker_process_warms_up_in_the_background(org, probe, settings):
    # given
    settings.ML_CACHE_SIZE = 8
    version = _version(org, 7.0)
    from celery.signals import worker_process_init

    # when: Celery starts a worker process
    worker_process_init.send(sender=None)
    deadline = time.monotonic() + 10
    while version.pk not in runtime.cache_info()["versions"] and time.monotonic() < deadline:
        time.sleep(0.05)
    # then
    assert version.pk in runtime.cache_info()["versions"]
    assert probe.loads == [7.0]


def test_per_input_options_are_sliced_with_the_batches(org, probe, monkeypatch):
    # given: a kind whose `weights` option holds one value per input, max_batch_size 3
    monkeypatch.setattr(ProbeKind, "per_input_options", ("weights",))
    seen: list[tuple[int, list[float], str]] = []

    def predict(self, loaded, inputs, *, weights, label):
        seen.append((len(inputs), list(weights), label))
        return [w * x[0] for w, x in zip(weights, inputs, strict=True)]

    monkeypatch.setattr(ProbeKind, "predict", predict)
    version = _version(org, 1.0)
    points = [[float(i), 0.0] for i in range(7)]
    # when
    prediction = runtime.predict(version, points, weights=[10.0 * i for i in range(7)], label="whole")
    # then: each batch got its own slice of `weights` and the whole of `label`, in order
    assert seen == [(3, [0.0, 10.0, 20.0], "whole"), (3, [30.0, 40.0, 50.0], "whole"), (1, [60.0], "whole")]
    assert list(prediction.outputs) == [10.0 * i * i for i in range(7)]
    # and a per-input option of the wrong length is refused before any batch runs
    with pytest.raises(ValueError, match="one value per input"):
        runtime.predict(version, points, weights=[1.0], label="whole")
    assert len(seen) == 3
