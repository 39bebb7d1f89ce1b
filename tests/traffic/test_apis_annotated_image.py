"""GET /api/v1/traffic/detections/<id>/annotated/: drawn on demand, stored on first request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.traffic.annotation import CATEGORY_COLOURS, annotate_detections
from tests.conftest import assert_error
from tests.traffic.conftest import TINY_IMGSZ

ASSETS = Path(str(__import__("ultralytics").__file__)).parent / "assets"
URL = "/api/v1/traffic/detections/"


def _annotated_files(settings: Any) -> list[Path]:
    return sorted(Path(settings.MEDIA_ROOT).glob("traffic/org-*/annotated/**/*.jpg"))


def test_the_annotated_copy_is_drawn_when_first_asked_for_then_served_from_storage(
    api: Any, other_api: Any, detector: Any, settings: Any
) -> None:
    # given a detection of a real photo
    image = ASSETS / "bus.jpg"
    upload = SimpleUploadedFile("bus.jpg", image.read_bytes(), content_type="image/jpeg")
    body = api.post(URL, {"image": upload, "conf": 0.001, "imgsz": TINY_IMGSZ}, format="multipart").json()
    assert body["detections"], "the tiny model finds boxes at this confidence"

    # then no annotated copy was made while answering, but the response already links to one
    from apps.traffic.models import DetectionRun

    assert DetectionRun.objects.get(pk=body["id"]).annotated_image == ""
    assert _annotated_files(settings) == []
    assert body["annotated_image_url"] == f"{URL}{body['id']}/annotated/"

    # when another organization asks for it, then it is a 404 and nothing is drawn
    assert_error(other_api.get(body["annotated_image_url"]), 404)
    assert _annotated_files(settings) == []

    # when the owner asks for it
    response = api.get(body["annotated_image_url"])

    # then it is the stored photo with the response's boxes, labels and category colours drawn on it
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    content = b"".join(response.streaming_content)
    original = cv2.imread(str(image))
    assert original is not None
    assert content == annotate_detections(original, body["detections"])
    pixels = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_COLOR)
    assert pixels is not None and pixels.shape == original.shape
    # the box drawn last is on top: the middle of its left edge has its category's colour
    top = body["detections"][-1]
    x1, y1, _, y2 = (round(value) for value in top["box"])
    expected_colour = np.array(CATEGORY_COLOURS.get(top["category"] or "", (160, 160, 160)), dtype=int)
    assert np.abs(pixels[(y1 + y2) // 2, x1].astype(int) - expected_colour).max() < 60
    # and far from every box the photo is unchanged (up to JPEG re-encoding)
    boxes = np.array([d["box"] for d in body["detections"]])
    untouched = np.ones(original.shape[:2], dtype=np.bool_)
    for bx1, by1, bx2, by2 in boxes:
        untouched[max(0, int(by1) - 40) : int(by2) + 5, max(0, int(bx1) - 5) : int(bx2) + 200] = False
    if untouched.any():
        difference = np.abs(pixels.astype(int) - original.astype(int))[untouched]
        assert np.median(difference) <= 3

    # and it is now stored and recorded, and a second request serves the same file
    files = _annotated_files(settings)
    assert len(files) == 1
    stored = DetectionRun.objects.get(pk=body["id"]).annotated_image
    assert stored and files[0].as_posix().endswith(stored)
    again = api.get(body["annotated_image_url"])
    assert b"".join(again.streaming_content) == content
    assert _annotated_files(settings) == files
