"""POST /api/v1/traffic/training-runs/ and weight import through the registry."""

from __future__ import annotations

import io
import stat
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
def test_train_a_tiny_model_from_a_zip_through_the_api(api: Any, tmp_path: Path, no_network: list[str]) -> None:
    # given a generated YOLO dataset (both classes in the validation split) and no network at all
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
    # and nothing tried to reach the network (fonts, AMP-check weights, hub events, update checks)
    assert no_network == []
    # and every epoch reported its losses and validation metrics, in order
    assert [m["epoch"] for m in run["live_metrics"]] == [1, 2]
    for epoch in run["live_metrics"]:
        assert {"box_loss", "cls_loss", "mAP50", "mAP50-95", "precision", "recall"} <= set(epoch)
        assert isinstance(epoch["box_loss"], float) and epoch["box_loss"] > 0
        assert isinstance(epoch["cls_loss"], float) and epoch["cls_loss"] > 0
        assert isinstance(epoch["mAP50"], float) and 0 <= epoch["mAP50"] <= 1
    # and the version stores overall and per-class mAP50, mAP50-95, precision and recall
    metrics = run["version"]["metrics"]
    assert {"mAP50", "mAP50-95", "precision", "recall", "per_class"} <= set(metrics)
    assert set(metrics["per_class"]) == {"car", "person"}
    for values in metrics["per_class"].values():
        assert set(values) == {"mAP50", "mAP50-95", "precision", "recall"}
        assert all(isinstance(value, float) and 0 <= value <= 1 for value in values.values())
    assert run["version"]["number"] == 1
    from core.jobs.models import Job
    from ml.models import ModelVersion

    job = Job.objects.get(pk=run["job"]["id"])
    assert job.queue == "training" and job.progress == 1.0
    version = ModelVersion.objects.get(registered_model__name="city-detector", number=1)
    assert version.source == "trained" and version.metrics["per_class"] == metrics["per_class"]

    # and the trained model serves detections right away
    from tests.traffic.conftest import jpeg_upload

    detection = api.post(
        "/api/v1/traffic/detections/",
        {"image": jpeg_upload(), "model": "city-detector", "conf": 0.001},
        format="multipart",
    )
    assert detection.status_code == 201, detection.content
    assert detection.json()["model"] == {"name": "city-detector", "version": 1}


@pytest.mark.django_db(transaction=True)
def test_fine_tune_an_imported_version_through_the_api(
    api: Any, import_detector: Any, tiny_weights: Path, tmp_path: Path, no_network: list[str]
) -> None:
    # given imported weights as version 1 of the detector
    base = import_detector(tiny_weights)
    dataset = shapes_dataset_zip(tmp_path / "shapes.zip", train=8, val=4, size=64, seed=5)

    # when a fine-tune of version 1 is requested
    response = api.post(
        URL,
        {
            "dataset": _zip_upload(dataset),
            "model": "traffic-detector",
            "epochs": 1,
            "imgsz": 64,
            "batch": 8,
            "base_version": base.number,
        },
        format="multipart",
    )

    # then version 2 is trained from version 1's weights, offline, and records its parent
    assert response.status_code == 202, response.content
    run = api.get(f"{URL}{response.json()['id']}/").json()
    assert run["status"] == "succeeded", run
    assert run["params"]["base_version"] == base.number and "architecture" not in run["params"]
    assert no_network == []
    from ml.models import ModelVersion

    version = ModelVersion.objects.get(registered_model__name="traffic-detector", number=2)
    assert version.parent_id == base.pk and version.source == "trained"
    # and the API's `base_version` became the run's parent_version, which `ml` loaded for the kind
    from ml.models import TrainingRun

    assert TrainingRun.objects.get(pk=run["id"]).parent_version_id == base.pk
    assert set(version.metrics["per_class"]) == {"car", "person"}
    # and a base version that does not exist is a 404 with nothing stored
    missing = api.post(
        URL, {"dataset": _zip_upload(dataset), "model": "traffic-detector", "base_version": 9}, format="multipart"
    )
    assert_error(missing, 404)


def _zip(
    files: dict[str, bytes | str], *, compression: int = zipfile.ZIP_DEFLATED, links: tuple[str, ...] = ()
) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
        for name in links:  # a symbolic link entry (what `zip --symlinks` writes)
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return SimpleUploadedFile("dataset.zip", buffer.getvalue(), content_type="application/zip")


