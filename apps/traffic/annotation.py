"""Drawing detections on images with OpenCV's built-in Hershey font (no font files, no downloads)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2

# BGR colours per category; classes outside the class map are drawn grey.
CATEGORY_COLOURS: dict[str, tuple[int, int, int]] = {
    "car": (56, 56, 255),
    "truck": (0, 140, 255),
    "bus": (0, 200, 255),
    "motorcycle": (200, 0, 200),
    "bicycle": (255, 160, 0),
    "person": (80, 200, 40),
}
IGNORED_COLOUR = (160, 160, 160)


def annotate_detections(pixels: Any, detections: Sequence[dict[str, Any]]) -> bytes:
    """A JPEG of `pixels` (BGR) with each detection's box and `label confidence` drawn."""
    canvas = pixels.copy()
    height, width = canvas.shape[:2]
    thickness = max(1, round(min(height, width) / 300))
    scale = max(0.35, min(height, width) / 900)
    for detection in detections:
        x1, y1, x2, y2 = (round(value) for value in detection["box"])
        colour = CATEGORY_COLOURS.get(detection.get("category") or "", IGNORED_COLOUR)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        label = f"{detection['class_name']} {detection['confidence']:.2f}"
        (text_w, text_h), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(0, y1 - text_h - baseline - 2)
        cv2.rectangle(canvas, (x1, top), (x1 + text_w + 2, top + text_h + baseline + 2), colour, -1)
        cv2.putText(
            canvas, label, (x1 + 1, top + text_h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
        )
    ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:  # pragma: no cover - encoding a valid array does not fail
        raise RuntimeError("Could not encode the annotated image.")
    return encoded.tobytes()
