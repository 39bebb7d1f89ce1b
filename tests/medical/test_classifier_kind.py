"""The `medical.image_classifier` kind and its preprocessing: imaging, import, half precision, Grad-CAM."""

from __future__ import annotations

import io
import json
import pathlib
import zipfile
from typing import Any

import numpy as np
import pydicom
import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from monai.networks.nets import DenseNet121, resnet18
from pydicom.data import get_testdata_file

from apps.medical.imaging import ImageUnreadable, Preprocessing, dataset_frames, dataset_inputs, prepare
from tests.conftest import assert_error

CLASSES = ["normal", "abnormal"]


def _testfile(name: str) -> pydicom.Dataset:
    path = get_testdata_file(name)
    assert path is not None
    return pydicom.dcmread(str(path))


# --- imaging -----------------------------------------------------------------------------------


def test_ct_frames_are_in_hounsfield_units_and_windowed():
    # given a CT with Rescale Slope/Intercept
    ds = _testfile("CT_small.dcm")
    expected = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    # when
    (frame,) = dataset_frames(ds)
    # then
    np.testing.assert_allclose(frame, expected)
    # a soft-tissue preset maps center ± width/2 to 0..1
    preset = Preprocessing(input_size=128, window_center=40, window_width=400)
    windowed = prepare(frame, ds, preset)[0]
    np.testing.assert_allclose(windowed, np.clip((expected - (40 - 200)) / 400, 0, 1), atol=1e-6)
    # resized inputs are (1, S, S) float32; min-max when there is neither preset nor VOI window
    assert "WindowCenter" not in ds
    (small,) = dataset_inputs(ds, Preprocessing(input_size=32))
    assert small.shape == (1, 32, 32) and small.dtype == np.float32
    assert small.min() >= 0 and small.max() <= 1
    full = dataset_inputs(ds, Preprocessing(input_size=128))[0]
    assert full.min() == 0 and full.max() == 1
    z = dataset_inputs(ds, Preprocessing(input_size=32, normalise="zscore"))[0]
    assert abs(float(z.mean())) < 1e-4 and abs(float(z.std()) - 1) < 1e-3


def test_the_instance_window_is_used_without_a_preset():
    ds = _testfile("CT_small.dcm")
    ds.WindowCenter, ds.WindowWidth = 100, 50
    (frame,) = dataset_frames(ds)
    out = prepare(frame, ds, Preprocessing(input_size=128))[0]
    np.testing.assert_allclose(out, np.clip((frame - 75) / 50, 0, 1), atol=1e-6)


def test_monochrome1_is_inverted():
    ds = _testfile("CT_small.dcm")
    (frame,) = dataset_frames(ds)
    plain = prepare(frame, ds, Preprocessing(input_size=128))
    ds.PhotometricInterpretation = "MONOCHROME1"
    inverted = prepare(frame, ds, Preprocessing(input_size=128))
    np.testing.assert_allclose(inverted, 1 - plain, atol=1e-6)


def test_multiframe_gives_one_input_per_frame():
    ds = _testfile("emri_small.dcm")
    inputs = dataset_inputs(ds, Preprocessing(input_size=32))
    assert len(inputs) == int(ds.NumberOfFrames) == 10


def test_unreadable_images_say_why():
    no_pixels = _testfile("CT_small.dcm")
    del no_pixels.PixelData
    with pytest.raises(ImageUnreadable, match="no pixel data"):
        dataset_frames(no_pixels)
    with pytest.raises(ImageUnreadable, match="Colour"):
        dataset_frames(_testfile("SC_rgb.dcm"))
    odd = _testfile("CT_small.dcm")
    odd.PhotometricInterpretation = "HSV"
    with pytest.raises(ImageUnreadable, match="Unsupported photometric"):
        dataset_frames(odd)
    broken = _testfile("CT_small.dcm")
    broken.PixelData = broken.PixelData[:100]
    with pytest.raises(ImageUnreadable, match="could not be decoded"):
        dataset_frames(broken)


def test_preprocessing_round_trips_and_refuses_bad_values():
    preset = Preprocessing(input_size=64, window_center=-600, window_width=1500)
    assert Preprocessing.from_json(preset.to_json()) == preset
    for bad in ({"input_size": 8}, {"input_size": 64, "window_center": 1}, {"input_size": 64, "normalise": "x"}, {}):
        with pytest.raises(ValueError):
            Preprocessing.from_json(bad)


# --- the kind directly -------------------------------------------------------------------------


def _config(architecture: str = "densenet121", classes: list[str] | None = None, size: int = 32) -> dict[str, Any]:
    return {"architecture": architecture, "classes": classes or CLASSES, "preprocessing": {"input_size": size}}


