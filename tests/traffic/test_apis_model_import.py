"""POST /api/v1/ml/models/{name}/versions/: importing detector weights through the generic registry API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import assert_error
from tests.traffic.conftest import TINY_IMGSZ, jpeg_upload, weights_upload

URL = "/api/v1/ml/models/traffic-detector/versions/"


def _stored_files(settings: Any) -> list[Path]:
    roots = [Path(settings.MEDIA_ROOT), Path(settings.ARTIFACT_ROOT)]
    return [path for root in roots if root.exists() for path in root.rglob("*") if path.is_file()]


def _nothing_stored(settings: Any) -> None:
    from ml.models import ModelVersion, RegisteredModel

    assert ModelVersion.objects.count() == 0
    assert RegisteredModel.objects.count() == 0
    assert _stored_files(settings) == []


def test_valid_weights_import_as_a_version_that_detects(api: Any, tiny_weights: Path) -> None:
    # when an ml-scoped key uploads real ultralytics detection weights
    response = api.post(
        URL,
        {"file": weights_upload(tiny_weights), "kind": "traffic.yolo_detector", "promote": "true"},
        format="multipart",
    )

    # then the version is created, validated out of process, with the checkpoint's classes
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"] == 1
    from ml.models import ModelVersion

    version = ModelVersion.objects.get(registered_model__name="traffic-detector", number=1)
    assert version.kind == "traffic.yolo_detector" and version.source == "imported"
    assert version.input_schema["names"] == {"0": "car", "1": "person"}
    assert version.model_card["validated_out_of_process"] is True

    # and the detection API serves it as the production detector
    detection = api.post(
        "/api/v1/traffic/detections/",
        {"image": jpeg_upload(), "conf": 0.001, "imgsz": TINY_IMGSZ},
        format="multipart",
    )
    assert detection.status_code == 201, detection.content
    assert detection.json()["model"] == {"name": "traffic-detector", "version": 1}


@pytest.mark.parametrize(("architecture", "task"), [("yolo11n-cls", "classify"), ("yolo11n-seg", "segment")])
def test_a_model_of_another_task_is_refused_with_nothing_stored(
    api: Any, settings: Any, tmp_path: Path, architecture: str, task: str
) -> None:
    # given real ultralytics weights of the wrong task (built from the packaged yaml: nothing downloads)
    from apps.traffic.ml_offline import configure_ultralytics_offline

    configure_ultralytics_offline(tmp_path / "cfg")
    from ultralytics import YOLO

    path = tmp_path / f"{architecture}.pt"
    YOLO(f"{architecture}.yaml").save(str(path))

    # when
    response = api.post(URL, {"file": weights_upload(path), "kind": "traffic.yolo_detector"}, format="multipart")

    # then the error says why, and nothing is stored
    error = assert_error(response, 400, "invalid_artifact")
    assert "Not a detection model" in error["message"] and repr(task) in error["message"], error
    _nothing_stored(settings)


class _HostilePickle:
    """Unpickling this runs `code` (what a hostile `.pt` does when loaded)."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (exec, (self.code,))


def test_a_hostile_checkpoint_runs_only_in_the_short_lived_validator_process(
    api: Any, settings: Any, tmp_path: Path
) -> None:
    # given a torch checkpoint whose unpickling records the id of the process that loads it
    import os

    import torch

    marker = tmp_path / "loaded-by-pid.txt"
    path = tmp_path / "hostile.pt"
    torch.save({"model": _HostilePickle(f"import os; open({str(marker)!r}, 'w').write(str(os.getpid()))")}, path)

    # when it is uploaded as detector weights
    response = api.post(URL, {"file": weights_upload(path), "kind": "traffic.yolo_detector"}, format="multipart")

    # then it was loaded (its code ran) only in another process, it is refused, and nothing is stored
    assert_error(response, 400, "invalid_artifact")
    assert marker.exists(), "the validator process should have loaded the file"
    assert int(marker.read_text()) != os.getpid()
    _nothing_stored(settings)


@pytest.mark.parametrize("content", [b"not a checkpoint", b"PK\x03\x04 broken zip"])
def test_garbage_is_refused_with_nothing_stored(api: Any, settings: Any, content: bytes) -> None:
    upload = SimpleUploadedFile("w.pt", content, content_type="application/octet-stream")
    assert_error(
        api.post(URL, {"file": upload, "kind": "traffic.yolo_detector"}, format="multipart"), 400, "invalid_artifact"
    )
    _nothing_stored(settings)


def test_a_key_without_the_ml_scope_is_403(api_client_for: Any, org: Any, settings: Any, tiny_weights: Path) -> None:
    client = api_client_for(org, scopes=("traffic",))
    response = client.post(
        URL, {"file": weights_upload(tiny_weights), "kind": "traffic.yolo_detector"}, format="multipart"
    )
    assert_error(response, 403)
    _nothing_stored(settings)
