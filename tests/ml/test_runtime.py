"""`ml.runtime`: the per-process cache of loaded versions and ML_DEVICE resolution."""

from __future__ import annotations

import pytest
import torch

from ml.runtime import DeviceUnavailable, cache_info, predict, resolve_device

pytestmark = pytest.mark.django_db

HAS_CUDA = torch.cuda.is_available()


def test_second_predict_uses_the_cached_model(org, ml_admin, train, settings):
    # given
    settings.ML_DEVICE = "cpu"
    version = train(org, user=ml_admin).version
    # when
    first = predict(version, [[-1.0, -1.0], [1.0, 1.0]])
    second = predict(version, [[-1.0, -1.0], [1.0, 1.0]])
    # then
    assert first.loaded_from_cache is False
    assert second.loaded_from_cache is True
    assert cache_info()["loads"] == 1
    assert cache_info()["hits"] == 1
    assert first.outputs == second.outputs
    assert first.outputs[0] < 0.5 < first.outputs[1]
    assert first.device == "cpu"


def test_cache_evicts_the_least_recently_used_version(org, import_version, settings):
    # given
    settings.ML_CACHE_SIZE = 1
    v1 = import_version(org)
    v2 = import_version(org)
    # when
    predict(v1, [[0.0, 0.0]])
    predict(v2, [[0.0, 0.0]])
    again = predict(v1, [[0.0, 0.0]])
    # then
    assert again.loaded_from_cache is False
    assert cache_info()["loads"] == 3
    assert cache_info()["versions"] == [v1.pk]


@pytest.mark.parametrize(
    ("requested", "expected"),
    [("cpu", "cpu"), ("CPU", "cpu"), ("auto", "cuda:0" if HAS_CUDA else "cpu")],
)
def test_device_resolution(settings, requested, expected):
    # given
    settings.ML_DEVICE = requested
    # then
    assert resolve_device() == expected


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a GPU")
@pytest.mark.parametrize("requested", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_is_refused_not_silently_cpu(settings, requested):
    # given
    settings.ML_DEVICE = requested
    # then
    with pytest.raises(DeviceUnavailable, match="0 CUDA device"):
        resolve_device()


@pytest.mark.skipif(not HAS_CUDA, reason="needs a GPU")
def test_cuda_with_a_gpu_runs_there(org, import_version, settings):
    # given
    settings.ML_DEVICE = "cuda"
    version = import_version(org)
    # when
    prediction = predict(version, [[1.0, 1.0]])
    # then
    assert resolve_device() == "cuda:0"
    assert prediction.device == "cuda:0"
    assert prediction.outputs[0] > 0.5


@pytest.mark.parametrize("requested", ["cuda:99", "cuda:x", "cuda:-1", "tpu"])
def test_impossible_devices_are_refused(settings, requested):
    # given
    settings.ML_DEVICE = requested
    # then
    with pytest.raises(DeviceUnavailable):
        resolve_device()


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a GPU")
def test_predict_on_a_missing_gpu_fails_before_loading(org, import_version, settings):
    # given
    settings.ML_DEVICE = "cuda"
    version = import_version(org)
    # when / then
    with pytest.raises(DeviceUnavailable):
        predict(version, [[1.0, 1.0]])
    assert cache_info()["loads"] == 0
