"""The `traffic.yolo_detector` ModelKind: ultralytics YOLO detection models in the registry.

The only module of the traffic app that imports ultralytics or torch. Artifacts are the
ultralytics `.pt` checkpoint (`model.pt`), a pickle-based format that can run code when
loaded: imports are validated out of process (`apps.traffic.validate_weights`) and accepted
only from org admins / keys with the `ml` scope (`loads_code = True`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.traffic.choices import MODEL_KIND
from apps.traffic.limits import limit
from apps.traffic.ml_offline import OFFLINE_ENV, configure_ultralytics_offline
from ml.kinds import ArtifactRejected, ImportedArtifact, ModelKind, ReportFn, Trained, register_kind

WEIGHTS_FILE = "model.pt"
ARCHITECTURES = (
    "yolo11n",
    "yolo11s",
    "yolo11m",
    "yolo11l",
    "yolo11x",
    "yolov8n",
    "yolov8s",
    "yolov8m",
    "yolov8l",
    "yolov8x",
)
DEFAULT_IMGSZ = 640


def _ultralytics_ready() -> None:
    configure_ultralytics_offline(Path(settings.VAR_DIR) / "ultralytics")


@dataclass
class LoadedDetector:
    """A YOLO model loaded in this process, with the lock that serialises its predictor."""

    yolo: Any
    device: str
    half: bool
    names: dict[int, str]
    weights_path: Path
    imgsz: int
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class ImageDetections:
    """The detections of one image, in pixel coordinates of the image as sent."""

    boxes: list[list[float]]
    class_ids: list[int]
    confidences: list[float]
    width: int
    height: int


@dataclass(frozen=True)
class TrackedFrame:
    """The tracker's output for one frame: boxes with track ids and class ids."""

    index: int
    boxes: list[list[float]]
    track_ids: list[int]
    class_ids: list[int]
    confidences: list[float]


def _resolved_torch_device(device: str) -> str:
    return device.split(":", 1)[1] if device.startswith("cuda:") else device


