"""POST /api/v1/traffic/training-runs/ and weight import through the registry."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from fixtures.traffic_shapes import shapes_dataset_zip
from tests.conftest import assert_error
from tests.traffic.conftest import weights_upload

URL = "/api/v1/traffic/training-runs/"


def _zip_upload(path: Path) -> SimpleUploadedFile:
    return SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/zip")


@pytest.mark.django_db(transaction=True)
def test_train_a_tiny_model_from_a_zip_through_the_api(api: Any, tmp_path: Path) -> None:
    # given a generated YOLO dataset
    dataset = shapes_dataset_zip(tmp_path / "shapes.zip", train=8, val=4, size=64)

    # when
    response = api.post(
        URL,
        {
            "dataset": _zip_upload(dataset),
            "model": "city-detector",
            "epochs": 2,
            "imgsz": 64,
            "batch": 8,
            "architecture": "yolo11n",
        },
        format="multipart",
    )

    # then a job on the training queue ran and produced version 1 with per-class metrics
    assert response.status_code == 202, response.content
    run = api.get(f"{URL}{response.json()['id']}/").json()
    assert run["status"] == "succeeded", run
    assert [m["epoch"] for m in run["live_metrics"]] == [1, 2]
    assert {"box_loss", "cls_loss", "mAP50", "mAP50-95"} <= set(run["live_metrics"][-1])
    metrics = run["version"]["metrics"]
    assert {"mAP50", "mAP50-95", "precision", "recall", "per_class"} <= set(metrics)
    assert run["version"]["number"] == 1
    from core.jobs.models import Job

    assert Job.objects.get(pk=run["job"]["id"]).queue == "training"

    # and the trained model serves detections right away
    from tests.traffic.conftest import jpeg_upload

    detection = api.post(
        "/api/v1/traffic/detections/",
        {"image": jpeg_upload(), "model": "city-detector", "conf": 0.001},
        format="multipart",
    )
    assert detection.status_code == 201, detection.content
    assert detection.json()["model"] == {"name": "city-detector", "version": 1}


def _zip(files: dict[str, bytes | str], *, compression: int = zipfile.ZIP_DEFLATED) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return SimpleUploadedFile("dataset.zip", buffer.getvalue(), content_type="application/zip")


def _jpeg() -> bytes:
    import cv2
    import numpy as np

    return cv2.imencode(".jpg", np.full((32, 32, 3), 90, np.uint8))[1].tobytes()


DATA_YAML = "train: images/train\nval: images/train\nnames:\n  0: car\n"


@pytest.mark.parametrize(
    ("files", "status"),
    [
        ({"images/train/a.jpg": "x", "labels/train/a.txt": "0 0.5 0.5 0.1 0.1"}, 400),  # no data.yaml
        ({"data.yaml": DATA_YAML, "images/train/a.jpg": _jpeg(), "labels/train/a.txt": "0 1.5 0.5 0.1 0.1"}, 400),
        ({"data.yaml": DATA_YAML, "images/train/a.jpg": _jpeg(), "labels/train/a.txt": "3 0.5 0.5 0.1 0.1"}, 400),
        ({"data.yaml": DATA_YAML, "images/train/a.jpg": b"not a jpeg", "labels/train/a.txt": "0 0.5 0.5 0.1 0.1"}, 400),
        ({"data.yaml": DATA_YAML, "../evil.txt": "x", "images/train/a.jpg": _jpeg()}, 400),  # zip slip
        ({"data.yaml": DATA_YAML, "/etc/evil": "x", "images/train/a.jpg": _jpeg()}, 400),
        ({"data.yaml": "train: /etc\nnames: [car]\n", "images/train/a.jpg": _jpeg()}, 400),
        ({"data.yaml": ": : not yaml [", "images/train/a.jpg": _jpeg()}, 400),
        ({"data.yaml": DATA_YAML, "images/train/a.jpg": _jpeg()}, 400),  # no labels at all
    ],
)
def test_malformed_datasets_are_400_with_nothing_stored(api: Any, settings: Any, files: dict, status: int) -> None:
    response = api.post(URL, {"dataset": _zip(files), "model": "m", "epochs": 1, "imgsz": 64}, format="multipart")
    assert_error(response, status)
    _assert_nothing_stored(settings)


def test_zip_bomb_and_not_a_zip(api: Any, settings: Any) -> None:
    bomb = _zip({"data.yaml": DATA_YAML, "images/train/big.jpg": b"\0" * (20 * 1024 * 1024)})
    assert_error(api.post(URL, {"dataset": bomb, "model": "m"}, format="multipart"), 413)
    junk = SimpleUploadedFile("d.zip", b"PK\x03\x04 garbage", content_type="application/zip")
    assert_error(api.post(URL, {"dataset": junk, "model": "m"}, format="multipart"), 400)
    _assert_nothing_stored(settings)


def test_training_needs_admin_or_ml_scope(api_client_for: Any, org: Any, tmp_path: Path) -> None:
    client = api_client_for(org, scopes=("traffic",))
    dataset = shapes_dataset_zip(tmp_path / "shapes.zip", train=2, val=1, size=32)
    assert_error(client.post(URL, {"dataset": _zip_upload(dataset), "model": "m"}, format="multipart"), 403)


def _assert_nothing_stored(settings: Any) -> None:
    from ml.models import RegisteredModel, TrainingRun

    assert TrainingRun.objects.count() == 0
    assert RegisteredModel.objects.count() == 0
    media = Path(settings.MEDIA_ROOT)
    assert not media.exists() or not [p for p in media.rglob("*") if p.is_file()]


# --- Import of pretrained weights ----------------------------------------------------------------


def _import(actor_org: Any, upload: SimpleUploadedFile, *, role: str = "org_admin", scopes: tuple = ()) -> Any:
    from core.tenancy.actors import Actor
    from ml.services import model_version_import

    actor = Actor(organization=actor_org, role=role, scopes=frozenset(scopes))
    return model_version_import(actor=actor, name="imported", kind="traffic.yolo_detector", upload=upload)


def test_import_validates_out_of_process_and_records_names(org: Any, tiny_weights: Path) -> None:
    version = _import(org, weights_upload(tiny_weights))
    assert version.source == "imported"
    assert version.input_schema["names"] == {"0": "car", "1": "person"}
    assert version.model_card["validated_out_of_process"] is True
    from core.audit.models import AuditEvent

    assert AuditEvent.objects.filter(organization=org, action="ml.version.import").exists()


@pytest.mark.parametrize(
    "content", [b"", b"not a checkpoint", b"PK\x03\x04 broken zip", b"\x80\x04\x95 pickle but not torch"]
)
def test_import_rejects_garbage(org: Any, content: bytes) -> None:
    from core.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as error:
        _import(org, SimpleUploadedFile("w.pt", content, content_type="application/octet-stream"))
    assert error.value.code == "invalid_artifact"


def test_import_rejects_a_classification_model(org: Any, tmp_path: Path) -> None:
    from apps.traffic.ml_offline import configure_ultralytics_offline
    from core.errors import ValidationFailed

    configure_ultralytics_offline(tmp_path / "cfg")
    from ultralytics import YOLO

    classifier = YOLO("yolo11n-cls.yaml")
    path = tmp_path / "cls.pt"
    classifier.save(str(path))
    with pytest.raises(ValidationFailed, match="Not a detection model"):
        _import(org, weights_upload(path))


def test_import_refused_to_non_admins(org: Any, tiny_weights: Path) -> None:
    from core.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        _import(org, weights_upload(tiny_weights), role="traffic_operator", scopes=("traffic",))
