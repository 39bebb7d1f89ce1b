"""`seed_demo`'s traffic part: the demo camera and clip, counted by the demo-recipe detector."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_demo_camera_counts_the_demo_clip(
    api: Any, org: Any, import_detector: Any, shapes_weights: Path, settings: Any, tmp_path: Path
) -> None:
    # given the demo detector already registered (the seed trains it with the same recipe when missing)
    settings.VAR_DIR = tmp_path / "var"
    from apps.traffic.demo import DEMO_CAMERA, demo_clip_path, traffic_demo_seed
    from apps.traffic.models import Camera

    import_detector(shapes_weights)

    # when the demo is seeded twice
    out = io.StringIO()
    traffic_demo_seed(org=org, stdout=out)
    traffic_demo_seed(org=org, stdout=out)

    # then there is one demo camera and a clip, and uploading the clip to it gives the announced counts
    camera = Camera.objects.get(organization=org, name=DEMO_CAMERA)
    clip = demo_clip_path()
    assert clip.exists() and "car in 2, car out 1, person in 1, person out 1" in out.getvalue()
    upload = SimpleUploadedFile(clip.name, clip.read_bytes(), content_type="video/mp4")
    response = api.post("/api/v1/traffic/videos/", {"video": upload, "camera": camera.pk}, format="multipart")
    assert response.status_code == 202, response.content
    body = api.get(f"/api/v1/traffic/videos/{response.json()['id']}/").json()
    assert body["status"] == "succeeded", body
    assert sorted(body["line_crossings"], key=lambda row: row["category"]) == [
        {"line": "stop-line", "category": "car", "in": 2, "out": 1},
        {"line": "stop-line", "category": "person", "in": 1, "out": 1},
    ]
