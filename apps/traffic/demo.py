"""Demo data of the traffic app: a camera with a counting line and a small detector.

The detector is yolo11n trained from scratch, on CPU, for about a minute on generated frames
(`fixtures/traffic_shapes.py`: red "cars" and blue "persons"), so a new user can try image
detection and video counting at once with no download. For real-world accuracy import
official pretrained weights (docs/traffic.md, "Import pretrained weights").
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.core.files.storage import default_storage

from apps.traffic.choices import DEFAULT_MODEL_NAME, MODEL_KIND
from apps.traffic.models import Camera
from core.tenancy.actors import Actor
from core.tenancy.models import Organization

DEMO_CAMERA = "Demo crossing"
DEMO_EPOCHS = 30
DEMO_IMGSZ = 96


def traffic_demo_seed(*, org: Organization, stdout: Any) -> None:
    """Idempotent: creates what is missing, leaves what exists."""
    from apps.traffic.services import camera_create

    actor = Actor.system(org)
    if not Camera.objects.filter(organization=org, name=DEMO_CAMERA).exists():
        camera_create(
            actor=actor,
            name=DEMO_CAMERA,
            location="Generated demo scene",
            model_name=DEFAULT_MODEL_NAME,
            lines=[{"name": "stop-line", "points": [[0.05, 0.5], [0.95, 0.5]], "in_direction": "down"}],
            zones=[{"name": "lower-half", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}],
        )
        stdout.write(f"  camera {DEMO_CAMERA!r} with counting line 'stop-line'")
    from ml.models import RegisteredModel

    if RegisteredModel.objects.filter(organization=org, name=DEFAULT_MODEL_NAME, versions__isnull=False).exists():
        return
    stdout.write(f"  training the demo detector ({DEMO_EPOCHS} epochs on generated frames, about a minute on CPU) …")
    version = demo_detector_train(actor=actor)
    stdout.write(f"  detector {DEFAULT_MODEL_NAME} v{version.number}: mAP50 {version.metrics.get('mAP50')}")


def demo_detector_train(*, actor: Actor, epochs: int = DEMO_EPOCHS, imgsz: int = DEMO_IMGSZ) -> Any:
    """Train the demo detector synchronously and register it as a version (production if first)."""
    from fixtures.traffic_shapes import shapes_dataset_zip
    from ml.kinds import get_kind
    from ml.services import model_version_from_trained, registered_model_ensure

    kind = get_kind(MODEL_KIND)
    with tempfile.TemporaryDirectory() as tmp:
        zip_path = shapes_dataset_zip(Path(tmp) / "shapes.zip", train=96, val=24, size=128, seed=3)
        with zip_path.open("rb") as handle:
            name = default_storage.save(f"traffic/org-{actor.organization.pk}/datasets/demo-shapes.zip", handle)
    try:
        trained = kind.train(
            data={"dataset": name},
            params={"epochs": epochs, "imgsz": imgsz, "batch": 16, "architecture": "yolo11n"},
            report=lambda **kwargs: None,
        )
    finally:
        default_storage.delete(name)
    model = registered_model_ensure(actor=actor, name=DEFAULT_MODEL_NAME, kind=MODEL_KIND)
    return model_version_from_trained(actor=actor, registered_model=model, trained=trained)
