"""Admin writes of the domain apps go through their services: audited, validated, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.traffic.models import Camera, CountingLine
from apps.traffic.services import camera_create
from core.audit.models import AuditEvent
from core.tenancy.actors import Actor

pytestmark = pytest.mark.django_db

NO_INLINES = {
    f"{prefix}-{key}": value
    for prefix in ("lines", "zones")
    for key, value in {"TOTAL_FORMS": "0", "INITIAL_FORMS": "0", "MIN_NUM_FORMS": "0", "MAX_NUM_FORMS": "1000"}.items()
}


@pytest.fixture
def superuser_client(django_user_model: Any) -> tuple[Client, Any]:
    user = django_user_model.objects.create_superuser("root", "root@example.org", "root-pass-123")
    client = Client()
    client.force_login(user)
    return client, user


def camera_form(org: Any, **values: Any) -> dict[str, Any]:
    return {"organization": org.pk, "name": "gate", "location": "", "description": "", "model_name": "", **values}


def test_camera_created_in_admin_is_audited_as_the_staff_user(org: Any, superuser_client: Any) -> None:
    # given
    client, user = superuser_client
    # when
    response = client.post("/admin/traffic/camera/add/", {**camera_form(org, location="North gate"), **NO_INLINES})
    # then
    assert response.status_code == 302, response.content[:800]
    camera = Camera.objects.get(organization=org, name="gate")
    assert (camera.location, camera.created_by) == ("North gate", user)
    event = AuditEvent.objects.get(action="traffic.camera.create", object_id=str(camera.pk))
    assert event.actor_user == user


def test_camera_changed_and_deleted_in_admin_are_audited(org: Any, superuser_client: Any) -> None:
    # given
    client, user = superuser_client
    camera = camera_create(actor=Actor.system(org), name="gate")
    # when
    changed = client.post(
        f"/admin/traffic/camera/{camera.pk}/change/", {**camera_form(org, location="South"), **NO_INLINES}
    )
    deleted = client.post(f"/admin/traffic/camera/{camera.pk}/delete/", {"post": "yes"})
    # then
    assert (changed.status_code, deleted.status_code) == (302, 302)
    update = AuditEvent.objects.get(action="traffic.camera.update", object_id=str(camera.pk))
    assert (update.actor_user, update.details["changed"]) == (user, ["location"])
    assert AuditEvent.objects.filter(action="traffic.camera.delete", actor_user=user).exists()
    assert not Camera.objects.filter(pk=camera.pk).exists()


def test_counting_lines_are_shown_not_written_by_the_camera_admin(org: Any, superuser_client: Any) -> None:
    # given: a camera with a line; lines are validated by the traffic services (portal and API)
    client, _ = superuser_client
    line = {"name": "stop", "points": [[0.1, 0.5], [0.9, 0.5]], "in_direction": "down"}
    camera = camera_create(actor=Actor.system(org), name="gate", lines=[line])
    smuggled = {
        "lines-TOTAL_FORMS": "1",
        "lines-0-name": "smuggled",
        "lines-0-x1": "0.1",
        "lines-0-y1": "0.1",
        "lines-0-x2": "0.9",
        "lines-0-y2": "0.1",
        "lines-0-in_direction": "down",
    }
    # when
    page = client.get(f"/admin/traffic/camera/{camera.pk}/change/")
    response = client.post(f"/admin/traffic/camera/{camera.pk}/change/", {**camera_form(org), **NO_INLINES, **smuggled})
    # then
    assert page.status_code == 200
    assert "stop" in page.content.decode()
    assert response.status_code in {200, 302}
    assert list(CountingLine.objects.filter(camera=camera).values_list("name", flat=True)) == ["stop"]


def test_organization_of_an_existing_camera_cannot_be_changed(org: Any, other_org: Any, superuser_client: Any) -> None:
    # given
    client, _ = superuser_client
    camera = camera_create(actor=Actor.system(org), name="gate")
    # when
    client.post(f"/admin/traffic/camera/{camera.pk}/change/", {**camera_form(other_org), **NO_INLINES})
    # then
    camera.refresh_from_db()
    assert camera.organization == org
