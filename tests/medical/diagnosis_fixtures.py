"""A tiny real image classifier for the analysis and routing tests, and the MedNIST files it
reads (real 64x64 medical images wrapped as DICOM, `../shared/data/medical_mednist`).

The classifier is trained with `medical.image_classifier` itself (ResNet-18, 32x32 inputs, one
epoch, a few images per class): seconds on a CPU. The trained weights are kept for the session
(training is deterministic, and re-training per test would only cost time); each test registers
them as a version of its own organization, through the registry's services.

Beware the data set's layout: all 600 files share one StudyInstanceUID, with one series per
class; the series description names the class (never a feature here: the network sees pixels).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from fixtures.mednist import mednist_pick
from tests.conftest import SHARED_DATA

MEDNIST = SHARED_DATA / "medical_mednist"
CLASSES = ("CXR", "Hand")
INPUT_SIZE = 32
TRAIN_PER_CLASS = 6
MODEL_NAME = "xray-classifier"

requires_mednist = pytest.mark.skipif(not (MEDNIST / "labels.csv").exists(), reason="MedNIST sample data not present")


def mednist_files(label: str, *, start: int = 0, count: int = 3) -> list[Path]:
    """`count` MedNIST DICOM files of class `label`, in the labels file's order from `start`."""
    return [path for path, _ in mednist_pick(MEDNIST, count, [label], start=start)]


_TRAINED: dict[tuple[str, ...], Any] = {}


def _image_set(paths: Sequence[tuple[Path, int]], preprocessing: Any) -> Any:
    from apps.medical.imaging import dataset_inputs
    from apps.medical.training_data import ImageSet

    inputs, labels, patients, uids = [], [], [], []
    for path, label in paths:
        ds = pydicom.dcmread(path)
        inputs.append(dataset_inputs(ds, preprocessing)[0])
        labels.append(label)
        patients.append(str(ds.PatientID))
        uids.append(str(ds.SOPInstanceUID))
    return ImageSet(
        inputs=np.stack(inputs).astype(np.float32),
        labels=np.asarray(labels, dtype=np.int64),
        patients=patients,
        sop_instance_uids=uids,
    )


def trained_classifier(classes: Sequence[str] = CLASSES) -> Any:
    """`ml.kinds.Trained` of a tiny classifier of `classes`, trained once per session.

    Trained on images 100.. of each class, so the files the tests store (0..99) are unseen.
    """
    key = tuple(classes)
    if key in _TRAINED:
        return _TRAINED[key]
    import torch

    from apps.medical.imaging import Preprocessing
    from apps.medical.ml import IMAGE_CLASSIFIER
    from apps.medical.training_data import ClassifierTrainingData
    from ml.kinds import report_nothing

    torch.set_num_threads(1)
    preprocessing = Preprocessing(input_size=INPUT_SIZE, window_center=None, window_width=None)
    train, validation = [], []
    for index, label in enumerate(classes):
        files = mednist_files(label, start=50, count=TRAIN_PER_CLASS + 2)
        train += [(path, index) for path in files[:TRAIN_PER_CLASS]]
        validation += [(path, index) for path in files[TRAIN_PER_CLASS:]]
    fingerprint = hashlib.sha256("\n".join(str(path) for path, _ in train).encode()).hexdigest()
    data = ClassifierTrainingData(
        classes=list(classes),
        preprocessing=preprocessing,
        train=_image_set(train, preprocessing),
        validation=_image_set(validation, preprocessing),
        fingerprint=fingerprint,
        summary={"images": len(train) + len(validation), "source": "MedNIST sample (tests)"},
        split={"by": "patient", "train_images": len(train), "validation_images": len(validation)},
    )
    trained = IMAGE_CLASSIFIER.train(
        data=data,
        params={"architecture": "resnet18", "epochs": 1, "batch_size": 4, "input_size": INPUT_SIZE, "augment": False},
        report=report_nothing,
    )
    _TRAINED[key] = trained
    return trained


def classifier_version(org: Any, *, name: str = MODEL_NAME, classes: Sequence[str] = CLASSES) -> Any:
    """A `medical.image_classifier` version of `org` (its first: it becomes `production`)."""
    from core.tenancy.actors import Actor
    from ml.services import model_version_from_trained, registered_model_ensure

    actor = Actor.system(org)
    model = registered_model_ensure(actor=actor, name=name, kind="medical.image_classifier")
    return model_version_from_trained(actor=actor, registered_model=model, trained=trained_classifier(classes))
