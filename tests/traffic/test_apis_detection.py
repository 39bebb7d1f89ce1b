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
    """What plain ultralytics returns for the image file, unrounded, in its own order."""
    from ultralytics import YOLO

    results: Any = YOLO(str(weights)).predict(str(image), imgsz=imgsz, conf=conf, verbose=False)
    result = results[0]
    boxes = result.boxes.cpu()
    return [
        {"class_name": result.names[int(c)], "confidence": float(p), "box": [float(v) for v in box]}
        for box, c, p in zip(boxes.xyxy.numpy(), boxes.cls.numpy(), boxes.conf.numpy(), strict=True)
    ]


@pytest.mark.parametrize("asset", ["bus.jpg", "zidane.jpg"])
def test_detections_equal_raw_ultralytics_predict(api: Any, detector: Any, tiny_weights: Path, asset: str) -> None:
    # given the real photos that ship with ultralytics and the imported weights
    image = ASSETS / asset
    upload = SimpleUploadedFile(asset, image.read_bytes(), content_type="image/jpeg")

    # when
    response = api.post(URL, {"image": upload, "conf": LOW_CONF, "imgsz": TINY_IMGSZ}, format="multipart")

    # then the response has the documented shape
    assert response.status_code == 201, response.content
    body = response.json()
    assert {"id", "camera", "model", "image", "detections", "counts", "inference_ms", "annotated_image_url"} <= set(
        body
    )
    assert body["camera"] is None
    assert all(set(d) == {"class_name", "category", "confidence", "box"} for d in body["detections"])

    # and its boxes, classes and confidences are exactly (==, unrounded) raw ultralytics' for the same
    # weights, image, imgsz and conf, in the same order (highest confidence first)
    expected = _raw_predict(tiny_weights, image, TINY_IMGSZ, LOW_CONF)
    assert expected, "the tiny model should produce some boxes at this confidence"
    got = [{k: d[k] for k in ("class_name", "confidence", "box")} for d in body["detections"]]
    assert got == expected
    assert body["model"] == {"name": "traffic-detector", "version": detector.number}
    import cv2
    import numpy as np

    pixels = cv2.imread(str(image))
    assert pixels is not None
    height, width = pixels.shape[:2]
    assert body["image"] == {"width": width, "height": height}
    categories = [d["category"] for d in body["detections"] if d["category"]]
    assert categories, "the default class map counts the model's car/person classes"
    assert body["counts"] == {c: categories.count(c) for c in sorted(set(categories))}
    assert body["inference_ms"] > 0
    annotated = api.get(body["annotated_image_url"])
    assert annotated.status_code == 200
    assert annotated["Content-Type"] == "image/jpeg"
    annotated_pixels = cv2.imdecode(np.frombuffer(b"".join(annotated.streaming_content), np.uint8), cv2.IMREAD_COLOR)
    assert (
        annotated_pixels is not None and annotated_pixels.shape == pixels.shape
    )  # the original image with the boxes drawn on it

    # and the stored run reads back identically
    assert api.get(f"{URL}{body['id']}/").json()["detections"] == body["detections"]


def test_detection_is_stored_and_filterable_by_camera_time_and_class(api: Any, detector: Any) -> None:
    # given a camera and two detections at known times, one on the camera
    camera = api.post("/api/v1/traffic/cameras/", {"name": "Main St"}, format="json").json()
    first = api.post(
        URL,
        {"image": jpeg_upload(), "camera": camera["id"], "conf": LOW_CONF, "captured_at": "2024-05-01T08:10:00Z"},
        format="multipart",
    )
    second = api.post(
        URL, {"image": jpeg_upload(seed=1), "conf": LOW_CONF, "captured_at": "2024-05-01T09:10:00Z"}, format="multipart"
    )
    assert first.status_code == 201 and second.status_code == 201
    first_id, second_id = first.json()["id"], second.json()["id"]
    assert first.json()["camera"] == camera["id"]

    def ids(**params: Any) -> set[int]:
        response = api.get(URL, params)
        assert response.status_code == 200, response.content
        return {run["id"] for run in response.json()["results"]}

    # when / then: by camera
    assert ids(camera=camera["id"]) == {first_id}
    # by time window [start, end)
    assert ids(start="2024-05-01T08:00:00Z", end="2024-05-01T09:00:00Z") == {first_id}
    assert ids(start="2024-05-01T09:00:00Z") == {second_id}
    assert ids(start="2999-01-01T00:00:00Z") == set()
    # by class: a category or a model class name that one of the runs detected
    detected = {d["class_name"] for d in first.json()["detections"]} | {
        d["class_name"] for d in second.json()["detections"]
    }
    assert detected
    for class_name in detected:
        having = {
            run["id"]
            for run in (first.json(), second.json())
            if class_name in {d["class_name"] for d in run["detections"]}
        }
        assert ids(class_name=class_name) == having
        assert ids(**{"class": class_name}) == having  # `?class=` is accepted as an alias
    assert ids(class_name="no-such-class") == set()
    assert_error(api.get(URL, {"start": "yesterday"}), 400)
    # and the run reads back with its boxes and the camera's last frame
    detail = api.get(f"{URL}{first_id}/").json()
    assert detail["detections"] == first.json()["detections"]
    assert api.get(f"/api/v1/traffic/cameras/{camera['id']}/frame/").status_code == 200