def _jpeg() -> bytes:
    import cv2
    import numpy as np

    return cv2.imencode(".jpg", np.full((32, 32, 3), 90, np.uint8))[1].tobytes()


DATA_YAML = "train: images/train\nval: images/train\nnames:\n  0: car\n"
GOOD_LABEL = "0 0.5 0.5 0.1 0.1"


def _valid_files(**changes: bytes | str | None) -> dict[str, bytes | str]:
    """A valid one-image dataset with `changes` applied (None removes a file): one fault per case."""
    files: dict[str, bytes | str | None] = {
        "data.yaml": DATA_YAML,
        "images/train/a.jpg": _jpeg(),
        "labels/train/a.txt": GOOD_LABEL,
    }
    for name, content in changes.items():
        files[name.replace("__", "/")] = content
    return {name: content for name, content in files.items() if content is not None}


def test_the_valid_base_dataset_is_accepted(api: Any) -> None:
    # given the dataset every malformed case below starts from (so each case fails for its own fault)
    # when it is uploaded (the job is enqueued on commit, which this non-transactional test never reaches)
    response = api.post(URL, {"dataset": _zip(_valid_files()), "model": "m", "epochs": 1}, format="multipart")

    # then it is accepted and queued for training
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued"


@pytest.mark.parametrize(
    ("files", "code", "message"),
    [
        pytest.param(_valid_files(**{"data.yaml": None}), "invalid_dataset", "no data.yaml", id="no-data-yaml"),
        pytest.param(
            _valid_files(**{"labels/train/a.txt": "0 1.5 0.5 0.1 0.1"}), "invalid_dataset", "[0, 1]", id="label-above-1"
        ),
        pytest.param(
            _valid_files(**{"labels/train/a.txt": "0 0.5 -0.2 0.1 0.1"}),
            "invalid_dataset",
            "[0, 1]",
            id="label-below-0",
        ),
        pytest.param(
            _valid_files(**{"labels/train/a.txt": "3 0.5 0.5 0.1 0.1"}), "invalid_dataset", "class 3", id="label-class"
        ),
        pytest.param(
            _valid_files(**{"labels/train/a.txt": "0 0.5 0.5"}), "invalid_dataset", "class cx cy w h", id="label-short"
        ),
        pytest.param(
            _valid_files(**{"images/train/a.jpg": b"not a jpeg"}), "invalid_dataset", "does not decode", id="not-image"
        ),
        pytest.param(
            _valid_files(**{"images/train/a.jpg": _jpeg()[:200]}), "invalid_dataset", "does not decode", id="truncated"
        ),
        pytest.param(_valid_files(**{"../evil.txt": "x"}), "invalid_dataset", "Unsafe path", id="zip-slip-dotdot"),
        pytest.param(
            _valid_files(**{"images/../../evil.txt": "x"}), "invalid_dataset", "Unsafe path", id="zip-slip-nested"
        ),
        pytest.param(_valid_files(**{"/etc/evil": "x"}), "invalid_dataset", "Unsafe path", id="zip-slip-absolute"),
        pytest.param(_valid_files(**{"..\\evil.txt": "x"}), "invalid_dataset", "Unsafe path", id="zip-slip-backslash"),
        pytest.param(
            _valid_files(**{"data.yaml": "train: /etc\nnames: [car]\n"}),
            "invalid_dataset",
            "relative folder",
            id="yaml-absolute-train",
        ),
        pytest.param(
            _valid_files(**{"data.yaml": ": : not yaml ["}), "invalid_dataset", "not valid YAML", id="not-yaml"
        ),
        pytest.param(
            _valid_files(**{"labels/train/a.txt": None}), "invalid_dataset", "No labelled boxes", id="no-labels"
        ),
    ],
)
def test_malformed_datasets_are_400_with_nothing_stored(
    api: Any, settings: Any, files: dict[str, bytes | str], code: str, message: str
) -> None:
    # when a zip with exactly one fault is uploaded
    response = api.post(URL, {"dataset": _zip(files), "model": "m", "epochs": 1, "imgsz": 64}, format="multipart")

    # then it is refused for that fault, and nothing is stored
    error = assert_error(response, 400, code)
    assert message in error["message"], error
    _assert_nothing_stored(settings)


