"""How Tessera trains an ultralytics YOLO detector: the one `model.train` call and its results.

The registry's training jobs (`YoloDetector.train`), the demo seed and the tests' session
detector all go through `detector_fit`, so they train the same way. Like `apps.traffic.ml`,
this module imports ultralytics (lazily, after `configure_ultralytics_offline`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.traffic.ml_offline import configure_ultralytics_offline

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


def ultralytics_ready() -> None:
    """Switch ultralytics to offline mode (idempotent) before it is first imported."""
    configure_ultralytics_offline(Path(settings.VAR_DIR) / "ultralytics")


def yolo_from_architecture(architecture: str) -> Any:
    """An untrained ultralytics YOLO built from its packaged yaml (nothing downloads)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {architecture!r}.")
    ultralytics_ready()
    from ultralytics import YOLO

    return YOLO(f"{architecture}.yaml")


def yolo_from_weights(weights: Path) -> Any:
    """An ultralytics YOLO starting from a checkpoint (a parent version's weights, for fine-tuning)."""
    ultralytics_ready()
    from ultralytics import YOLO

    return YOLO(str(weights))


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


def epoch_metrics(trainer: Any) -> dict[str, Any]:
    """Losses and validation metrics of the epoch the trainer just finished (a live-metrics entry)."""
    losses = trainer.label_loss_items(trainer.tloss, prefix="train")
    validation = trainer.metrics or {}
    return {
        "epoch": trainer.epoch + 1,
        "epochs": trainer.epochs,
        "box_loss": metric_round(losses.get("train/box_loss")),
        "cls_loss": metric_round(losses.get("train/cls_loss")),
        "dfl_loss": metric_round(losses.get("train/dfl_loss")),
        "precision": metric_round(validation.get("metrics/precision(B)")),
        "recall": metric_round(validation.get("metrics/recall(B)")),
        "mAP50": metric_round(validation.get("metrics/mAP50(B)")),
        "mAP50-95": metric_round(validation.get("metrics/mAP50-95(B)")),
    }


def final_metrics(trainer: Any) -> dict[str, Any]:
    """Overall and per-class metrics of the final validation of the best checkpoint."""
    overall = trainer.metrics or {}
    metrics: dict[str, Any] = {
        "mAP50": metric_round(overall.get("metrics/mAP50(B)")),
        "mAP50-95": metric_round(overall.get("metrics/mAP50-95(B)")),
        "precision": metric_round(overall.get("metrics/precision(B)")),
        "recall": metric_round(overall.get("metrics/recall(B)")),
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
                "precision": metric_round(precision),
                "recall": metric_round(recall),
                "mAP50": metric_round(ap50),
                "mAP50-95": metric_round(ap),
            }
    metrics["per_class"] = per_class
    return metrics


def metric_round(value: Any, digits: int = 5) -> float | None:
    """A metric as a float rounded to `digits`, or None when ultralytics reported none."""
    if value is None:
        return None
    try:
        return round(float(value), digits)
    except (TypeError, ValueError):
        return None
