"""The `traffic.yolo_detector` ModelKind: ultralytics YOLO detection models in the registry.

The kind only: how a detector trains (on a dataset already materialised by the traffic loader,
`apps.traffic.datasets.detector_training_data`), saves, loads, predicts, tracks and imports.
It never touches the ORM or storage; `ml.runtime` owns device, precision, the inference context
and warm-up. The training recipe is `apps.traffic.training_recipe`, the out-of-process weights
validator `apps.traffic.weights_validation`, the model-card text `apps.traffic.model_card`.

Artifacts are the ultralytics `.pt` checkpoint (`model.pt`), a pickle-based format that can run
code when loaded: imports are validated out of process and accepted only from org admins / keys
with the `ml` scope (`loads_code = True`).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apps.traffic.choices import MODEL_KIND
from apps.traffic.datasets import DetectorTrainingData
from apps.traffic.limits import limit
from apps.traffic.model_card import imported_model_card, trained_model_card
from apps.traffic.training_recipe import ARCHITECTURES as ARCHITECTURES  # the serializers' choices
from apps.traffic.training_recipe import (
    detector_best_weights,
    detector_fit,
    epoch_metrics,
    final_metrics,
    ultralytics_ready,
    yolo_from_architecture,
    yolo_from_weights,
)
from apps.traffic.weights_validation import weights_inspect
from core.storage import scratch_directory
from ml.kinds import ArtifactRejected, ImportedArtifact, ModelKind, Reporter, Trained, register_kind

WEIGHTS_FILE = "model.pt"
DEFAULT_IMGSZ = 640


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
class TrackedFrame(ImageDetections):
    """The tracker's output for one frame: the tracked boxes with their track ids."""

    track_ids: list[int] = field(default_factory=list)


def _precision(loaded: LoadedDetector) -> int | None:
    # ultralytics 8.4 replaced `half=` by `quantize=` (16: FP16, None: FP32) and logs a warning on
    # every call that still passes `half`.
    return 16 if loaded.half else None


def _resolved_torch_device(device: str) -> str:
    return device.split(":", 1)[1] if device.startswith("cuda:") else device