def test_a_link_in_the_archive_is_400(api: Any, settings: Any) -> None:
    response = api.post(URL, {"dataset": _zip(_valid_files(), links=("images/train/b.jpg",)), "model": "m"})
    error = assert_error(response, 400, "invalid_dataset")
    assert "link" in error["message"]
    _assert_nothing_stored(settings)


def test_zip_bombs_are_400_with_nothing_stored(api: Any, settings: Any) -> None:
    # a member that expands more than the allowed ratio
    bomb = _zip(_valid_files(**{"images/train/big.jpg": b"\0" * (20 * 1024 * 1024)}))
    assert_error(api.post(URL, {"dataset": bomb, "model": "m"}, format="multipart"), 400, "zip_bomb")
    # an archive whose members together expand beyond the uncompressed limit
    settings.TRAFFIC_MAX_DATASET_UNCOMPRESSED_BYTES = 1000
    many = _zip(
        _valid_files(**{f"images/train/pad{i}.txt": b"x" * 600 for i in range(3)}), compression=zipfile.ZIP_STORED
    )
    assert_error(api.post(URL, {"dataset": many, "model": "m"}, format="multipart"), 400, "zip_bomb")
    # an archive with more entries than allowed
    settings.TRAFFIC_MAX_DATASET_UNCOMPRESSED_BYTES = 8 * 1024 * 1024 * 1024
    settings.TRAFFIC_MAX_DATASET_FILES = 2
    assert_error(api.post(URL, {"dataset": _zip(_valid_files()), "model": "m"}, format="multipart"), 400, "zip_bomb")
    _assert_nothing_stored(settings)


def test_not_a_zip_is_400_and_an_oversized_upload_is_413(api: Any, settings: Any) -> None:
    junk = SimpleUploadedFile("d.zip", b"PK\x03\x04 garbage", content_type="application/zip")
    assert_error(api.post(URL, {"dataset": junk, "model": "m"}, format="multipart"), 400, "invalid_dataset")
    empty = SimpleUploadedFile("d.zip", b"", content_type="application/zip")
    assert_error(api.post(URL, {"dataset": empty, "model": "m"}, format="multipart"), 400)
    settings.TRAFFIC_MAX_DATASET_BYTES = 100
    assert_error(api.post(URL, {"dataset": _zip(_valid_files()), "model": "m"}, format="multipart"), 413)
    _assert_nothing_stored(settings)


def test_other_organization_training_runs_and_models_are_404(api: Any, other_api: Any, tmp_path: Path) -> None:
    # given a queued training run of acme (non-transactional test: the job never starts)
    dataset = shapes_dataset_zip(tmp_path / "shapes.zip", train=2, val=1, size=32)
    run = api.post(URL, {"dataset": _zip_upload(dataset), "model": "acme-detector", "epochs": 1}, format="multipart")
    assert run.status_code == 202, run.content

    # then globex cannot read it, nor its job, nor fine-tune acme's model
    assert_error(other_api.get(f"{URL}{run.json()['id']}/"), 404)
    assert_error(other_api.get(run.json()["job"]["url"]), 404)
    assert_error(other_api.get("/api/v1/traffic/models/acme-detector/class-map/"), 404)
    fine_tune = other_api.post(
        URL, {"dataset": _zip_upload(dataset), "model": "acme-detector", "base_version": 1}, format="multipart"
    )
    assert_error(fine_tune, 404)


def test_training_needs_admin_or_ml_scope(api_client_for: Any, org: Any, tmp_path: Path) -> None:
    client = api_client_for(org, scopes=("traffic",))
    dataset = shapes_dataset_zip(tmp_path / "shapes.zip", train=2, val=1, size=32)
    assert_error(client.post(URL, {"dataset": _zip_upload(dataset), "model": "m"}, format="multipart"), 403)


def _assert_nothing_stored(settings: Any) -> None:
    from core.jobs.models import Job
    from ml.models import RegisteredModel, TrainingRun

    assert TrainingRun.objects.count() == 0
    assert RegisteredModel.objects.count() == 0
    assert Job.objects.count() == 0
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
