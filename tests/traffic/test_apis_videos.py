"""POST/GET /api/v1/traffic/videos/: tracking and line counting as a job on the inference queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.traffic.demo import DEMO_IMGSZ
from fixtures.traffic_shapes import CLASS_NAMES, DEFAULT_OBJECTS, crossing_clip
from tests.conftest import assert_error

URL = "/api/v1/traffic/videos/"
STOP_LINE = {"name": "stop", "points": [[0.05, 0.5], [0.95, 0.5]], "in_direction": "down"}
ZONE = {"name": "lower-half", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}


def _camera(api: Any) -> dict[str, Any]:
    response = api.post(
        "/api/v1/traffic/cameras/", {"name": "Clip cam", "lines": [STOP_LINE], "zones": [ZONE]}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def _upload(path: Path, content_type: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(path.name, path.read_bytes(), content_type=content_type)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("suffix", "content_type"), [(".mp4", "video/mp4"), (".avi", "video/x-msvideo")])
def test_video_job_tracks_every_frame_and_stores_consistent_crossings(
    api: Any, detector: Any, tmp_path: Path, suffix: str, content_type: str
) -> None:
    # given a generated clip and a camera with a counting line and a zone
    clip = crossing_clip(tmp_path / f"clip{suffix}")
    camera = _camera(api)

    # when
    response = api.post(
        URL,
        {"video": _upload(clip.path, content_type), "camera": camera["id"], "recorded_at": "2024-05-01T08:00:00Z"},
        format="multipart",
    )

    # then the job ran (inline in tests) on the inference queue over every frame
    assert response.status_code == 202, response.content
    body = api.get(f"{URL}{response.json()['id']}/").json()
    assert body["status"] == "succeeded", body
    assert body["frames"] == clip.frames
    assert body["duration_s"] == pytest.approx(clip.frames / clip.fps, abs=1e-3)
    job = api.get(body["job"]["url"]).json()
    assert job["progress"] == 1.0 and job["kind"] == "traffic.video_count"
    crossings = api.get(f"{URL}{body['id']}/crossings/").json()["results"]
    assert sum(row["in"] + row["out"] for row in body["line_crossings"]) == len(crossings)
    assert sum(body["counts"].values()) == len(crossings)
    for event in crossings:
        assert event["occurred_at"] >= "2024-05-01T08:00:00"
    assert api.get(f"/api/v1/traffic/cameras/{camera['id']}/frame/").status_code == 200


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("suffix", "content_type"), [(".mp4", "video/mp4"), (".avi", "video/x-msvideo")])
def test_video_counts_are_exact_with_the_demo_detector(
    api: Any, import_detector: Any, shapes_weights: Path, tmp_path: Path, suffix: str, content_type: str
) -> None:
    # given the demo detector (trained on the generated shapes) and a clip with 3 crossings in, 2 out
    version = import_detector(shapes_weights)
    clip = crossing_clip(tmp_path / f"clip{suffix}", size=DEMO_IMGSZ)
    assert clip.expected == {("car", "in"): 2, ("car", "out"): 1, ("person", "in"): 1, ("person", "out"): 1}
    camera = _camera(api)

    # when it is counted at the version's own imgsz (the training size)
    response = api.post(
        URL,
        {"video": _upload(clip.path, content_type), "camera": camera["id"], "recorded_at": "2024-05-01T08:00:00Z"},
        format="multipart",
    )

    # then every crossing is counted once, in the right direction and category
    assert response.status_code == 202, response.content
    body = api.get(f"{URL}{response.json()['id']}/").json()
    assert body["status"] == "succeeded", body
    assert body["imgsz"] == version.input_schema["imgsz"] == DEMO_IMGSZ
    got = {(row["category"], d): row[d] for row in body["line_crossings"] for d in ("in", "out") if row[d]}
    assert got == clip.expected
    assert body["counts"] == {"car": 3, "person": 2}
    crossings = api.get(f"{URL}{body['id']}/crossings/").json()["results"]
    assert len(crossings) == 5 and {event["line"] for event in crossings} == {"stop"}
    # and each crossing event is stored at video start + frame time, in the clip's order of crossings
    recorded_at = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    for event in crossings:
        at = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
        assert at == recorded_at + timedelta(seconds=event["frame"] / clip.fps)
    # and each event is at the frame where its object's bottom edge passes the line (± the detector's
    # box-edge error of a couple of pixels: one frame moves an object about 4 px)
    expected_events = sorted(_expected_crossings(clip.line_y))
    events = sorted((e["frame"], e["category"], e["direction"]) for e in crossings)
    assert [(category, direction) for _, category, direction in events] == [(c, d) for _, c, d in expected_events]
    assert all(abs(g[0] - e[0]) <= 2 for g, e in zip(events, expected_events, strict=True)), (events, expected_events)
    # and the counts endpoint buckets them by that time
    counts = api.get(
        f"/api/v1/traffic/cameras/{camera['id']}/counts/",
        {"start": "2024-05-01T08:00:00Z", "end": "2024-05-01T08:15:00Z", "bucket": "15m", "line": "stop"},
    ).json()
    assert counts["buckets"][0]["in"] == {"car": 2, "person": 1}
    assert counts["buckets"][0]["out"] == {"car": 1, "person": 1}
    assert {(p["zone"], p["category"]) for p in body["zone_peaks"]} == {("lower-half", "car"), ("lower-half", "person")}


def _expected_crossings(line_y: float) -> list[tuple[int, str, str]]:
    """(frame, category, direction) of each object of the generated clip crossing the line."""
    events = []
    for o in DEFAULT_OBJECTS:
        for step in range(o.frames):
            bottom = o.y_start + (o.y_end - o.y_start) * step / (o.frames - 1)
            if (bottom > line_y) != (o.y_start > line_y):
                direction = "in" if o.y_end > o.y_start else "out"
                events.append((o.first_frame + step, CLASS_NAMES[o.class_id], direction))
                break
    return events


@pytest.mark.parametrize(
    ("name", "content", "content_type", "status"),
    [
        ("clip.mp4", b"", "video/mp4", 400),
        ("clip.mp4", b"definitely not a video" * 100, "video/mp4", 400),
        ("clip.txt", b"hello", "text/plain", 415),
        ("clip.jpg", b"\xff\xd8\xff", "image/jpeg", 415),
    ],
)
def test_bad_videos_are_refused_with_nothing_stored(
    api: Any, detector: Any, settings: Any, name: str, content: bytes, content_type: str, status: int
) -> None:
    camera = _camera(api)
    upload = SimpleUploadedFile(name, content, content_type=content_type)
    assert_error(api.post(URL, {"video": upload, "camera": camera["id"]}, format="multipart"), status)
    from apps.traffic.models import VideoAnalysis

    assert VideoAnalysis.objects.count() == 0
    media = Path(settings.MEDIA_ROOT)
    assert not media.exists() or not [p for p in media.rglob("*") if p.is_file()]


def test_video_over_byte_limit_is_413(api: Any, detector: Any, settings: Any, tmp_path: Path) -> None:
    settings.TRAFFIC_MAX_VIDEO_BYTES = 100
    clip = crossing_clip(tmp_path / "clip.avi")
    camera = _camera(api)
    assert_error(api.post(URL, {"video": _upload(clip.path, "video/x-msvideo"), "camera": camera["id"]}), 413)


@pytest.mark.django_db(transaction=True)
def test_other_organization_videos_are_404(api: Any, other_api: Any, detector: Any, tmp_path: Path) -> None:
    clip = crossing_clip(tmp_path / "clip.avi")
    camera = _camera(api)
    video = api.post(URL, {"video": _upload(clip.path, "video/x-msvideo"), "camera": camera["id"]}).json()
    assert_error(other_api.get(f"{URL}{video['id']}/"), 404)
    assert_error(other_api.get(f"{URL}{video['id']}/crossings/"), 404)
    assert other_api.get(URL).json()["count"] == 0
    # nor can it post a video to acme's camera
    assert_error(other_api.post(URL, {"video": _upload(clip.path, "video/x-msvideo"), "camera": camera["id"]}), 404)
