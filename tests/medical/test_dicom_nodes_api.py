"""The DICOM nodes API (`/api/v1/medical/dicom-nodes/`): create, list, read, change, delete;
AE title and host validation, uniqueness across organizations without disclosure, audit rows,
access (org admins and `medical` keys only) and tenancy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apps.medical.models import DicomNode
from core.audit.models import AuditEvent
from tests.conftest import assert_error

URL = "/api/v1/medical/dicom-nodes/"

pytestmark = pytest.mark.django_db


def create(client: Any, **fields: Any) -> Any:
    return client.post(URL, {"ae_title": "CT_SCANNER", **fields}, format="json")


def test_create_list_get_patch_delete(api: Any, org: Any) -> None:
    # when: created
    response = create(api, description="CT in room 3", host="10.0.0.5")
    # then
    assert response.status_code == 201, response.content
    node = response.json()
    assert node | {"id": 0, "created_at": "", "updated_at": ""} == {
        "id": 0,
        "ae_title": "CT_SCANNER",
        "description": "CT in room 3",
        "host": "10.0.0.5",
        "active": True,
        "created_at": "",
        "updated_at": "",
    }
    # and listed (paginated) and read
    listed = api.get(URL).json()
    assert [item["ae_title"] for item in listed["results"]] == ["CT_SCANNER"]
    assert api.get(f"{URL}{node['id']}/").json() == node
    # when: changed
    patched = api.patch(f"{URL}{node['id']}/", {"active": False, "host": ""}, format="json")
    # then
    assert patched.status_code == 200, patched.content
    assert patched.json()["active"] is False
    assert patched.json()["host"] == ""
    assert patched.json()["ae_title"] == "CT_SCANNER"
    # when: deleted
    assert api.delete(f"{URL}{node['id']}/").status_code == 204
    # then
    assert_error(api.get(f"{URL}{node['id']}/"), 404, "not_found")
    assert not DicomNode.objects.exists()


def test_every_change_is_audited(api: Any, org: Any) -> None:
    # given
    node = create(api).json()
    # when
    api.patch(f"{URL}{node['id']}/", {"ae_title": "CT_ROOM_3"}, format="json")
    api.delete(f"{URL}{node['id']}/")
    # then
    events = AuditEvent.objects.filter(organization=org, object_type="medical.dicomnode").order_by("id")
    assert [event.action for event in events] == [
        "medical.dicom_node.create",
        "medical.dicom_node.update",
        "medical.dicom_node.delete",
    ]
    assert events[1].details["changed"] == ["ae_title"]
    assert events[1].details["before"] == {"ae_title": "CT_SCANNER"}
    assert all(event.object_id == str(node["id"]) for event in events)
    assert all(event.actor_label.startswith("api-key:") for event in events)


def test_non_significant_spaces_are_removed_and_case_is_kept(api: Any) -> None:
    # when
    response = create(api, ae_title="  ct_Scanner ")
    # then
    assert response.status_code == 201, response.content
    assert response.json()["ae_title"] == "ct_Scanner"


@pytest.mark.parametrize(
    "ae_title",
    ["", "    ", "A" * 17, "CT\\SCANNER", "CT\tSCANNER", "CT\nSCANNER", "CT\x00", "CTÄ", "CT\x7f"],
    ids=["empty", "spaces", "too-long", "backslash", "tab", "newline", "nul", "non-ascii", "del"],
)
def test_an_invalid_ae_title_is_400(api: Any, ae_title: str) -> None:
    # when
    response = create(api, ae_title=ae_title)
    # then
    error = assert_error(response, 400)
    assert "ae_title" in error["fields"]
    assert not DicomNode.objects.exists()


@pytest.mark.parametrize(
    ("host", "stored"),
    [("192.0.2.10", "192.0.2.10"), ("2001:DB8::1", "2001:db8::1"), ("PACS.Hospital.example", "pacs.hospital.example")],
)
def test_a_host_is_an_address_or_a_name(api: Any, host: str, stored: str) -> None:
    # when
    response = create(api, host=host)
    # then
    assert response.status_code == 201, response.content
    assert response.json()["host"] == stored


@pytest.mark.parametrize("host", ["not a host", "-bad.example", "300.1.2.3", "a" * 64 + ".example", "host_name"])
def test_an_invalid_host_is_400(api: Any, host: str) -> None:
    # when / then
    error = assert_error(create(api, host=host), 400)
    assert "host" in error["fields"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ae_title": None},
        {"ae_title": ["CT"]},
        {"ae_title": "CT", "active": "maybe"},
        {"ae_title": "CT", "host": []},
        {"ae_title": "CT", "description": "x" * 201},
    ],
)
def test_a_malformed_body_is_400(api: Any, body: dict[str, Any]) -> None:
    # when / then
    assert_error(api.post(URL, body, format="json"), 400)


def test_a_title_in_use_in_this_organization_is_409(api: Any) -> None:
    # given
    create(api)
    # when / then
    error = assert_error(create(api, ae_title=" CT_SCANNER"), 409, "conflict")
    assert "ae_title" in error["fields"]


def test_a_title_another_organization_uses_is_409_without_saying_whose(api: Any, other_api: Any) -> None:
    # given: globex's node
    create(other_api)
    # when: acme asks for the same title
    response = create(api)
    # then
    error = assert_error(response, 409, "conflict")
    assert "globex" not in response.content.decode().lower()
    assert error["message"] == "This AE title is already in use by a DICOM node."


def test_renaming_to_a_title_in_use_is_409(api: Any, other_api: Any) -> None:
    # given
    create(other_api, ae_title="MR_GLOBEX")
    mine = create(api).json()
    # when / then
    assert_error(api.patch(f"{URL}{mine['id']}/", {"ae_title": "MR_GLOBEX"}, format="json"), 409, "conflict")
    assert api.get(f"{URL}{mine['id']}/").json()["ae_title"] == "CT_SCANNER"


def test_patch_validates_like_create(api: Any) -> None:
    # given
    node = create(api).json()
    # when / then
    assert_error(api.patch(f"{URL}{node['id']}/", {"ae_title": "BAD\\TITLE"}, format="json"), 400)
    assert_error(api.patch(f"{URL}{node['id']}/", {"host": "not a host"}, format="json"), 400)
    assert api.patch(f"{URL}{node['id']}/", {}, format="json").status_code == 200


def test_another_organizations_node_is_404(api: Any, other_api: Any) -> None:
    # given
    node = create(api).json()
    # when / then
    path = f"{URL}{node['id']}/"
    assert_error(other_api.get(path), 404, "not_found")
    assert_error(other_api.patch(path, {"active": False}, format="json"), 404, "not_found")
    assert_error(other_api.delete(path), 404, "not_found")
    assert other_api.get(URL).json()["results"] == []
    assert DicomNode.objects.get(pk=node["id"]).active is True


def test_a_key_without_the_medical_scope_is_403(org: Any, api_client_for: Callable[..., Any]) -> None:
    # given
    finance_only = api_client_for(org, scopes=("finance",))
    # when / then
    assert_error(finance_only.get(URL), 403, "permission_denied")
    assert_error(create(finance_only), 403, "permission_denied")


def test_an_org_admin_session_may_manage_nodes(org: Any, client_for: Callable[..., Any]) -> None:
    # given
    admin = client_for(org, "org_admin")
    # when
    response = admin.post(URL, {"ae_title": "CT_SCANNER"}, content_type="application/json")
    # then
    assert response.status_code == 201, response.content
    assert admin.get(URL).json()["count"] == 1


@pytest.mark.parametrize("role", ["clinician", "credit_analyst"])
def test_other_roles_may_not_read_or_change_nodes(org: Any, role: str, client_for: Callable[..., Any]) -> None:
    # given
    member = client_for(org, role)
    # when / then
    assert_error(member.get(URL), 403, "permission_denied")
    assert_error(member.post(URL, {"ae_title": "CT"}, content_type="application/json"), 403, "permission_denied")
    assert not DicomNode.objects.exists()


def test_a_json_body_only(api: Any) -> None:
    # when / then
    assert_error(api.post(URL, "ae_title=CT", content_type="application/x-www-form-urlencoded"), 415)
