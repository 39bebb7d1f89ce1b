"""The operator portal, through Django's test client (the browser flow is in tests/browser)."""

from __future__ import annotations

from typing import Any

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


def test_portal_hides_other_tenants_and_other_roles(client: Any, make_member: Any, org: Any, other_org: Any) -> None:
    from apps.traffic.services import camera_create
    from core.tenancy.actors import Actor

    theirs = camera_create(actor=Actor.system(other_org), name="theirs")
    _login(client, make_member, org)
    assert client.get(f"/portal/traffic/cameras/{theirs.pk}/").status_code == 404
    client.logout()
    _login(client, make_member, org, role="clinician")
    assert client.get("/portal/traffic/").status_code == 403
