"""The traffic training-data loader, and a kind that trains without touching the ORM or storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.files.storage import Storage, default_storage

from fixtures.traffic_shapes import shapes_dataset_zip


def _request(org: Any, name: str, sha256: str, scratch: Path) -> Any:
    from ml.kinds import TrainingRequest

    return TrainingRequest(organization=org, data={"dataset": name, "sha256": sha256}, params={}, scratch=scratch)


def test_the_loader_materialises_the_stored_zip_in_the_run_scratch_folder(org: Any, tmp_path: Path) -> None:
    # given a dataset zip in storage, as the training service stores it
    from core.storage import file_sha256

    zip_path = shapes_dataset_zip(tmp_path / "shapes.zip", train=2, val=1, size=32)
    with zip_path.open("rb") as handle:
        name = default_storage.save("traffic/org-1/datasets/d.zip", handle)
    scratch = tmp_path / "scratch-of-the-run"
    scratch.mkdir()

    # when the loader registered for the kind materialises it
    from apps.traffic.choices import MODEL_KIND
    from ml.kinds import training_data_load

    data = training_data_load(MODEL_KIND, _request(org, name, file_sha256(zip_path), scratch))

    # then the kind gets our own data.yaml inside the scratch folder, with the zip's sha256 and summary
    from apps.traffic.datasets import DetectorTrainingData

    assert isinstance(data, DetectorTrainingData)
    assert data.data_yaml.is_relative_to(scratch)
    written = yaml.safe_load(data.data_yaml.read_text())
    assert written["names"] == {0: "car", 1: "person"} and written["path"] == str((scratch / "dataset").resolve())
    assert (scratch / "dataset" / "images" / "train").is_dir()
    assert data.sha256 == file_sha256(zip_path)
    assert data.summary["train_images"] == 2 and data.summary["val_images"] == 1
    assert not (scratch / "dataset.zip").exists()  # only the extracted files stay


def test_the_loader_refuses_a_stored_zip_that_changed(org: Any, tmp_path: Path) -> None:
    from apps.traffic.datasets import detector_training_data
    from core.errors import ValidationFailed

    zip_path = shapes_dataset_zip(tmp_path / "shapes.zip", train=2, val=1, size=32)
    with zip_path.open("rb") as handle:
        name = default_storage.save("traffic/org-1/datasets/d.zip", handle)
    with pytest.raises(ValidationFailed, match="sha256"):
        detector_training_data(_request(org, name, "0" * 64, tmp_path))


def test_fine_tuning_starts_from_the_parent_weights_without_the_orm_or_storage(
    tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a materialised dataset and a loaded parent (what `ml` hands the kind for a fine-tune),
    # no database access at all (no `db` fixture: pytest-django refuses any query) and a storage
    # that refuses to open anything
    import shutil

    from apps.traffic import ml as traffic_ml
    from apps.traffic.datasets import dataset_materialise
    from ml.kinds import report_nothing

    data = dataset_materialise(shapes_dataset_zip(tmp_path / "d.zip", train=4, val=2, size=32), tmp_path / "d")
    parent_dir = tmp_path / "parent"
    parent_dir.mkdir()
    shutil.copyfile(tiny_weights, parent_dir / traffic_ml.WEIGHTS_FILE)
    parent = traffic_ml.YOLO_DETECTOR.load(parent_dir, device="cpu")
    started_from: list[Path] = []
    real_from_weights = traffic_ml.yolo_from_weights

    def recording_from_weights(weights: Path) -> Any:
        started_from.append(weights)
        return real_from_weights(weights)

    def no_storage(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the kind opened the default storage")

    monkeypatch.setattr(traffic_ml, "yolo_from_weights", recording_from_weights)
    monkeypatch.setattr(Storage, "open", no_storage)

    # when the kind trains with that parent
    trained = traffic_ml.YOLO_DETECTOR.train(
        data=data,
        params={"epochs": 1, "imgsz": 32, "batch": 4, "base_version_id": 7, "base_version": 1},
        report=report_nothing,
        parent=parent,
    )

    # then it started from the parent's weights file and records what it did, as before
    assert started_from == [parent.weights_path]
    assert trained.params["base_version_id"] == 7 and trained.params["architecture"] == ""
    assert trained.data_fingerprint == data.sha256
    assert trained.model_card == {"task": "detect", "framework": "ultralytics", "dataset": data.summary}
    assert trained.input_schema["names"] == {"0": "car", "1": "person"}
    assert trained.model[:2] == b"PK"  # a torch checkpoint