def _zip(weights: bytes, config: dict[str, Any] | bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("model.pt", weights)
        archive.writestr("config.json", config if isinstance(config, bytes) else json.dumps(config))
    return out.getvalue()


def _state_bytes(network: torch.nn.Module) -> bytes:
    out = io.BytesIO()
    torch.save(network.state_dict(), out)
    return out.getvalue()


def _images(count: int, size: int = 32, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((1, size, size), dtype=np.float32) for _ in range(count)]


def test_import_serves_the_weights_it_was_given(api, org, tmp_path):
    # given a DenseNet121 trained elsewhere (here: a fresh one), zipped with its config
    from ml.runtime import explain, predict
    from ml.selectors import model_version_get

    torch.manual_seed(1)
    network = DenseNet121(spatial_dims=2, in_channels=1, out_channels=2).eval()
    upload = SimpleUploadedFile("classifier.zip", _zip(_state_bytes(network), _config()))
    # when
    response = api.post(
        "/api/v1/ml/models/imported-cxr/versions/",
        {"file": upload, "kind": "medical.image_classifier"},
        format="multipart",
    )
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["source"] == "imported" and body["input_schema"]["classes"] == CLASSES
    assert body["input_schema"]["architecture"] == "densenet121"
    version = model_version_get(org=org, name="imported-cxr", number=1)
    images = _images(5)
    served = np.asarray(predict(version, images).outputs)
    with torch.no_grad():
        raw = torch.softmax(network(torch.from_numpy(np.stack(images))), dim=1).numpy()
    np.testing.assert_allclose(served, raw, atol=1e-5)
    # Grad-CAM on DenseNet121 (class_layers.relu), in the runtime's inference context
    heatmaps = explain(version, images[:2], classes=[1, 0]).outputs
    assert [heat.shape for heat in heatmaps] == [(32, 32), (32, 32)]
    assert all(heat.dtype == np.float32 and heat.min() >= 0 and heat.max() <= 1 for heat in heatmaps)
    # predictions after explain are unchanged (Grad-CAM's hooks live on a private copy)
    np.testing.assert_allclose(np.asarray(predict(version, images).outputs), served, atol=1e-6)


class _Touch:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.marker,))


def test_import_refuses_what_is_not_a_matching_state_dict(api, tmp_path):
    from ml.models import RegisteredModel

    marker = tmp_path / "code-ran"
    evil = io.BytesIO()
    torch.save({"weight": _Touch(marker)}, evil)
    good_weights = _state_bytes(DenseNet121(spatial_dims=2, in_channels=1, out_channels=2))
    resnet_weights = _state_bytes(resnet18(spatial_dims=2, n_input_channels=1, num_classes=2))
    cases = {
        "pickle with code": _zip(evil.getvalue(), _config()),
        "garbage weights": _zip(b"not a torch file at all", _config()),
        "not a zip": b"\x00garbage" * 50,
        "a bare state dict": good_weights,
        "wrong architecture": _zip(resnet_weights, _config("densenet121")),
        "wrong class count": _zip(good_weights, _config(classes=["a", "b", "c"])),
        "bad config": _zip(good_weights, b"{not json"),
        "unknown architecture": _zip(good_weights, _config("vgg")),
        "no input size": _zip(good_weights, {"architecture": "densenet121", "classes": CLASSES, "preprocessing": {}}),
        "empty": b"",
    }
    for what, content in cases.items():
        upload = SimpleUploadedFile("classifier.zip", content)
        response = api.post(
            "/api/v1/ml/models/refused/versions/",
            {"file": upload, "kind": "medical.image_classifier"},
            format="multipart",
        )
        error = assert_error(response, 400)
        assert "file" in error["fields"], (what, error)
    assert not marker.exists(), "unpickling ran code"
    assert not RegisteredModel.objects.filter(name="refused").exists()


