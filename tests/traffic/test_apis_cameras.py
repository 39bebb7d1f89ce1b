"""Cameras with counting lines and zones, and counts over time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import assert_error
from tests.traffic.conftest import jpeg_upload

URL = "/api/v1/traffic/cameras/"
STOP_LINE = {"name": "stop", "points": [[0.1, 0.5], [0.9, 0.5]], "in_direction": "down"}


def test_create_get_patch_camera_with_lines_and_zones(api: Any, db: None) -> None:
    # given / when
    response = api.post(
        URL,
        {
            "name": "Main St / 5th",
            "location": "north approach",
            "lines": [STOP_LINE],
            "zones": [{"name": "box", "polygon": [[0, 0], [0.5, 0], [0.5, 0.5]]}],
        },
        format="json",
    )

    # then
    assert response.status_code == 201, response.content
    camera = response.json()
    assert camera["lines"][0] | {"id": 0} == {**STOP_LINE, "id": 0}
    assert camera["zones"][0]["polygon"] == [[0, 0], [0.5, 0], [0.5, 0.5]]
    assert api.get(f"{URL}{camera['id']}/").json()["name"] == "Main St / 5th"
    assert api.get(URL).json()["count"] == 1

    # when lines are replaced by PATCH (kept by name)
    line_id = camera["lines"][0]["id"]
    patched = api.patch(
        f"{URL}{camera['id']}/",
        {"location": "moved", "lines": [{**STOP_LINE, "points": [[0.0, 0.6], [1.0, 0.6]]}]},
        format="json",
    ).json()
    assert patched["location"] == "moved"
    assert patched["lines"][0]["id"] == line_id
    assert patched["lines"][0]["points"] == [[0.0, 0.6], [1.0, 0.6]]
    assert patched["zones"] == camera["zones"]

    # when zones are replaced by PATCH
    zones = [{"name": "crosswalk", "polygon": [[0.1, 0.7], [0.9, 0.7], [0.9, 0.9], [0.1, 0.9]]}]
    rezoned = api.patch(f"{URL}{camera['id']}/", {"zones": zones}, format="json").json()
    assert [{k: z[k] for k in ("name", "polygon")} for z in rezoned["zones"]] == zones
    assert rezoned["lines"] == patched["lines"]
    assert api.get(f"{URL}{camera['id']}/").json()["zones"] == rezoned["zones"]


def test_camera_validation(api: Any, db: None) -> None:
    bad_point = {**STOP_LINE, "points": [[0.1, 1.5], [0.9, 0.5]]}
    assert_error(api.post(URL, {"name": "a", "lines": [bad_point]}, format="json"), 400)
    parallel = {**STOP_LINE, "in_direction": "left"}
    assert_error(api.post(URL, {"name": "a", "lines": [parallel]}, format="json"), 400)
    assert_error(api.post(URL, {"name": "a", "lines": [STOP_LINE, STOP_LINE]}, format="json"), 400)
    assert_error(
        api.post(URL, {"name": "a", "zones": [{"name": "z", "polygon": [[0, 0], [1, 1]]}]}, format="json"), 400
    )
    assert api.post(URL, {"name": "a"}, format="json").status_code == 201
    assert_error(api.post(URL, {"name": "a"}, format="json"), 409)


def test_other_organization_cameras_are_404(api: Any, other_api: Any, db: None) -> None:
    camera = api.post(URL, {"name": "mine", "lines": [STOP_LINE]}, format="json").json()
    assert_error(other_api.get(f"{URL}{camera['id']}/"), 404)
    assert_error(other_api.patch(f"{URL}{camera['id']}/", {"name": "x"}, format="json"), 404)
    assert_error(other_api.delete(f"{URL}{camera['id']}/"), 404)
    assert_error(
        other_api.get(f"{URL}{camera['id']}/counts/", {"start": "2024-01-01T00:00Z", "end": "2024-01-02T00:00Z"}), 404
    )
    assert_error(other_api.get(f"{URL}{camera['id']}/frame/"), 404)
    assert other_api.get(URL).json()["count"] == 0


def _crossing(camera: Any, video: Any, line: str, category: str, direction: str, at: datetime, frame: int) -> None:
    from apps.traffic.models import LineCrossing

    LineCrossing.objects.create(
        organization=camera.organization,
        camera=camera,
        video=video,
        line_name=line,
        track_id=frame,
        class_name=category,
        category=category,
        direction=direction,
        frame=frame,
        occurred_at=at,
    )


def test_counts_over_time_from_crossings_per_line_and_bucket(api: Any, org: Any, detector: Any) -> None:
    # given crossings on two lines at known times (rows as the video job writes them)
    from apps.traffic.models import Camera, VideoAnalysis
    from core.jobs.models import Job

    camera_id = api.post(URL, {"name": "cam", "lines": [STOP_LINE]}, format="json").json()["id"]
    camera = Camera.objects.get(pk=camera_id)
    job = Job.objects.create(organization=org, kind="traffic.video_count", queue="inference")
    video = VideoAnalysis.objects.create(
        organization=org,
        camera=camera,
        job=job,
        video="x.mp4",
        model_version=detector,  # required since videos are ServedByVersion rows
        model_name="m",
        model_version_number=1,
        recorded_at=datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
        imgsz=64,
        conf=0.1,
        anti_flicker_frames=3,
    )
    t0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    _crossing(camera, video, "stop", "car", "in", t0 + timedelta(minutes=5), 1)
    _crossing(camera, video, "stop", "car", "in", t0 + timedelta(minutes=20), 2)
    _crossing(camera, video, "stop", "bus", "out", t0 + timedelta(minutes=70), 3)
    _crossing(camera, video, "other", "car", "out", t0 + timedelta(minutes=10), 4)

    # when
    quarter = api.get(
        f"{URL}{camera_id}/counts/",
        {"start": "2024-05-01T08:00:00Z", "end": "2024-05-01T09:30:00Z", "bucket": "15m", "line": "stop"},
    ).json()
    hourly = api.get(
        f"{URL}{camera_id}/counts/", {"start": "2024-05-01T08:00:00Z", "end": "2024-05-01T10:00:00Z", "bucket": "hour"}
    ).json()

    # then
    assert len(quarter["buckets"]) == 6
    assert [b["in"] for b in quarter["buckets"]] == [{"car": 1}, {"car": 1}, {}, {}, {}, {}]
    assert quarter["buckets"][4]["out"] == {"bus": 1}
    assert quarter["totals"] == {"bus": 1, "car": 2}
    assert [b["counts"] for b in hourly["buckets"]] == [{"car": 3}, {"bus": 1}]
    assert hourly["buckets"][0]["in"] == {"car": 2} and hourly["buckets"][0]["out"] == {"car": 1}
    day = api.get(
        f"{URL}{camera_id}/counts/", {"start": "2024-05-01T00:00:00Z", "end": "2024-05-02T00:00:00Z", "bucket": "day"}
    ).json()
    assert day["totals"] == {"bus": 1, "car": 3}


def test_counts_from_still_images_and_bad_queries(api: Any, detector: Any) -> None:
    camera_id = api.post(URL, {"name": "still"}, format="json").json()["id"]
    run = api.post(
        "/api/v1/traffic/detections/",
        {"image": jpeg_upload(), "camera": camera_id, "conf": 0.001, "captured_at": "2024-05-01T08:10:00Z"},
        format="multipart",
    ).json()
    counts = api.get(
        f"{URL}{camera_id}/counts/", {"start": "2024-05-01T08:00:00Z", "end": "2024-05-01T09:00:00Z", "bucket": "hour"}
    ).json()
    assert run["counts"], "the tiny model counts something at this confidence"
    assert counts["buckets"][0]["images"] == 1
    assert counts["buckets"][0]["detected"] == run["counts"]
    assert counts["buckets"][0]["counts"] == run["counts"] and counts["totals"] == run["counts"]
    # a line's counts are crossings only: still images have no line
    line_counts = api.get(
        f"{URL}{camera_id}/counts/",
        {"start": "2024-05-01T08:00:00Z", "end": "2024-05-01T09:00:00Z", "bucket": "15m", "line": "stop"},
    )
    assert_error(line_counts, 404)  # this camera has no line "stop"
    counts_url = f"{URL}{camera_id}/counts/"
    # without a period: the last day in hours, the last 30 days in days, ending now
    last_day = api.get(counts_url).json()
    assert last_day["bucket"] == "hour" and len(last_day["buckets"]) in (24, 25), last_day["start"]  # 24 on the hour
    assert len(api.get(counts_url, {"bucket": "day"}).json()["buckets"]) in (30, 31)
    assert_error(api.get(counts_url, {"start": "yesterday"}), 400)
    assert_error(api.get(counts_url, {"start": "2024-05-02T00:00Z", "end": "2024-05-01T00:00Z"}), 400)
    assert_error(api.get(counts_url, {"start": "2024-05-01T00:00Z", "end": "2024-05-02T00:00Z", "bucket": "week"}), 400)
    assert_error(api.get(counts_url, {"start": "2000-01-01T00:00Z", "end": "2024-05-02T00:00Z", "bucket": "15m"}), 400)
    assert_error(api.get(counts_url, {"start": "2024-05-01T00:00Z", "end": "2024-05-02T00:00Z", "line": "nope"}), 404)
