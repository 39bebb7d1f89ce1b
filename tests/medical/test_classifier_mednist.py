"""The real-data check: a classifier trained through the API on MedNIST DICOMs stored in the
archive reaches the validation accuracy of a plain MONAI training loop written here, on the same
split, epochs, seed and augmentation (within 2 points).

The plain loop reads the same files straight from disk with pydicom (no archive, no job, no
registry), scales them itself, and trains a MONAI network with MONAI's transforms, DataLoader
and AdamW with a cosine schedule; only the split (which patients validate) is taken from the run, since it is what must
be the same.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from tests.medical.classifier_fixtures import archive_store, mednist_files, run_detail, series_labels, train_request

pytestmark = pytest.mark.django_db(transaction=True)

PARAMS: dict[str, Any] = {
    "architecture": "resnet18",
    "input_size": 32,
    "epochs": 4,
    "batch_size": 8,
    "learning_rate": 2e-3,
    "seed": 7,
    "validation_fraction": 0.5,
}


def _plain_monai_accuracy(
    images: np.ndarray, labels: np.ndarray, train: np.ndarray, validation: np.ndarray, classes: int
) -> float:
    from monai.data import DataLoader, Dataset
    from monai.networks.nets import resnet18
    from monai.transforms import Compose, RandFlipd, RandRotated, RandScaleIntensityd, RandShiftIntensityd

    seed = PARAMS["seed"]
    torch.manual_seed(seed)
    network = resnet18(spatial_dims=2, n_input_channels=1, num_classes=classes)
    augment = Compose(
        [
            RandFlipd(keys="image", prob=0.5, spatial_axis=1),
            RandRotated(keys="image", range_x=math.radians(15), prob=0.5, keep_size=True, padding_mode="zeros"),
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
        ]
    )
    augment.set_random_state(seed=seed)
    items = [{"image": images[i], "label": int(labels[i])} for i in train]
    loader = DataLoader(
        Dataset(items, transform=augment),
        batch_size=PARAMS["batch_size"],
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        drop_last=True,
    )
    optimizer = torch.optim.AdamW(network.parameters(), lr=PARAMS["learning_rate"], weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=PARAMS["epochs"])
    for _ in range(PARAMS["epochs"]):
        network.train()
        for batch in loader:
            optimizer.zero_grad()
            inputs = torch.as_tensor(batch["image"]).as_subclass(torch.Tensor).float()
            loss = torch.nn.functional.cross_entropy(network(inputs), torch.as_tensor(batch["label"]))
            loss.backward()
            optimizer.step()
        schedule.step()
    network.eval()
    with torch.no_grad():
        predicted = network(torch.from_numpy(images[validation])).argmax(dim=1).numpy()
    return float((predicted == labels[validation]).mean())


def test_api_training_matches_a_plain_monai_loop(api, org, tmp_path):
    # given 40 real images of each of MedNIST's 6 classes in the archive
    from apps.medical.training_data import classifier_training_data
    from ml.kinds import TrainingRequest
    from ml.models import TrainingRun

    torch.set_num_threads(2)
    files = mednist_files(40)
    instances = archive_store(org, [path for path, _ in files], tmp_path / "incoming")
    labels = [label for _, label in files]
    # when training through the API
    response = train_request(api, {"model": "mednist", "labels": series_labels(instances, labels), **PARAMS})
    assert response.status_code == 202, response.content
    run = run_detail(api, response.json()["id"])
    assert run["status"] == "succeeded", run["job"]
    api_accuracy = run["version"]["metrics"]["accuracy"]

    # and the same images, read plainly from disk
    classes = run["classes"]
    plain = []
    for path, _ in files:
        pixels = pydicom.dcmread(path).pixel_array.astype(np.float32)
        scaled = (pixels - pixels.min()) / (pixels.max() - pixels.min())  # min-max: no VOI window in these files
        size = PARAMS["input_size"]
        resized = Image.fromarray(scaled).resize((size, size), Image.Resampling.BILINEAR)  # the recorded resize
        plain.append(np.asarray(resized, dtype=np.float32)[np.newaxis])
    images = np.stack(plain)
    targets = np.asarray([classes.index(label) for label in labels])
    # on the run's split (which patients validate)
    stored = TrainingRun.objects.get(pk=run["id"])
    data = classifier_training_data(
        TrainingRequest(organization=org, data=stored.data, params=stored.params, scratch=tmp_path)
    )
    uid_to_row = {instance.sop_instance_uid: row for row, instance in enumerate(instances)}
    train_rows = np.asarray([uid_to_row[uid] for uid in data.train.sop_instance_uids])
    validation_rows = np.asarray([uid_to_row[uid] for uid in data.validation.sop_instance_uids])
    # (the archive's preprocessing gives exactly the plain arrays)
    np.testing.assert_allclose(data.validation.inputs, images[validation_rows], atol=1e-6)
    assert len(validation_rows) >= 100

    # then
    plain_accuracy = _plain_monai_accuracy(images, targets, train_rows, validation_rows, len(classes))
    assert plain_accuracy > 0.8, plain_accuracy  # both actually learned something
    assert abs(api_accuracy - plain_accuracy) <= 0.02, (api_accuracy, plain_accuracy)
    split: dict[str, Any] = run["version"]["metrics"]["split"]
    assert split["validation"]["images"] == len(validation_rows)
