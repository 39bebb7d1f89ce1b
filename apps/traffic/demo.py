"""Demo data of the traffic app: a camera with a counting line and a small detector.

The detector is yolo11n trained from scratch, on CPU, in about a minute on generated frames
(`fixtures/traffic_shapes.py`: red "cars" and blue "persons" on a grey road), with the recipe
below. The same recipe trains the tests' detector (`demo_weights_train`), whose exact counts on
a generated clip are asserted end to end, so what `make run` shows is what the tests check.
For real-world accuracy import official pretrained weights (docs/traffic.md).

So that the camera page has a last frame, line counts and a counts-over-time chart from the
start, the seed also counts the demo clip as three recordings of the past three hours.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.traffic.choices import DEFAULT_MODEL_NAME, MODEL_KIND
from apps.traffic.models import Camera
from core.storage import scratch_directory
from core.tenancy.actors import Actor
from core.tenancy.models import Organization

DEMO_CAMERA = "Demo crossing"
DEMO_RECORDINGS_HOURS_AGO = (3, 2, 1)
# Frames and the detector share one size: the demo clip is rendered at DEMO_IMGSZ pixels and
# tracked at that imgsz, exactly what the detector was trained on.
DEMO_IMGSZ = 128
DEMO_EPOCHS = 30
DEMO_DATASET = {"train": 96, "val": 24, "size": DEMO_IMGSZ, "seed": 3, "max_objects": 4}
# Why these: ultralytics' default `optimizer="auto"` picks AdamW at lr 0.0017 for short runs and
# accumulates gradients up to a nominal batch of 64 (`nbs`), so a minute of training makes about
# 45 optimizer steps and leaves a from-scratch model at 0.01-0.05 confidence. With `nbs` equal
# to the batch every batch is a step (180 steps) and AdamW at 0.002 reaches 0.75-0.9. Colour is
# what tells a "car" from a "person", so no HSV augmentation; no mosaic (the clip has whole
# objects on one road); `val=False` validates only after the last epoch (the per-epoch
# validation would cost a third of the time).
DEMO_BATCH = 16
DEMO_HYPERPARAMETERS: dict[str, Any] = {
    "optimizer": "AdamW",
    "lr0": 0.002,
    "nbs": DEMO_BATCH,
    "warmup_epochs": 1,
    "mosaic": 0.0,
    "close_mosaic": 0,
    "hsv_h": 0.0,
    "hsv_s": 0.0,
    "hsv_v": 0.0,
    "val": False,
}


def demo_training_params(*, epochs: int = DEMO_EPOCHS, imgsz: int = DEMO_IMGSZ) -> dict[str, Any]:
    """The `traffic.yolo_detector` training params of the demo detector."""
    return {
        "epochs": epochs,
        "imgsz": imgsz,
        "batch": DEMO_BATCH,
        "architecture": "yolo11n",
        "seed": 0,
        "hyperparameters": dict(DEMO_HYPERPARAMETERS),
    }


def demo_dataset_zip(path: Path) -> Path:
    """The demo detector's generated YOLO dataset zip."""
    from fixtures.traffic_shapes import shapes_dataset_zip

    return shapes_dataset_zip(path, **DEMO_DATASET)


def traffic_demo_seed(*, org: Organization, stdout: Any) -> None:
    """Idempotent: creates what is missing, leaves what exists."""
    from apps.traffic.services import camera_create

    actor = Actor.system(org)
    camera = Camera.objects.filter(organization=org, name=DEMO_CAMERA).first()
    if camera is None:
        camera = camera_create(
            actor=actor,
            name=DEMO_CAMERA,
            location="Generated demo scene",
            model_name=DEFAULT_MODEL_NAME,
            lines=[{"name": "stop-line", "points": [[0.05, 0.5], [0.95, 0.5]], "in_direction": "down"}],
            zones=[{"name": "lower-half", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}],
        )
        stdout.write(f"  camera {DEMO_CAMERA!r} with counting line 'stop-line'")
    clip = demo_clip_path()
    if not clip.exists():
        from fixtures.traffic_shapes import crossing_clip

        clip.parent.mkdir(parents=True, exist_ok=True)
        expected = crossing_clip(clip, size=DEMO_IMGSZ).expected
        counts = ", ".join(f"{category} {direction} {n}" for (category, direction), n in sorted(expected.items()))
        stdout.write(f"  demo clip {clip} (upload it to {DEMO_CAMERA!r}: stop-line should count {counts})")
    from ml.models import RegisteredModel

    if not RegisteredModel.objects.filter(organization=org, name=DEFAULT_MODEL_NAME, versions__isnull=False).exists():
        stdout.write(f"  training the demo detector ({DEMO_EPOCHS} epochs on generated frames, a minute on CPU) …")
        version = demo_detector_train(actor=actor)
        stdout.write(f"  detector {DEFAULT_MODEL_NAME} v{version.number}: mAP50 {version.metrics.get('mAP50')}")
    if not camera.videos.exists():
        demo_recordings_count(actor=actor, camera=camera, clip=clip, stdout=stdout)


