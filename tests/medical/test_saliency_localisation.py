"""The Grad-CAM layer is recorded per version (new versions: the finer one; older versions keep
the last feature map), a config naming another layer is refused, and the maps are normalised
hottest = 1 (MONAI's default normaliser flips them).

Whether the peak lands on the nodule is checked on the demo's own classifier, which is trained
anyway (tests/medical/test_diagnosis_demo.py): a classifier good enough to localise takes a
minute of CPU, too long to train twice. The model here trains for one epoch: only its artifact
matters.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from apps.medical.imaging import Preprocessing, dataset_inputs
from apps.medical.ml import (
    CONFIG_FILE,
    GRADCAM_LAYERS,
    IMAGE_CLASSIFIER,
    LEGACY_GRADCAM_LAYERS,
    gradcam_normalise,
)
from apps.medical.training_data import ClassifierTrainingData, ImageSet
from fixtures.medical_synthetic import CLASSES, SyntheticImage, synthetic_chests
from ml.kinds import report_nothing

INPUT_SIZE = 48
TRAINING_IMAGES = 16

_CACHE: dict[str, Any] = {}


def _image_set(images: list[SyntheticImage], preprocessing: Preprocessing) -> ImageSet:
    return ImageSet(
        inputs=np.stack([dataset_inputs(image.dataset, preprocessing)[0] for image in images]).astype(np.float32),
        labels=np.asarray([CLASSES.index(image.label) for image in images], dtype=np.int64),
        patients=[image.patient_id for image in images],
        sop_instance_uids=[image.sop_uid for image in images],
    )


def _trained_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet18 trained for one epoch on generated chests (seconds), saved as a version's artifact."""
    if "directory" in _CACHE:
        return Path(_CACHE["directory"])
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    preprocessing = Preprocessing(input_size=INPUT_SIZE)
    images = list(synthetic_chests(TRAINING_IMAGES + 4, seed=11))
    data = ClassifierTrainingData(
        classes=list(CLASSES),
        preprocessing=preprocessing,
        train=_image_set(images[:TRAINING_IMAGES], preprocessing),
        validation=_image_set(images[TRAINING_IMAGES:], preprocessing),
        fingerprint=hashlib.sha256(b"synthetic-11").hexdigest(),
        summary={"images": len(images)},
        split={"by": "patient"},
    )
    trained = IMAGE_CLASSIFIER.train(
        data=data,
        params={
            "architecture": "resnet18",
            "input_size": INPUT_SIZE,
            "epochs": 1,
            "batch_size": 8,
            "learning_rate": 0.001,
            "augment": False,
            "seed": 0,
        },
        report=report_nothing,
    )
    directory = tmp_path_factory.mktemp("saliency-classifier")
    IMAGE_CLASSIFIER.save(trained, directory)
    _CACHE["directory"] = str(directory)
    _CACHE["input_schema"] = trained.input_schema
    return directory


def test_new_versions_record_the_finer_layer(tmp_path_factory: pytest.TempPathFactory) -> None:
    directory = _trained_directory(tmp_path_factory)
    config = json.loads((directory / CONFIG_FILE).read_text())
    assert config["gradcam_layer"] == GRADCAM_LAYERS["resnet18"] == "layer2+layer3"
    assert _CACHE["input_schema"]["gradcam_layer"] == "layer2+layer3"
    loaded = IMAGE_CLASSIFIER.load(directory, device="cpu")
    assert loaded.gradcam_layer == "layer2+layer3"
    image = next(i for i in synthetic_chests(2, seed=12) if i.nodule is not None)
    with torch.inference_mode():
        (heat,) = IMAGE_CLASSIFIER.explain(loaded, [dataset_inputs(image.dataset, loaded.preprocessing)[0]])
    assert heat.shape == (INPUT_SIZE, INPUT_SIZE) and heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)


def test_versions_without_a_recorded_layer_keep_the_legacy_one(tmp_path_factory: pytest.TempPathFactory) -> None:
    # given an artifact written before the layer was recorded
    directory = _trained_directory(tmp_path_factory)
    legacy = tmp_path_factory.mktemp("legacy-classifier")
    config = json.loads((directory / CONFIG_FILE).read_text())
    del config["gradcam_layer"]
    (legacy / CONFIG_FILE).write_text(json.dumps(config))
    (legacy / "model.pt").write_bytes((directory / "model.pt").read_bytes())
    # when it loads and explains
    loaded = IMAGE_CLASSIFIER.load(legacy, device="cpu")
    image = next(i for i in synthetic_chests(2, seed=12) if i.nodule is not None)
    with torch.inference_mode():
        (heat,) = IMAGE_CLASSIFIER.explain(loaded, [dataset_inputs(image.dataset, loaded.preprocessing)[0]])
    # then it uses the layer it always used, and the map is still a [0, 1] heat at the input size
    assert loaded.gradcam_layer == LEGACY_GRADCAM_LAYERS["resnet18"] == "layer4"
    assert heat.shape == (INPUT_SIZE, INPUT_SIZE) and heat.min() >= 0.0 and heat.max() <= 1.0


def test_a_config_naming_an_unknown_layer_is_refused(tmp_path_factory: pytest.TempPathFactory) -> None:
    directory = _trained_directory(tmp_path_factory)
    broken = tmp_path_factory.mktemp("broken-classifier")
    config = {**json.loads((directory / CONFIG_FILE).read_text()), "gradcam_layer": "layer2+fc"}
    (broken / CONFIG_FILE).write_text(json.dumps(config))
    (broken / "model.pt").write_bytes((directory / "model.pt").read_bytes())
    with pytest.raises(ValueError, match="gradcam_layer"):
        IMAGE_CLASSIFIER.load(broken, device="cpu")


def test_the_normaliser_makes_the_hottest_cell_one_not_zero() -> None:
    """MONAI's default CAM normaliser flips maps ((min, max) → (1, 0)); ours must not."""
    heat = torch.tensor([[[[0.0, 1.0], [3.0, 2.0]]], [[[5.0, 5.0], [5.0, 5.0]]]])
    scaled = gradcam_normalise(heat)
    assert np.allclose(scaled[0, 0].numpy(), [[0.0, 1 / 3], [1.0, 2 / 3]], atol=1e-6)
    assert scaled[1].abs().max().item() == 0.0  # a constant map says nothing: no heat
