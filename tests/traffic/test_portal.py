"""The operator portal, through Django's test client (the browser flow is in tests/browser)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.traffic.conftest import jpeg_upload


def _login(client: Any, make_member: Any, org: Any, role: str = "traffic_operator") -> None:
    make_member(org, role=role, username=f"u-{role}", password="pass-1234")
    assert client.login(username=f"u-{role}", password="pass-1234")


def test_operator_registers_a_camera_detects_and_sees_counts(
    client: Any, make_member: Any, org: Any, detector: Any
) -> None:
    _login(client, make_member, org)
    response = client.post(
        "/portal/traffic/",
        {
            "name": "Main St",
            "location": "north",
            "line_name": "stop",
            "x1": 0.1,
            "y1": 0.5,
            "x2": 0.9,
            "y2": 0.5,
            "in_direction": "down",
        },
    )
    assert response.status_code == 302
    camera_url = response["Location"]
    response = client.post(
        "/portal/traffic/detect/",
        {"image": jpeg_upload(), "conf": 0.001, "camera": camera_url.rstrip("/").split("/")[-1]},
    )
    assert response.status_code == 302
    detail = client.get(response["Location"])
    assert b'data-testid="annotated-image"' in detail.content
    page = client.get(camera_url)
    assert page.status_code == 200
    assert b"<svg" in page.content and b'data-testid="camera-overlay"' in page.content
    assert client.get("/portal/traffic/models/traffic-detector/").status_code == 200
    assert client.get("/portal/traffic/train/").status_code == 200


def test_camera_page_draws_lines_and_zones_over_the_last_frame_and_a_chart_per_line(
    client: Any, make_member: Any, org: Any, detector: Any
) -> None:
    # given a camera with a line and a zone that has a last frame (from an image detection)
    from apps.traffic.detection import detection_run_create
    from apps.traffic.services import camera_create
    from core.tenancy.actors import Actor

    camera = camera_create(
        actor=Actor.system(org),
        name="Main St",
        lines=[{"name": "stop", "points": [[0.1, 0.5], [0.9, 0.5]], "in_direction": "down"}],
        zones=[{"name": "crosswalk", "polygon": [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0]]}],
    )
    detection_run_create(actor=Actor.system(org), upload=jpeg_upload(size=64), camera=camera, conf=0.001)
    _login(client, make_member, org)

    # when the operator opens the camera, for all lines and for the line "stop"
    page = client.get(f"/portal/traffic/cameras/{camera.pk}/").content.decode()
    line_page = client.get(f"/portal/traffic/cameras/{camera.pk}/", {"line": "stop", "bucket": "15m"}).content.decode()

    # then the frame is shown under an overlay with the line (scaled to the 64 px frame) and the zone
    assert f'src="/api/v1/traffic/cameras/{camera.pk}/frame/"' in page
    assert '<line x1="6.4" y1="32.0" x2="57.6" y2="32.0"' in page
    assert '<polygon points="0.0,32.0 64.0,32.0 64.0,64.0"' in page
    # and the counts chart, with the line selectable
    assert 'data-testid="counts-chart"><svg' in page and 'aria-label="Counts over time"' in page
    assert '<option value="stop" selected>' in line_page and 'data-testid="counts-chart"><svg' in line_page


def test_portal_hides_other_tenants_and_other_roles(client: Any, make_member: Any, org: Any, other_org: Any) -> None:
    from apps.traffic.services import camera_create
    from core.tenancy.actors import Actor

    theirs = camera_create(actor=Actor.system(other_org), name="theirs")
    _login(client, make_member, org)
    assert client.get(f"/portal/traffic/cameras/{theirs.pk}/").status_code == 404
    client.logout()
    _login(client, make_member, org, role="clinician")
    assert client.get("/portal/traffic/").status_code == 403


def test_portal_hides_every_traffic_object_of_another_organization(
    client: Any, make_member: Any, org: Any, other_org: Any, import_detector: Any, tiny_weights: Path, tmp_path: Path
) -> None:
    # given another organization's camera, detection, video, detector and training run
    from apps.traffic.detection import detection_run_create
    from apps.traffic.services import camera_create
    from apps.traffic.training import detector_training_start
    from apps.traffic.video_analysis import video_analysis_create
    from core.tenancy.actors import Actor
    from fixtures.traffic_shapes import crossing_clip, shapes_dataset_zip

    theirs = Actor.system(other_org)
    import_detector(tiny_weights, name="their-detector", organization=other_org)
    camera = camera_create(actor=theirs, name="theirs", model_name="their-detector")
    detection = detection_run_create(actor=theirs, upload=jpeg_upload(), camera=camera, conf=0.001)
    clip = crossing_clip(tmp_path / "clip.avi", size=64)
    video = video_analysis_create(
        actor=theirs,
        camera=camera,
        upload=SimpleUploadedFile("clip.avi", clip.path.read_bytes(), content_type="video/x-msvideo"),
    )
    dataset = shapes_dataset_zip(tmp_path / "d.zip", train=2, val=1, size=32)
    run = detector_training_start(
        actor=theirs,
        upload=SimpleUploadedFile("d.zip", dataset.read_bytes(), content_type="application/zip"),
        model_name="their-detector",
        epochs=1,
        imgsz=32,
        batch=2,
    )

    # when an operator and an admin of acme look for them, then every page and file is a 404
    for role in ("traffic_operator", "org_admin"):
        _login(client, make_member, org, role=role)
        for url in (
            f"/portal/traffic/cameras/{camera.pk}/",
            f"/portal/traffic/cameras/{camera.pk}/video/",
            f"/portal/traffic/detect/?camera={camera.pk}",
            f"/portal/traffic/detections/{detection.pk}/",
            f"/portal/traffic/videos/{video.pk}/",
            "/portal/traffic/models/their-detector/",
            f"/portal/traffic/training-runs/{run.pk}/",
            f"/api/v1/traffic/detections/{detection.pk}/annotated/",
            f"/api/v1/traffic/detections/{detection.pk}/image/",
            f"/api/v1/traffic/cameras/{camera.pk}/frame/",
        ):
            assert client.get(url).status_code == 404, (role, url)
        # and posting an image for their camera is a 404 too, with nothing stored
        response = client.post("/portal/traffic/detect/", {"image": jpeg_upload(), "camera": camera.pk, "conf": 0.25})
        assert response.status_code == 404
        # and nothing of theirs is listed on the overview
        overview = client.get("/portal/traffic/").content.decode()
        assert "theirs" not in overview and "their-detector" not in overview
        client.logout()
    from apps.traffic.models import DetectionRun

    assert DetectionRun.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_operator_uploads_a_video_and_sees_progress_then_line_counts(
    client: Any, make_member: Any, org: Any, detector: Any, tmp_path: Path
) -> None:
    # given an operator and a camera with a counting line
    from apps.traffic.services import camera_create
    from core.tenancy.actors import Actor
    from fixtures.traffic_shapes import crossing_clip

    camera = camera_create(
        actor=Actor.system(org),
        name="Clip cam",
        lines=[{"name": "stop", "points": [[0.05, 0.5], [0.95, 0.5]], "in_direction": "down"}],
    )
    _login(client, make_member, org)
    clip = crossing_clip(tmp_path / "clip.mp4", size=64)

    # when a video is uploaded through the camera page's form (the job runs inline in tests)
    page = client.get(f"/portal/traffic/cameras/{camera.pk}/").content.decode()
    assert 'data-testid="video-form"' in page
    response = client.post(
        f"/portal/traffic/cameras/{camera.pk}/video/",
        {
            "video": SimpleUploadedFile("clip.mp4", clip.path.read_bytes(), content_type="video/mp4"),
            "anti_flicker_frames": 3,
        },
    )

    # then the video page has the live job progress widget and the line counts of the finished job
    assert response.status_code == 302
    detail = client.get(response["Location"])
    html = detail.content.decode()
    assert "data-job-progress" in html and 'data-job-status="succeeded"' in html
    assert 'data-testid="line-counts"' in html
    video = detail.context["video"]
    assert video.frames == clip.frames
    for row in video.line_totals:
        assert f"<td>{row['line']}</td><td>{row['category']}</td><td>{row['in']}</td><td>{row['out']}</td>" in html
    # and a file that is not a video is refused on the form, with nothing stored
    bad = client.post(
        f"/portal/traffic/cameras/{camera.pk}/video/",
        {"video": SimpleUploadedFile("x.txt", b"hello", content_type="text/plain"), "anti_flicker_frames": 3},
    )
    assert bad.status_code == 200 and "Unsupported media type" in bad.content.decode()
    from apps.traffic.models import VideoAnalysis

    assert VideoAnalysis.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_admin_trains_from_the_portal_and_sees_epochs_versions_and_per_class_metrics(
    client: Any, make_member: Any, org: Any, tmp_path: Path
) -> None:
    # given an org admin and a generated dataset
    from fixtures.traffic_shapes import shapes_dataset_zip

    _login(client, make_member, org, role="org_admin")
    dataset = shapes_dataset_zip(tmp_path / "shapes.zip", train=8, val=4, size=64)

    # when the training form is submitted (the job runs inline in tests)
    assert 'data-testid="train-form"' in client.get("/portal/traffic/train/").content.decode()
    response = client.post(
        "/portal/traffic/train/",
        {
            "dataset": SimpleUploadedFile("shapes.zip", dataset.read_bytes(), content_type="application/zip"),
            "model": "portal-detector",
            "epochs": 2,
            "imgsz": 64,
            "batch": 8,
            "architecture": "yolo11n",
        },
    )

    # then the training run page shows the job's progress and one row per epoch
    assert response.status_code == 302
    run_page = client.get(response["Location"])
    html = run_page.content.decode()
    assert "data-job-progress" in html and 'data-job-status="succeeded"' in html
    assert "<td>1/2</td>" in html and "<td>2/2</td>" in html

    # and the model page lists the new version with its per-class metrics
    model_page = client.get("/portal/traffic/models/portal-detector/").content.decode()
    assert "<td>v1</td>" in model_page and 'data-testid="per-class"' in model_page
    assert "<td>car</td>" in model_page and "<td>person</td>" in model_page


def test_a_bad_image_on_the_portal_form_shows_the_error_and_stores_nothing(
    client: Any, make_member: Any, org: Any, detector: Any
) -> None:
    _login(client, make_member, org)
    response = client.post(
        "/portal/traffic/detect/",
        {"image": SimpleUploadedFile("x.jpg", b"not an image", content_type="image/jpeg"), "conf": 0.25},
    )
    assert response.status_code == 200 and "Not a readable image" in response.content.decode()
    from apps.traffic.models import DetectionRun

    assert DetectionRun.objects.count() == 0
