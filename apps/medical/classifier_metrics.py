"""What a classifier version records about its validation: pure numpy/scikit-learn, no torch.

`classification_metrics(probabilities, labels, classes)` is computed on the held-out patients
after the last epoch, and `validation_auc` once per epoch for the progress reports.

The operating point is the arg-max of the probabilities (for two classes that is a 0.5
threshold on the positive class): sensitivity and specificity are reported per class
one-vs-rest at that point. The threshold is not tuned on the validation set, because the same
validation set reports the metrics and a tuned threshold would flatter them; Youden's J
threshold of a binary model is recorded as a suggestion (`youden_threshold`) only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

CALIBRATION_BINS = 10
ROC_POINTS = 101


def _rounded(value: float) -> float:
    return round(float(value), 6)


def validation_auc(probabilities: np.ndarray, labels: np.ndarray, n_classes: int) -> float | None:
    """ROC AUC (binary, or macro one-vs-rest for more classes); None when undefined.

    Undefined when the validation set lacks a class (a tiny set): AUC needs positives and
    negatives of every class it averages over.
    """
    present = np.unique(labels)
    if len(present) < n_classes or len(present) < 2:
        return None
    if n_classes == 2:
        return _rounded(roc_auc_score(labels, probabilities[:, 1]))
    return _rounded(
        roc_auc_score(labels, probabilities, multi_class="ovr", average="macro", labels=list(range(n_classes)))
    )


def _per_class_auc(probabilities: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for index, name in enumerate(classes):
        positive = labels == index
        out[name] = (
            _rounded(roc_auc_score(positive, probabilities[:, index])) if 0 < positive.sum() < len(labels) else None
        )
    return out


def _roc_points(positive: np.ndarray, scores: np.ndarray) -> dict[str, list[float]]:
    fpr, tpr, _thresholds = roc_curve(positive, scores)
    if len(fpr) > ROC_POINTS:  # keep the stored curve small: evenly spaced points along it
        keep = np.unique(np.linspace(0, len(fpr) - 1, ROC_POINTS).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": [_rounded(v) for v in fpr], "tpr": [_rounded(v) for v in tpr]}


def calibration_curve(probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Reliability of the top probability: per confidence bin, mean confidence vs accuracy.

    Returns `bins` (lower, upper, count, mean_confidence, accuracy; empty bins have nulls) and
    the expected calibration error (the count-weighted mean gap).
    """
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows, gap = [], 0.0
    for position in range(bins):
        lower, upper = edges[position], edges[position + 1]
        inside = (confidence >= lower) & ((confidence < upper) if position < bins - 1 else (confidence <= upper))
        count = int(inside.sum())
        mean_confidence = float(confidence[inside].mean()) if count else None
        accuracy = float(correct[inside].mean()) if count else None
        if count and mean_confidence is not None and accuracy is not None:
            gap += count * abs(mean_confidence - accuracy)
        rows.append(
            {
                "lower": _rounded(lower),
                "upper": _rounded(upper),
                "count": count,
                "mean_confidence": None if mean_confidence is None else _rounded(mean_confidence),
                "accuracy": None if accuracy is None else _rounded(accuracy),
            }
        )
    return {"bins": rows, "expected_calibration_error": _rounded(gap / max(1, len(labels)))}


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """The validation metrics of a classifier version.

    Args:
        probabilities: (N, C) softmax outputs on the validation images.
        labels: (N,) true class indices.
        classes: class names in output order.

    Returns:
        accuracy; roc_auc (binary, or macro one-vs-rest) and roc_auc_per_class; per class
        sensitivity, specificity and support at the arg-max operating point; for two classes
        the same for the positive class (the second) at top level, its ROC curve and Youden's
        threshold; the confusion matrix (rows: true, columns: predicted) with its labels; the
        calibration curve.
    """
    n_classes = len(classes)
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted = probabilities.argmax(axis=1)
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    for true, guess in zip(labels, predicted, strict=True):
        matrix[true, guess] += 1
    per_class: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(classes):
        tp = int(matrix[index, index])
        fn = int(matrix[index].sum() - tp)
        fp = int(matrix[:, index].sum() - tp)
        tn = int(matrix.sum() - tp - fn - fp)
        per_class[name] = {
            "sensitivity": _rounded(tp / (tp + fn)) if tp + fn else None,
            "specificity": _rounded(tn / (tn + fp)) if tn + fp else None,
            "support": tp + fn,
        }
    metrics: dict[str, Any] = {
        "accuracy": _rounded((predicted == labels).mean()) if len(labels) else None,
        "roc_auc": validation_auc(probabilities, labels, n_classes),
        "roc_auc_per_class": _per_class_auc(probabilities, labels, classes),
        "operating_point": "argmax (a 0.5 threshold on the positive class for two classes)",
        "per_class": per_class,
        "confusion_matrix": {
            "labels": list(classes),
            "matrix": matrix.tolist(),
            "rows": "true",
            "columns": "predicted",
        },
        "calibration": calibration_curve(probabilities, labels),
        "validation_images": len(labels),
    }
    if n_classes == 2:
        positive_name = classes[1]
        metrics["positive_class"] = positive_name
        metrics["sensitivity"] = per_class[positive_name]["sensitivity"]
        metrics["specificity"] = per_class[positive_name]["specificity"]
        positive = labels == 1
        if 0 < positive.sum() < len(labels):
            metrics["roc_curve"] = _roc_points(positive, probabilities[:, 1])
            fpr, tpr, thresholds = roc_curve(positive, probabilities[:, 1])
            best = int(np.argmax(tpr - fpr))
            metrics["youden_threshold"] = _rounded(min(1.0, thresholds[best]))
    return metrics