def demo_recordings_count(*, actor: Actor, camera: Camera, clip: Path, stdout: Any) -> None:
    """Count the demo clip on the camera as recorded at ten past the hour, 3, 2 and 1 hours ago
    (each recording within one hourly bucket), with the jobs run inline."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.utils import timezone

    from apps.traffic.video_analysis import video_analysis_create
    from core.jobs.runner import job_execute

    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for hours_ago in DEMO_RECORDINGS_HOURS_AGO:
        upload = SimpleUploadedFile(clip.name, clip.read_bytes(), content_type="video/mp4")
        recorded_at = hour - timedelta(hours=hours_ago) + timedelta(minutes=10)
        video = video_analysis_create(actor=actor, upload=upload, camera=camera, recorded_at=recorded_at)
        job_execute(job_id=video.job_id)  # inline: the worker is not up yet while `make run` seeds
    crossings = camera.crossings.count()
    stdout.write(f"  counted the demo clip {len(DEMO_RECORDINGS_HOURS_AGO)} times: {crossings} line crossings")


def demo_clip_path() -> Path:
    """Where the seed writes the generated demo video (under VAR_DIR, not public media)."""
    return Path(settings.VAR_DIR) / "demo" / "traffic-crossing.mp4"


def demo_detector_train(*, actor: Actor, epochs: int = DEMO_EPOCHS, imgsz: int = DEMO_IMGSZ) -> Any:
    """Train the demo detector synchronously and register it as a version (production if first)."""
    from apps.traffic.datasets import dataset_materialise
    from ml.kinds import get_kind, report_nothing
    from ml.services import model_version_from_trained, registered_model_ensure

    kind = get_kind(MODEL_KIND)
    with scratch_directory(prefix="demo-detector-") as work:
        data = dataset_materialise(demo_dataset_zip(work / "shapes.zip"), work / "dataset")
        trained = kind.train(
            data=data,
            params=demo_training_params(epochs=epochs, imgsz=imgsz),
            report=report_nothing,
        )
    model = registered_model_ensure(actor=actor, name=DEFAULT_MODEL_NAME, kind=MODEL_KIND)
    return model_version_from_trained(actor=actor, registered_model=model, trained=trained)


def demo_weights_train(workdir: Path, *, device: str = "cpu") -> Path:
    """Train the demo detector with the demo recipe outside the registry; returns its `.pt`.

    For the tests and the benchmark: the same dataset, `data.yaml` handling and training call
    (`detector_fit`) as `demo_detector_train`, without storage or database.
    """
    from apps.traffic.datasets import dataset_extract
    from apps.traffic.training_recipe import detector_best_weights, detector_fit, yolo_from_architecture

    params = demo_training_params()
    zip_path = demo_dataset_zip(workdir / "shapes.zip")
    data_yaml = dataset_extract(zip_path, workdir / "dataset")
    trainer = detector_fit(
        yolo_from_architecture(params["architecture"]),
        data_yaml=data_yaml,
        workdir=workdir,
        epochs=params["epochs"],
        imgsz=params["imgsz"],
        batch=params["batch"],
        device=device,
        seed=params["seed"],
        hyperparameters=params["hyperparameters"],
    )
    target = workdir / "demo-detector.pt"
    target.write_bytes(detector_best_weights(trainer).read_bytes())
    return target
