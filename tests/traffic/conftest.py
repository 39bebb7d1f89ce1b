"""Traffic fixtures: tiny real YOLO weights trained once per session, generated datasets and clips."""

from __future__ import annotations

import random
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from fixtures.traffic_shapes import CLASS_NAMES, shapes_dataset_zip, shapes_image

TINY_IMGSZ = 64


def _train_weights(workdir: Path, *, epochs: int, images: int, imgsz: int, size: int) -> Path:
    """Train yolo11n from its yaml on generated shapes (offline) and return best.pt."""
    from apps.traffic.ml_offline import configure_ultralytics_offline

    configure_ultralytics_offline(workdir / "ultralytics-config")
    from ultralytics import YOLO

    dataset = workdir / "dataset"
    zip_path = shapes_dataset_zip(workdir / "shapes.zip", train=images, val=max(4, images // 4), size=size, seed=3)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(dataset)
    (dataset / "data.yaml").write_text(
        f"path: {dataset}\ntrain: images/train\nval: images/val\nnames:\n"
        + "".join(f"  {k}: {v}\n" for k, v in CLASS_NAMES.items())
    )
    model = YOLO("yolo11n.yaml")
    model.train(
        data=str(dataset / "data.yaml"),
        epochs=epochs,
        imgsz=imgsz,
        batch=16,
        device="cpu",
        workers=0,
        plots=False,
        amp=False,
        project=str(workdir / "runs"),
        name="train",
        exist_ok=True,
        verbose=False,
        seed=0,
        deterministic=True,
        mosaic=0.0,
        warmup_epochs=1,
        lr0=0.02,
        hsv_h=0.0,
        hsv_s=0.0,
        hsv_v=0.0,
    )
    assert model.trainer is not None
    best = Path(model.trainer.best)
    target = workdir / "weights.pt"
    shutil.copyfile(best if best.exists() else model.trainer.last, target)
    return target


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ultralytics detection checkpoint (yolo11n, 1 epoch at 64 px): fast, not accurate."""
    return _train_weights(tmp_path_factory.mktemp("tiny-yolo"), epochs=1, images=8, imgsz=TINY_IMGSZ, size=64)


@pytest.fixture(scope="session")
def shapes_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo detector (`apps.traffic.demo` recipe: yolo11n, 128 px, about a minute of CPU) that sees the shapes."""
    from apps.traffic.demo import demo_weights_train

    return demo_weights_train(tmp_path_factory.mktemp("demo-yolo"))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Refuse (and record) every outgoing connection and DNS lookup of this process.

    ultralytics reaches the network for fonts (plots, dataset checks), `yolo11n.pt` (the AMP check),
    hub events and update checks; anything the code under test attempts lands in the returned list.
    """
    import socket

    attempts: list[str] = []

    def refuse(what: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{what}{args[1:] if what.startswith('socket.') else args}")
            raise OSError(f"network disabled in this test ({what})")

        return refused

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    return attempts


def weights_upload(path: Path, name: str = "weights.pt") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, path.read_bytes(), content_type="application/octet-stream")


@pytest.fixture
def import_detector(org: Any) -> Callable[..., Any]:
    """`import_detector(weights_path, name=...)` → the imported ModelVersion of `org`."""
    from core.tenancy.actors import Actor
    from ml.services import model_version_import

    def make(weights: Path, name: str = "traffic-detector", organization: Any = None) -> Any:
        actor = Actor.system(organization or org)
        return model_version_import(
            actor=actor, name=name, kind="traffic.yolo_detector", upload=weights_upload(weights)
        )

    return make


@pytest.fixture
def detector(import_detector: Callable[..., Any], tiny_weights: Path) -> Any:
    return import_detector(tiny_weights)


def jpeg_upload(name: str = "frame.jpg", seed: int = 0, size: int = 64) -> SimpleUploadedFile:
    import cv2

    image, _ = shapes_image(random.Random(seed), size)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return SimpleUploadedFile(name, encoded.tobytes(), content_type="image/jpeg")