def test_half_path_and_batching_on_the_kind(tmp_path):
    # given a saved classifier
    from apps.medical.ml import IMAGE_CLASSIFIER
    from ml.kinds import Trained

    torch.manual_seed(0)
    network = resnet18(spatial_dims=2, n_input_channels=1, num_classes=2).eval()
    config = {**_config("resnet18"), "preprocessing": Preprocessing(input_size=32).to_json()}
    IMAGE_CLASSIFIER.save(Trained(model={"state_dict": network.state_dict(), "config": config}), tmp_path)
    images = _images((IMAGE_CLASSIFIER.max_batch_size or 64) + 3)  # more than one runtime batch
    full = IMAGE_CLASSIFIER.load(tmp_path, device="cpu", half=False)
    with torch.inference_mode():
        probabilities = np.asarray(IMAGE_CLASSIFIER.predict(full, images))
    assert probabilities.shape == (len(images), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-6)
    # the half path: weights and inputs in float16 (CPU kernels when this torch has them)
    half = IMAGE_CLASSIFIER.load(tmp_path, device="cpu", half=True)
    assert next(half.network.parameters()).dtype == torch.float16
    try:
        with torch.inference_mode():
            halved = np.asarray(IMAGE_CLASSIFIER.predict(half, images[:4]))
    except RuntimeError as exc:  # pragma: no cover - older CPU builds lack float16 convolutions
        pytest.skip(f"float16 convolutions unavailable on this CPU build: {exc}")
    np.testing.assert_allclose(halved, probabilities[:4], atol=2e-2)
    # a wrong input shape is a clear error
    with pytest.raises(ValueError, match=r"\(1, 32, 32\)"):
        IMAGE_CLASSIFIER.predict(full, [np.zeros((1, 16, 16), np.float32)])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_half_precision_on_cuda_matches_float32(tmp_path):  # pragma: no cover - GPU sessions only
    from apps.medical.ml import IMAGE_CLASSIFIER
    from ml.kinds import Trained

    torch.manual_seed(0)
    network = DenseNet121(spatial_dims=2, in_channels=1, out_channels=2).eval()
    config = {**_config(), "preprocessing": Preprocessing(input_size=64).to_json()}
    IMAGE_CLASSIFIER.save(Trained(model={"state_dict": network.state_dict(), "config": config}), tmp_path)
    images = _images(8, size=64)
    full = IMAGE_CLASSIFIER.load(tmp_path, device="cuda:0", half=False)
    half = IMAGE_CLASSIFIER.load(tmp_path, device="cuda:0", half=True)
    with torch.inference_mode():
        expected = np.asarray(IMAGE_CLASSIFIER.predict(full, images))
        got = np.asarray(IMAGE_CLASSIFIER.predict(half, images))
    np.testing.assert_allclose(got, expected, atol=1e-2)
    heatmaps = IMAGE_CLASSIFIER.explain(half, images[:2])
    assert all(heat.shape == (64, 64) and heat.min() >= 0 and heat.max() <= 1 for heat in heatmaps)


def test_training_params_are_validated_by_the_kind():
    from apps.medical.ml import classifier_params
    from core.errors import ValidationFailed

    assert classifier_params({}).architecture == "densenet121"
    with pytest.raises(ValidationFailed) as caught:
        classifier_params({"epochs": 1.5, "seed": True, "surprise": 1, "normalise": "none"})
    assert set(caught.value.fields) == {"epochs", "seed", "surprise", "normalise"}


def test_binary_metrics_at_the_argmax_operating_point():
    from apps.medical.classifier_metrics import classification_metrics

    # given 4 positives (2 found) and 4 negatives (1 false alarm)
    positive = [0.92, 0.8, 0.3, 0.2]
    negative = [0.6, 0.4, 0.08, 0.05]
    probabilities = np.asarray([[1 - p, p] for p in positive + negative])
    labels = np.asarray([1] * 4 + [0] * 4)
    # when
    metrics = classification_metrics(probabilities, labels, CLASSES)
    # then
    assert metrics["positive_class"] == "abnormal"
    assert metrics["sensitivity"] == 0.5 and metrics["specificity"] == 0.75
    assert metrics["accuracy"] == 0.625
    assert metrics["confusion_matrix"]["matrix"] == [[3, 1], [2, 2]]
    assert metrics["roc_auc"] == pytest.approx(0.75)  # 12 of the 16 positive-negative pairs ranked right
    assert 0 < metrics["youden_threshold"] <= 1 and metrics["roc_curve"]["fpr"][0] == 0
    bins = metrics["calibration"]["bins"]
    assert sum(row["count"] for row in bins) == 8
    top = next(row for row in bins if row["lower"] == 0.9)
    assert top["count"] == 3 and top["accuracy"] == 1.0  # 0.92 (a positive), 0.92 and 0.95 (negatives)
    assert metrics["per_class"]["normal"]["support"] == 4


def test_training_is_repeatable_with_a_seed():
    from apps.medical.ml import IMAGE_CLASSIFIER
    from apps.medical.training_data import ClassifierTrainingData, ImageSet
    from ml.kinds import report_nothing

    rng = np.random.default_rng(0)

    def images(count: int) -> ImageSet:
        return ImageSet(
            inputs=rng.random((count, 1, 16, 16), dtype=np.float32),
            labels=np.arange(count) % 2,
            patients=[f"p{i}" for i in range(count)],
            sop_instance_uids=[f"1.2.{i}" for i in range(count)],
        )

    data = ClassifierTrainingData(
        classes=CLASSES,
        preprocessing=Preprocessing(input_size=16),
        train=images(12),
        validation=images(6),
        fingerprint="f",
        summary={},
        split={},
    )
    params = {"architecture": "resnet18", "input_size": 16, "epochs": 1, "batch_size": 4}
    first = IMAGE_CLASSIFIER.train(data=data, params={**params, "seed": 5}, report=report_nothing)
    again = IMAGE_CLASSIFIER.train(data=data, params={**params, "seed": 5}, report=report_nothing)
    other = IMAGE_CLASSIFIER.train(data=data, params={**params, "seed": 6}, report=report_nothing)
    weights = [trained.model["state_dict"]["fc.weight"] for trained in (first, again, other)]
    assert torch.equal(weights[0], weights[1])
    assert not torch.equal(weights[0], weights[2])
