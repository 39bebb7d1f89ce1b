"""POST/GET /api/v1/traffic/detections/: real tiny YOLO weights, compared with raw ultralytics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import assert_error
from tests.traffic.conftest import TINY_IMGSZ, jpeg_upload

ASSETS = Path(str(__import__("ultralytics").__file__)).parent / "assets"
URL = "/api/v1/traffic/detections/"
LOW_CONF = 0.001  # an untrained tiny model only produces low-confidence boxes


def _raw_predict(weights: Path, image: Path, imgsz: int, conf: float) -> list[dict[str, Any]]:
    from ultralytics import YOLO

    results: Any = YOLO(str(weights)).predict(str(image), imgsz=imgsz, conf=conf, verbose=False)
    result = results[0]
    boxes = result.boxes.cpu()
    return [
        {
            "class_name": result.names[int(c)],
            "confidence": round(float(p), 4),
            "box": [round(float(v), 2) for v in box],
        }
        for box, c, p in zip(boxes.xyxy.numpy(), boxes.cls.numpy(), boxes.conf.numpy(), strict=True)
    ]


@pytest.mark.parametrize("asset", ["bus.jpg", "zidane.jpg"])
def test_detections_equal_raw_ultralytics_predict(api: Any, detector: Any, tiny_weights: Path, asset: str) -> None:
    # given the real photos that ship with ultralytics and the imported weights
    image = ASSETS / asset
    upload = SimpleUploadedFile(asset, image.read_bytes(), content_type="image/jpeg")

    # when
    response = api.post(URL, {"image": upload, "conf": LOW_CONF, "imgsz": TINY_IMGSZ}, format="multipart")

    # then the API answers what raw ultralytics predicts for the same weights, image, imgsz, conf
    assert response.status_code == 201, response.content
    body = response.json()
    expected = _raw_predict(tiny_weights, image, TINY_IMGSZ, LOW_CONF)
    assert expected, "the tiny model should produce some boxes at this confidence"
    got = [{k: d[k] for k in ("class_name", "confidence", "box")} for d in body["detections"]]
    key = lambda d: (-d["confidence"], d["box"])  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)
    assert body["model"] == {"name": "traffic-detector", "version": detector.number}
    import cv2

    pixels = cv2.imread(str(image))
    assert pixels is not None
    height, width = pixels.shape[:2]
    assert body["image"] == {"width": width, "height": height}
    categories = [d["category"] for d in body["detections"] if d["category"]]
    assert body["counts"] == {c: categories.count(c) for c in sorted(set(categories))}
    assert body["inference_ms"] > 0
    annotated = api.get(body["annotated_image_url"])
    assert annotated.status_code == 200
    assert annotated["Content-Type"] == "image/jpeg"
    assert b"".join(annotated.streaming_content)[:2] == b"\xff\xd8"


def test_detection_is_stored_and_filterable(api: Any, detector: Any) -> None:
    # given a camera and two detections, one on the camera
    camera = api.post("/api/v1/traffic/cameras/", {"name": "Main St"}, format="json").json()
    first = api.post(URL, {"image": jpeg_upload(), "camera": camera["id"], "conf": LOW_CONF}, format="multipart")
    second = api.post(URL, {"image": jpeg_upload(seed=1), "conf": LOW_CONF}, format="multipart")
    assert first.status_code == 201 and second.status_code == 201

    # when / then
    listed = api.get(URL, {"camera": camera["id"]}).json()
    assert [run["id"] for run in listed["results"]] == [first.json()["id"]]
    detail = api.get(f"{URL}{first.json()['id']}/").json()
    assert detail["detections"] == first.json()["detections"]
    assert api.get(URL, {"class_name": "no-such-class"}).json()["count"] == 0
    assert api.get(URL, {"start": "2999-01-01T00:00:00Z"}).json()["count"] == 0
    assert api.get(f"/api/v1/traffic/cameras/{camera['id']}/frame/").status_code == 200


def test_classes_filter_and_class_map(api: Any, detector: Any) -> None:
    # given the class map ignores "person"
    response = api.put("/api/v1/traffic/models/traffic-detector/class-map/", {"mapping": {"person": ""}}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["mapping"] == {"car": "car", "person": ""}

    # when detecting only cars
    body = api.post(URL, {"image": jpeg_upload(), "conf": LOW_CONF, "classes": "car"}, format="multipart").json()

    # then only car boxes come back and persons never count
    assert {d["class_name"] for d in body["detections"]} <= {"car"}
    assert set(body["counts"]) <= {"car"}
    assert_error(api.post(URL, {"image": jpeg_upload(), "classes": "zebra"}, format="multipart"), 400)
    assert_error(
        api.put("/api/v1/traffic/models/traffic-detector/class-map/", {"mapping": {"car": "tank"}}, format="json"),
        400,
    )


def _png_bytes() -> bytes:
    import cv2
    import numpy as np

    ok, encoded = cv2.imencode(".png", np.zeros((40, 40, 3), np.uint8))
    assert ok
    return encoded.tobytes()


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"", "image/jpeg", 400),  # zero bytes
        (b"this is not an image at all", "image/jpeg", 400),  # not an image
        ("truncated", "image/jpeg", 400),  # truncated JPEG
        (b"%PDF-1.4 ...", "application/pdf", 415),  # wrong content type
        ("png", "text/plain", 415),  # a real image declared as text
    ],
)
def test_bad_images_are_refused_and_nothing_is_stored(
    api: Any, detector: Any, settings: Any, content: Any, content_type: str, status: int
) -> None:
    # given
    if content == "truncated":
        full = (ASSETS / "bus.jpg").read_bytes()
        content = full[: len(full) // 2]
    elif content == "png":
        content = _png_bytes()
    upload = SimpleUploadedFile("upload.jpg", content, content_type=content_type)

    # when
    response = api.post(URL, {"image": upload}, format="multipart")

    # then
    assert_error(response, status)
    _assert_nothing_stored(settings)


def test_image_over_byte_or_pixel_limit_is_413(api: Any, detector: Any, settings: Any) -> None:
    settings.TRAFFIC_MAX_IMAGE_BYTES = 1000
    big = SimpleUploadedFile("bus.jpg", (ASSETS / "bus.jpg").read_bytes(), content_type="image/jpeg")
    assert_error(api.post(URL, {"image": big}, format="multipart"), 413)
    settings.TRAFFIC_MAX_IMAGE_BYTES = 20 * 1024 * 1024
    settings.TRAFFIC_MAX_IMAGE_PIXELS = 100_000  # bus.jpg is 810x1080
    big = SimpleUploadedFile("bus.jpg", (ASSETS / "bus.jpg").read_bytes(), content_type="image/jpeg")
    assert_error(api.post(URL, {"image": big}, format="multipart"), 413)
    _assert_nothing_stored(settings)


def test_missing_model_is_404(api: Any, db: None) -> None:
    assert_error(api.post(URL, {"image": jpeg_upload()}, format="multipart"), 404)


def _assert_nothing_stored(settings: Any) -> None:
    from apps.traffic.models import Detection, DetectionRun

    assert DetectionRun.objects.count() == 0
    assert Detection.objects.count() == 0
    media = Path(settings.MEDIA_ROOT)
    assert not media.exists() or not [p for p in media.rglob("*") if p.is_file()]


def test_other_organization_sees_nothing(api: Any, other_api: Any, detector: Any) -> None:
    # given a detection of acme
    body = api.post(URL, {"image": jpeg_upload(), "conf": LOW_CONF}, format="multipart").json()

    # then globex gets 404 for the row, its images, and an empty list
    assert_error(other_api.get(f"{URL}{body['id']}/"), 404)
    assert_error(other_api.get(body["annotated_image_url"]), 404)
    assert_error(other_api.get(body["image_url"]), 404)
    assert other_api.get(URL).json()["count"] == 0
    # and cannot use acme's model
    assert_error(other_api.post(URL, {"image": jpeg_upload()}, format="multipart"), 404)
    assert_error(other_api.get("/api/v1/traffic/models/traffic-detector/class-map/"), 404)


def test_needs_traffic_scope(api_client_for: Any, org: Any, detector: Any) -> None:
    client = api_client_for(org, scopes=("finance",))
    assert_error(client.post(URL, {"image": jpeg_upload()}, format="multipart"), 403)