class YoloDetector(ModelKind):
    """ultralytics YOLO object detector (detect task), trained here or imported as a `.pt`."""

    name = MODEL_KIND
    artifact_format = "ultralytics-pt"
    loads_code = True
    uses_torch = True
    import_filename = WEIGHTS_FILE

    # --- Training ---------------------------------------------------------------------------

    def train(
        self, *, data: Any, params: dict[str, Any], report: ReportFn, parent: LoadedDetector | None = None
    ) -> Trained:
        """Train or fine-tune on a validated dataset zip stored in the default storage.

        Args:
            data: `{"dataset": <storage name of the zip>, "sha256": ..., "summary": {...}}`.
            params: `epochs`, `imgsz`, `batch`, and `architecture` or `base_version_id`; `seed`.
            report: progress callback; receives per-epoch losses and validation metrics.

        Returns:
            Trained with the best checkpoint's bytes as `model` and per-class metrics.
        """
        from django.core.files.storage import default_storage

        from apps.traffic.datasets import dataset_extract

        _ultralytics_ready()
        from ultralytics import YOLO

        from ml.runtime import resolve_device

        epochs = int(params.get("epochs", 10))
        imgsz = int(params.get("imgsz", DEFAULT_IMGSZ))
        batch = int(params.get("batch", 16))
        device = resolve_device()
        scratch = Path(settings.MODEL_CACHE_DIR) / "scratch"
        scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=scratch) as tmp:
            work = Path(tmp)
            zip_path = work / "dataset.zip"
            with default_storage.open(data["dataset"], "rb") as source, zip_path.open("wb") as out:
                shutil.copyfileobj(source, out)
            data_yaml = dataset_extract(zip_path, work / "dataset")
            zip_path.unlink()
            if params.get("base_version_id"):
                start = self._base_weights(int(params["base_version_id"]), work / "base")
                model = YOLO(str(start))
            else:
                model = yolo_from_architecture(params.get("architecture") or "yolo11n")

            reported: set[int] = set()

            def on_epoch_end(trainer: Any) -> None:
                # the final validation of best.pt fires this event again, past the last epoch
                if trainer.epoch in reported or trainer.epoch >= trainer.epochs:
                    return
                reported.add(trainer.epoch)
                losses = trainer.label_loss_items(trainer.tloss, prefix="train")
                validation = trainer.metrics or {}
                metrics = {
                    "epoch": trainer.epoch + 1,
                    "epochs": trainer.epochs,
                    "box_loss": _round(losses.get("train/box_loss")),
                    "cls_loss": _round(losses.get("train/cls_loss")),
                    "dfl_loss": _round(losses.get("train/dfl_loss")),
                    "precision": _round(validation.get("metrics/precision(B)")),
                    "recall": _round(validation.get("metrics/recall(B)")),
                    "mAP50": _round(validation.get("metrics/mAP50(B)")),
                    "mAP50-95": _round(validation.get("metrics/mAP50-95(B)")),
                }
                report(
                    progress=(trainer.epoch + 1) / trainer.epochs,
                    message=f"Epoch {trainer.epoch + 1}/{trainer.epochs}: mAP50 {metrics['mAP50']}",
                    metrics=metrics,
                )

            trainer: Any = detector_fit(
                model,
                data_yaml=data_yaml,
                workdir=work,
                epochs=epochs,
                imgsz=imgsz,
                batch=batch,
                device=_resolved_torch_device(device),
                seed=int(params.get("seed", 0)),
                hyperparameters=params.get("hyperparameters") or {},
                on_epoch_end=on_epoch_end,
            )
            best = detector_best_weights(trainer)
            metrics = _final_metrics(trainer)
            names = {int(k): str(v) for k, v in trainer.data["names"].items()}
            weights = best.read_bytes()
        return Trained(
            model=weights,
            metrics=metrics,
            params={
                "epochs": epochs,
                "imgsz": imgsz,
                "batch": batch,
                "architecture": params.get("architecture") or "",
                "base_version_id": params.get("base_version_id"),
                "device": device,
                **({"hyperparameters": params["hyperparameters"]} if params.get("hyperparameters") else {}),
            },
            input_schema={"task": "detect", "imgsz": imgsz, "names": {str(k): v for k, v in names.items()}},
            data_fingerprint=str(data.get("sha256", "")),
            model_card={"task": "detect", "framework": "ultralytics", "dataset": data.get("summary", {})},
        )

    def _base_weights(self, version_id: int, destination: Path) -> Path:
        from ml.artifacts import artifact_fetch
        from ml.models import ModelVersion

        version = ModelVersion.objects.get(pk=version_id)
        artifact_fetch(prefix=version.artifact_path, manifest=version.manifest, destination=destination)
        return destination / WEIGHTS_FILE

    def save(self, trained: Trained, directory: Path) -> None:
        (directory / WEIGHTS_FILE).write_bytes(trained.model)

    # --- Serving ----------------------------------------------------------------------------

    def load(self, directory: Path, *, device: str, half: bool = False) -> LoadedDetector:
        _ultralytics_ready()
        import numpy as np
        from ultralytics import YOLO

        weights = directory / WEIGHTS_FILE
        yolo = YOLO(str(weights))
        if yolo.task != "detect":
            raise ArtifactRejected(f"Not a detection model (task {yolo.task!r}).")
        names = {int(k): str(v) for k, v in yolo.names.items()}
        imgsz = int((getattr(yolo.model, "args", {}) or {}).get("imgsz", DEFAULT_IMGSZ) or DEFAULT_IMGSZ)
        loaded = LoadedDetector(
            yolo=yolo, device=device, half=device.startswith("cuda"), names=names, weights_path=weights, imgsz=imgsz
        )
        # Warm up: builds the predictor (fuses layers, moves to the device) before the first request.
        self.predict(loaded, [np.zeros((imgsz, imgsz, 3), dtype=np.uint8)], imgsz=imgsz)
        return loaded

    def predict(self, loaded: LoadedDetector, inputs: Sequence[Any], **options: Any) -> list[ImageDetections]:
        """Detect objects in BGR images (numpy arrays as `cv2.imdecode` returns them).

        Options: `imgsz`, `conf` (default 0.25), `iou` (0.7), `classes` (class ids), `max_det`.
        """
        if not inputs:
            return []
        kwargs = {
            "imgsz": int(options.get("imgsz") or loaded.imgsz),
            "conf": float(options.get("conf", 0.25)),
            "iou": float(options.get("iou", 0.7)),
            "classes": options.get("classes"),
            "max_det": int(options.get("max_det", 300)),
            "device": _resolved_torch_device(loaded.device),
            "half": loaded.half,
            "verbose": False,
        }
        with loaded.lock:
            results = loaded.yolo.predict(source=list(inputs), **kwargs)
        outputs = []
        for result in results:
            boxes = result.boxes.cpu()
            height, width = result.orig_shape
            outputs.append(
                ImageDetections(
                    boxes=boxes.xyxy.numpy().astype(float).tolist(),
                    class_ids=[int(c) for c in boxes.cls.numpy()],
                    confidences=boxes.conf.numpy().astype(float).tolist(),
                    width=int(width),
                    height=int(height),
                )
            )
        return outputs

    def track(
        self,
        loaded: LoadedDetector,
        frames: Iterator[tuple[int, Any]],
        *,
        imgsz: int | None = None,
        conf: float = 0.1,
        fps: float = 30.0,
        on_frame: Callable[[TrackedFrame], None] | None = None,
    ) -> Iterator[TrackedFrame]:
        """Detect and track (ultralytics ByteTrack) over a stream of `(index, BGR frame)`.

        Uses the process's loaded model with a fresh tracker per call, so tracks never leak
        between videos. `conf` defaults to 0.1 like `model.track`: ByteTrack needs the
        low-confidence boxes for its second association stage.
        """
        _ultralytics_ready()
        import torch
        from ultralytics.trackers.byte_tracker import BYTETracker
        from ultralytics.utils import YAML, IterableSimpleNamespace
        from ultralytics.utils.checks import check_yaml

        config = IterableSimpleNamespace(**YAML.load(check_yaml("bytetrack.yaml")))
        tracker = BYTETracker(args=config)  # keeps lost tracks for `track_buffer` (30) frames
        kwargs = {
            "imgsz": int(imgsz or loaded.imgsz),
            "conf": conf,
            "device": _resolved_torch_device(loaded.device),
            "half": loaded.half,
            "verbose": False,
        }
        for index, frame in frames:
            with loaded.lock, torch.inference_mode():
                result = loaded.yolo.predict(source=frame, **kwargs)[0]
            detections = result.boxes.cpu().numpy()
            tracks = tracker.update(detections, frame)
            if len(tracks):
                tracked = TrackedFrame(
                    index=index,
                    boxes=tracks[:, :4].astype(float).tolist(),
                    track_ids=[int(t) for t in tracks[:, 4]],
                    confidences=tracks[:, 5].astype(float).tolist(),
                    class_ids=[int(c) for c in tracks[:, 6]],
                )
            else:
                tracked = TrackedFrame(index=index, boxes=[], track_ids=[], class_ids=[], confidences=[])
            yield tracked

    # --- Import -----------------------------------------------------------------------------

    def import_artifact(self, source: Path, directory: Path) -> ImportedArtifact:
        """Validate uploaded ultralytics weights in a separate process, then keep them as-is."""
        size = source.stat().st_size
        if size == 0:
            raise ArtifactRejected("The weights file is empty.")
        if size > limit("TRAFFIC_MAX_WEIGHTS_BYTES"):
            raise ArtifactRejected("The weights file is larger than the configured limit.")
        with source.open("rb") as handle:
            if handle.read(2) != b"PK":
                raise ArtifactRejected("Not an ultralytics/PyTorch checkpoint (expected a torch zip archive).")
        report = weights_inspect(source)
        if not report.get("ok"):
            raise ArtifactRejected(
                f"Could not load the weights with ultralytics: {report.get('error', 'unknown error')}"
            )
        if report.get("task") != "detect":
            raise ArtifactRejected(
                f"Not a detection model: the checkpoint's task is {report.get('task')!r}; "
                "kind traffic.yolo_detector needs an ultralytics detection (`detect`) model."
            )
        if report.get("model_class") != "DetectionModel":
            raise ArtifactRejected(
                f"Unsupported model type {report.get('model_class')!r}: expected an ultralytics YOLO DetectionModel."
            )
        names = report.get("names") or {}
        if not names:
            raise ArtifactRejected("The checkpoint has no class names.")
        shutil.copyfile(source, directory / WEIGHTS_FILE)
        return ImportedArtifact(
            params={"imgsz": report.get("imgsz", DEFAULT_IMGSZ), "architecture": report.get("architecture", "")},
            input_schema={"task": "detect", "imgsz": report.get("imgsz", DEFAULT_IMGSZ), "names": names},
            model_card={
                "task": "detect",
                "framework": "ultralytics",
                "parameters": report.get("parameters", 0),
                "validated_out_of_process": True,
            },
        )