def test_classes_filter(api: Any, detector: Any) -> None:
    # when detecting only cars
    body = api.post(URL, {"image": jpeg_upload(), "conf": LOW_CONF, "classes": "car"}, format="multipart").json()

    # then only car boxes come back
    assert body["detections"] and {d["class_name"] for d in body["detections"]} == {"car"}
    assert set(body["counts"]) == {"car"}
    assert_error(api.post(URL, {"image": jpeg_upload(), "classes": "zebra"}, format="multipart"), 400)


def test_an_edited_class_map_is_applied_to_counts(api: Any, detector: Any) -> None:
    # given the default class map (model classes car/person → categories car/person)
    class_map_url = "/api/v1/traffic/models/traffic-detector/class-map/"
    assert api.get(class_map_url).json()["mapping"] == {"car": "car", "person": "person"}
    before = api.post(URL, {"image": jpeg_upload(), "conf": LOW_CONF}, format="multipart").json()
    classes = {d["class_name"] for d in before["detections"]}
    assert classes == {"car", "person"}, "the tiny model finds both classes at this confidence"
    assert set(before["counts"]) == {"car", "person"}

    # when the map counts the model's "car" class as trucks and ignores persons
    response = api.put(class_map_url, {"mapping": {"car": "truck", "person": ""}}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["mapping"] == {"car": "truck", "person": ""}
    after = api.post(URL, {"image": jpeg_upload(), "conf": LOW_CONF}, format="multipart").json()

    # then the same boxes come back, categorised and counted through the new map
    assert [d["box"] for d in after["detections"]] == [d["box"] for d in before["detections"]]
    cars = sum(1 for d in after["detections"] if d["class_name"] == "car")
    assert after["counts"] == {"truck": cars}
    assert {d["category"] for d in after["detections"] if d["class_name"] == "person"} == {None}
    # and the category filter follows the map too
    trucks = api.post(URL, {"image": jpeg_upload(), "conf": LOW_CONF, "classes": "truck"}, format="multipart").json()
    assert {d["class_name"] for d in trucks["detections"]} == {"car"}
    assert_error(api.put(class_map_url, {"mapping": {"car": "tank"}}, format="json"), 400)


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
    # and cannot use acme's model or camera, by default or by name, with nothing stored for them
    assert_error(other_api.post(URL, {"image": jpeg_upload()}, format="multipart"), 404)
    assert_error(other_api.post(URL, {"image": jpeg_upload(), "model": "traffic-detector"}, format="multipart"), 404)
    camera = api.post("/api/v1/traffic/cameras/", {"name": "acme cam"}, format="json").json()
    assert_error(other_api.post(URL, {"image": jpeg_upload(), "camera": camera["id"]}, format="multipart"), 404)
    assert other_api.get(URL, {"camera": camera["id"]}).json()["count"] == 0
    from apps.traffic.models import DetectionRun

    assert DetectionRun.objects.count() == 1
    assert_error(other_api.get("/api/v1/traffic/models/traffic-detector/class-map/"), 404)


def test_needs_traffic_scope(api_client_for: Any, org: Any, detector: Any) -> None:
    client = api_client_for(org, scopes=("finance",))
    assert_error(client.post(URL, {"image": jpeg_upload()}, format="multipart"), 403)