class YoloDetector(ModelKind[LoadedDetector, np.ndarray, ImageDetections]):
    """ultralytics YOLO object detector (detect task), trained here or imported as a `.pt`."""

    name = MODEL_KIND
    artifact_format = "ultralytics-pt"
    loads_code = True
    uses_torch = True
    supports_half = True
    import_filename = WEIGHTS_FILE

    # --- Training ---------------------------------------------------------------------------

    def train(
        self,
        *,
        data: DetectorTrainingData,
        params: dict[str, Any],
        report: Reporter,
        parent: LoadedDetector | None = None,
    ) -> Trained:
        """Train from scratch, or fine-tune `parent`, on a materialised YOLO dataset.

        Args:
            data: the extracted dataset (our data.yaml, the zip's sha256 and summary).
            params: `epochs`, `imgsz`, `batch`, `architecture` (from scratch), `seed`,
                `hyperparameters`; `base_version_id` is recorded when fine-tuning.
            report: progress callback; receives per-epoch losses and validation metrics.
            parent: the loaded parent version to start from (fine-tuning), or None.

        Returns:
            Trained with the best checkpoint's bytes as `model` and per-class metrics.
        """
        from ml.runtime import resolve_device

        epochs = int(params.get("epochs", 10))
        imgsz = int(params.get("imgsz", DEFAULT_IMGSZ))
        batch = int(params.get("batch", 16))
        device = resolve_device()
        if parent is not None:
            model = yolo_from_weights(parent.weights_path)
        else:
            model = yolo_from_architecture(params.get("architecture") or "yolo11n")
        reported: set[int] = set()

        def on_epoch_end(trainer: Any) -> None:
            # the final validation of best.pt fires this event again, past the last epoch
            if trainer.epoch in reported or trainer.epoch >= trainer.epochs:
                return
            reported.add(trainer.epoch)
            metrics = epoch_metrics(trainer)
            report(
                progress=(trainer.epoch + 1) / trainer.epochs,
                message=f"Epoch {trainer.epoch + 1}/{trainer.epochs}: mAP50 {metrics['mAP50']}",
                metrics=metrics,
            )

        with scratch_directory(prefix="yolo-run-") as work:
            trainer: Any = detector_fit(
                model,
                data_yaml=data.data_yaml,
                workdir=work,
                epochs=epochs,
                imgsz=imgsz,
                batch=batch,
                device=_resolved_torch_device(device),
                seed=int(params.get("seed", 0)),
                hyperparameters=params.get("hyperparameters") or {},
                on_epoch_end=on_epoch_end,
            )
            weights = detector_best_weights(trainer).read_bytes()
            metrics = final_metrics(trainer)
            names = {int(k): str(v) for k, v in trainer.data["names"].items()}
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
            data_fingerprint=data.sha256,
            model_card=trained_model_card(dataset_summary=data.summary),
        )

    def save(self, trained: Trained, directory: Path) -> None:
        (directory / WEIGHTS_FILE).write_bytes(trained.model)

    # --- Serving ----------------------------------------------------------------------------

    def load(self, directory: Path, *, device: str, half: bool = False) -> LoadedDetector:
        ultralytics_ready()
        from ultralytics import YOLO

        weights = directory / WEIGHTS_FILE
        yolo = YOLO(str(weights))
        if yolo.task != "detect":
            raise ArtifactRejected(f"Not a detection model (task {yolo.task!r}).")
        names = {int(k): str(v) for k, v in yolo.names.items()}
        imgsz = int((getattr(yolo.model, "args", {}) or {}).get("imgsz", DEFAULT_IMGSZ) or DEFAULT_IMGSZ)
        return LoadedDetector(yolo=yolo, device=device, half=half, names=names, weights_path=weights, imgsz=imgsz)

    def warm_up(self, loaded: LoadedDetector) -> None:
        """Build the predictor (fuse layers, move to the device, allocate) before the first request."""
        self.predict(loaded, [np.zeros((loaded.imgsz, loaded.imgsz, 3), dtype=np.uint8)], imgsz=loaded.imgsz)

    def _predict_kwargs(self, loaded: LoadedDetector, options: dict[str, Any]) -> dict[str, Any]:
        return {
            "imgsz": int(options.get("imgsz") or loaded.imgsz),
            "conf": float(options.get("conf", 0.25)),
            "iou": float(options.get("iou", 0.7)),
            "classes": options.get("classes"),
            "max_det": int(options.get("max_det", 300)),
            "device": _resolved_torch_device(loaded.device),
            "quantize": _precision(loaded),
            "verbose": False,
        }

    def predict(self, loaded: LoadedDetector, inputs: Sequence[np.ndarray], **options: Any) -> list[ImageDetections]:
        """Detect objects in BGR images (numpy arrays as `cv2.imdecode` returns them).

        Options: `imgsz`, `conf` (default 0.25), `iou` (0.7), `classes` (class ids), `max_det`.
        """
        if not len(inputs):
            return []
        kwargs = self._predict_kwargs(loaded, options)
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

    def stream(self, loaded: LoadedDetector, inputs: Iterable[np.ndarray], **options: Any) -> Iterator[TrackedFrame]:
        """Detect and track (ultralytics ByteTrack) over a stream of BGR frames: one output per frame.

        Options: `imgsz`, `conf` (default 0.1, like `model.track`: ByteTrack needs the
        low-confidence boxes for its second association stage), `fps` (accepted for the
        tracker's frame rate; ByteTrack's buffer is counted in frames). A fresh tracker per
        call, so tracks never leak between videos. The runtime runs each step in its inference
        context.
        """
        ultralytics_ready()
        from ultralytics.trackers.byte_tracker import BYTETracker
        from ultralytics.utils import YAML, IterableSimpleNamespace
        from ultralytics.utils.checks import check_yaml

        config = IterableSimpleNamespace(**YAML.load(check_yaml("bytetrack.yaml")))
        tracker = BYTETracker(args=config)  # keeps lost tracks for `track_buffer` (30) frames
        kwargs = {
            "imgsz": int(options.get("imgsz") or loaded.imgsz),
            "conf": float(options.get("conf", 0.1)),
            "device": _resolved_torch_device(loaded.device),
            "quantize": _precision(loaded),
            "verbose": False,
        }
        for frame in inputs:
            with loaded.lock:
                result = loaded.yolo.predict(source=frame, **kwargs)[0]
            detections = result.boxes.cpu().numpy()
            tracks = tracker.update(detections, frame)
            height, width = frame.shape[:2]
            if len(tracks):
                yield TrackedFrame(
                    boxes=tracks[:, :4].astype(float).tolist(),
                    class_ids=[int(c) for c in tracks[:, 6]],
                    confidences=tracks[:, 5].astype(float).tolist(),
                    width=int(width),
                    height=int(height),
                    track_ids=[int(t) for t in tracks[:, 4]],
                )
            else:
                yield TrackedFrame(boxes=[], class_ids=[], confidences=[], width=int(width), height=int(height))

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
            model_card=imported_model_card(parameters=report.get("parameters", 0)),
        )


YOLO_DETECTOR = register_kind(YoloDetector())