def weights_inspect(path: Path) -> dict[str, Any]:
    """Load `path` with ultralytics in a short-lived subprocess and return its JSON report."""
    with tempfile.TemporaryDirectory() as home:
        # ultralytics recognises checkpoints by their `.pt` suffix; uploads arrive without one.
        candidate = Path(home) / "candidate.pt"
        shutil.copyfile(path, candidate)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(settings.BASE_DIR),
            "HOME": home,
            "YOLO_CONFIG_DIR": home,
            "MPLCONFIGDIR": home,
            "CUDA_VISIBLE_DEVICES": "",  # validation needs no GPU
            # Anything that honours proxies (requests, urllib) is sent to a closed port.
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "ALL_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "",
            **OFFLINE_ENV,
        }
        try:
            completed = subprocess.run(
                [sys.executable, "-I", "-c", _VALIDATOR_BOOTSTRAP, str(candidate)],
                cwd=home,
                env=env,
                capture_output=True,
                text=True,
                timeout=limit("TRAFFIC_WEIGHTS_VALIDATION_TIMEOUT_S"),
                preexec_fn=_limit_resources if os.name == "posix" else None,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": "validation timed out"}
    lines = [line for line in completed.stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        return {"ok": False, "error": f"validator exited with status {completed.returncode}"}
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"ok": False, "error": "validator produced no report"}
    return result


# `-I` (isolated mode) ignores PYTHONPATH and the user site, so the bootstrap puts the project on
# the path explicitly and runs the validator module.
_VALIDATOR_BOOTSTRAP = (
    "import os, sys; sys.path.insert(0, os.environ['PYTHONPATH']); "
    "from apps.traffic.validate_weights import main; sys.exit(main(['validate_weights', sys.argv[1]]))"
)


# Training options callers may set besides epochs/imgsz/batch (the demo recipe uses them); anything
# else (paths, `data`, `project`, callbacks, downloads) stays under Tessera's control.
TRAINING_HYPERPARAMETERS = frozenset(
    {
        "optimizer",
        "lr0",
        "lrf",
        "nbs",
        "momentum",
        "weight_decay",
        "warmup_epochs",
        "close_mosaic",
        "mosaic",
        "hsv_h",
        "hsv_s",
        "hsv_v",
        "fliplr",
        "flipud",
        "scale",
        "translate",
        "val",
    }
)


def yolo_from_architecture(architecture: str) -> Any:
    """An untrained ultralytics YOLO built from its packaged yaml (nothing downloads)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {architecture!r}.")
    _ultralytics_ready()
    from ultralytics import YOLO

    return YOLO(f"{architecture}.yaml")


def detector_fit(
    model: Any,
    *,
    data_yaml: Path,
    workdir: Path,
    epochs: int,
    imgsz: int,
    batch: int,
    device: str,
    seed: int = 0,
    hyperparameters: dict[str, Any] | None = None,
    on_epoch_end: Callable[[Any], None] | None = None,
) -> Any:
    """Train an ultralytics YOLO on a Tessera-written `data.yaml`, offline; returns the trainer.

    The one place where Tessera calls `model.train`: the registry's training jobs, the demo seed
    and the tests' session detector all go through it, so they train the same way.

    Args:
        model: an ultralytics `YOLO` (from a packaged yaml or base weights).
        data_yaml: a dataset yaml written by Tessera (never an uploaded one).
        workdir: where ultralytics writes its run (`runs/train`).
        hyperparameters: optional overrides, only keys of `TRAINING_HYPERPARAMETERS`.
        on_epoch_end: called with the trainer after each epoch's validation.
    """
    extra = dict(hyperparameters or {})
    unknown = set(extra) - TRAINING_HYPERPARAMETERS
    if unknown:
        raise ValueError(f"Unsupported training options: {', '.join(sorted(unknown))}.")
    if on_epoch_end is not None:
        model.add_callback("on_fit_epoch_end", on_epoch_end)
    model.train(
        data=str(data_yaml),
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        device=device,
        workers=0,  # Celery prefork workers are daemonic: no dataloader subprocesses
        plots=False,  # plots fetch fonts
        amp=False,  # the AMP check downloads yolo11n.pt
        project=str(workdir / "runs"),
        name="train",
        exist_ok=True,
        verbose=False,
        seed=seed,
        deterministic=True,
        patience=max(epochs, 100),
        **extra,
    )
    return model.trainer


def detector_best_weights(trainer: Any) -> Path:
    """The best checkpoint of a finished training (the last one when no best was saved)."""
    return Path(trainer.best if Path(trainer.best).exists() else trainer.last)


def _limit_resources() -> None:  # pragma: no cover - runs in the child
    import resource

    seconds = limit("TRAFFIC_WEIGHTS_VALIDATION_TIMEOUT_S")
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024 * 1024, 64 * 1024 * 1024))
    os.setsid()


def _final_metrics(trainer: Any) -> dict[str, Any]:
    """Overall and per-class metrics of the final validation of the best checkpoint."""
    overall = trainer.metrics or {}
    metrics: dict[str, Any] = {
        "mAP50": _round(overall.get("metrics/mAP50(B)")),
        "mAP50-95": _round(overall.get("metrics/mAP50-95(B)")),
        "precision": _round(overall.get("metrics/precision(B)")),
        "recall": _round(overall.get("metrics/recall(B)")),
        "epochs_trained": int(trainer.epoch + 1),
    }
    per_class: dict[str, dict[str, float | None]] = {}
    validator = getattr(trainer, "validator", None)
    box = getattr(getattr(validator, "metrics", None), "box", None)
    names = trainer.data.get("names", {})
    if box is not None:
        for position, class_index in enumerate(getattr(box, "ap_class_index", [])):
            precision, recall, ap50, ap = box.class_result(position)
            per_class[str(names.get(int(class_index), class_index))] = {
                "precision": _round(precision),
                "recall": _round(recall),
                "mAP50": _round(ap50),
                "mAP50-95": _round(ap),
            }
    metrics["per_class"] = per_class
    return metrics


def _round(value: Any, digits: int = 5) -> float | None:
    if value is None:
        return None
    try:
        return round(float(value), digits)
    except (TypeError, ValueError):
        return None


YOLO_DETECTOR = register_kind(YoloDetector())
