"""`seed_demo`'s traffic part: the demo camera and clip, counted by the demo-recipe detector."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_demo_camera_counts_the_demo_clip(
    api: Any, org: Any, import_detector: Any, shapes_weights: Path, settings: Any, tmp_path: Path
) -> None:
    # given the demo detector already registered (the seed trains it with the same recipe when missing)
    settings.VAR_DIR = tmp_path / "var"
    from apps.traffic.demo import DEMO_CAMERA, DEMO_RECORDINGS_HOURS_AGO, demo_clip_path, traffic_demo_seed
    from apps.traffic.models import Camera

    import_detector(shapes_weights)

    # when the demo is seeded twice
    out = io.StringIO()
    traffic_demo_seed(org=org, stdout=out)
    traffic_demo_seed(org=org, stdout=out)

    # then there is one demo camera and a clip, counted as three recordings of the past hours
    camera = Camera.objects.get(organization=org, name=DEMO_CAMERA)
    clip = demo_clip_path()
    assert clip.exists() and "car in 2, car out 1, person in 1, person out 1" in out.getvalue()
    videos = api.get("/api/v1/traffic/videos/", {"camera": camera.pk}).json()["results"]
    assert len(videos) == len(DEMO_RECORDINGS_HOURS_AGO)
    for video in videos:
        assert video["status"] == "succeeded", video
        assert sorted(video["line_crossings"], key=lambda row: row["category"]) == [
            {"line": "stop-line", "category": "car", "in": 2, "out": 1},
            {"line": "stop-line", "category": "person", "in": 1, "out": 1},
        ]
    # and the counts over time show them, one recording per hour
    counts = api.get(f"/api/v1/traffic/cameras/{camera.pk}/counts/", {"bucket": "hour", "line": "stop-line"}).json()
    busy = [b for b in counts["buckets"] if b["counts"]]
    assert len(busy) == len(DEMO_RECORDINGS_HOURS_AGO), counts
    assert all(b["counts"] == {"car": 3, "person": 2} for b in busy), busy
    assert Camera.objects.get(pk=camera.pk).last_frame, "the camera page draws its lines over the clip's frame"
