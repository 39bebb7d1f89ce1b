"""The medical back office: staff see their organizations' index, PHI log, DICOM nodes and
archive settings only (another organization's row is a 404); the index and the log are
read-only; opening an index row writes a PHI access row; node and settings edits go through the
services (validated, audited)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from apps.medical.models import ArchiveSettings, DicomNode, Instance, PhiAccess, Series, Study
from core.audit.models import AuditEvent
from tests.medical.conftest import CT

pytestmark = pytest.mark.django_db

MODELS = ("study", "series", "instance", "phiaccess", "dicomnode", "archivesettings")


@pytest.fixture
def staff(org: Any, make_member: Callable[..., Any]) -> Client:
    """A staff org admin of acme with every medical admin permission."""
    user = make_member(org, "org_admin", username="staff-acme")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="medical"))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def both_archives(stow: Callable[..., Any], other_api: Any, org: Any, other_org: Any) -> dict[str, Any]:
    """The CT stored in both organizations (the same UIDs, two unrelated studies), a node each."""
    assert stow([CT]).status_code == 200
    assert stow([CT], client=other_api).status_code == 200
    for tenant in (org, other_org):
        DicomNode.objects.create(organization=tenant, ae_title=f"{tenant.slug.upper()}_CT")
    return {"mine": Study.objects.get(organization=org), "theirs": Study.objects.get(organization=other_org)}


def admin_url(model: str, pk: Any = None, action: str = "change") -> str:
    return f"/admin/medical/{model}/" if pk is None else f"/admin/medical/{model}/{pk}/{action}/"


def test_the_lists_show_only_the_staff_members_organizations(staff: Client, both_archives: dict[str, Any]) -> None:
    mine, theirs = both_archives["mine"], both_archives["theirs"]
    for model in MODELS:
        response = staff.get(admin_url(model))
        assert response.status_code == 200, model
    body = staff.get(admin_url("study")).content.decode()
    assert f"/admin/medical/study/{mine.pk}/change/" in body
    assert f"/admin/medical/study/{theirs.pk}/change/" not in body
    nodes = staff.get(admin_url("dicomnode")).content.decode()
    assert "ACME_CT" in nodes and "GLOBEX_CT" not in nodes


def test_another_organizations_rows_are_404(staff: Client, both_archives: dict[str, Any], other_org: Any) -> None:
    theirs = both_archives["theirs"]
    rows = {
        "study": theirs.pk,
        "series": Series.objects.get(organization=other_org).pk,
        "instance": Instance.objects.get(organization=other_org).pk,
        "dicomnode": DicomNode.objects.get(organization=other_org).pk,
    }
    for model, pk in rows.items():
        for action in ("change", "delete", "history"):
            assert staff.get(admin_url(model, pk, action)).status_code == 404, (model, action)
    assert not PhiAccess.objects.filter(kind="portal").exists()


def test_opening_a_study_writes_a_phi_row_and_the_index_is_read_only(
    staff: Client, both_archives: dict[str, Any]
) -> None:
    # given
    mine = both_archives["mine"]
    # when
    response = staff.get(admin_url("study", mine.pk))
    # then: shown, not editable, recorded
    assert response.status_code == 200
    assert b'name="_save"' not in response.content
    access = PhiAccess.objects.get(kind="portal")
    assert access.actor_label == "staff-acme"
    assert list(access.studies.values_list("study_instance_uid", flat=True)) == [mine.study_instance_uid]
    # and: nothing can be added or deleted
    assert staff.get("/admin/medical/study/add/").status_code == 403
    assert staff.post(admin_url("study", mine.pk, "delete"), {"post": "yes"}).status_code == 403
    assert Study.objects.filter(pk=mine.pk).exists()


def test_reading_the_access_log_in_the_admin_is_audited(staff: Client, both_archives: dict[str, Any]) -> None:
    assert staff.get(admin_url("phiaccess")).status_code == 200
    assert AuditEvent.objects.filter(action="medical.access_log.read").count() == 1


def test_a_dicom_node_is_created_and_changed_through_the_service(staff: Client, org: Any, other_org: Any) -> None:
    # when: a node is added for acme
    response = staff.post(
        "/admin/medical/dicomnode/add/",
        {"organization": org.pk, "ae_title": "  MR_ROOM_2 ", "description": "MR 2", "host": "", "active": "on"},
    )
    # then: stored cleaned, audited
    assert response.status_code == 302, response.content[:2000]
    node = DicomNode.objects.get(ae_title="MR_ROOM_2")
    assert node.organization == org
    assert AuditEvent.objects.filter(action="medical.dicom_node.create").count() == 1
    # and: an invalid title is a form error, not a crash
    bad = staff.post(
        "/admin/medical/dicomnode/add/", {"organization": org.pk, "ae_title": "A" * 17, "host": "", "active": "on"}
    )
    assert bad.status_code == 200 and DicomNode.objects.count() == 1
    # and: another organization cannot be chosen
    other = staff.post(
        "/admin/medical/dicomnode/add/", {"organization": other_org.pk, "ae_title": "X1", "host": "", "active": "on"}
    )
    assert other.status_code == 200 and not DicomNode.objects.filter(ae_title="X1").exists()
    # when: changed
    changed = staff.post(
        admin_url("dicomnode", node.pk), {"ae_title": "MR_ROOM_2", "description": "MR two", "host": "10.0.0.5"}
    )
    assert changed.status_code == 302, changed.content[:2000]
    node.refresh_from_db()
    assert (node.description, node.host, node.active) == ("MR two", "10.0.0.5", False)
    assert AuditEvent.objects.filter(action="medical.dicom_node.update").count() == 1


def test_archive_settings_are_changed_through_the_service(staff: Client, org: Any) -> None:
    # when
    response = staff.post(
        "/admin/medical/archivesettings/add/",
        {
            "organization": org.pk,
            "duplicate_policy": "reject",
            "deidentify_on_receipt": "on",
            "deidentify_options": '{"retain_uids": true}',
        },
    )
    # then
    assert response.status_code == 302, response.content[:2000]
    stored = ArchiveSettings.objects.get(organization=org)
    assert (stored.duplicate_policy, stored.deidentify_on_receipt) == ("reject", True)
    assert stored.deidentify_options["retain_uids"] is True
    assert AuditEvent.objects.filter(action="medical.settings.update").count() == 1
    # and: unknown options are a form error
    bad = staff.post(
        admin_url("archivesettings", stored.pk),
        {"duplicate_policy": "keep", "deidentify_options": '{"retain_names": true}'},
    )
    assert bad.status_code == 200
    stored.refresh_from_db()
    assert stored.duplicate_policy == "reject"


def test_a_superuser_sees_every_organization_and_edits_through_the_services(
    django_user_model: Any, both_archives: dict[str, Any], other_org: Any
) -> None:
    # given: a superuser who is a member of no organization
    root = django_user_model.objects.create_superuser("root", "root@example.org", "root-pass-123")
    client = Client()
    client.force_login(root)
    # when / then: another organization's study opens (and is recorded), its node is changed, audited
    assert client.get(admin_url("study", both_archives["theirs"].pk)).status_code == 200
    assert PhiAccess.objects.get(kind="portal").organization == other_org
    node = DicomNode.objects.get(organization=other_org)
    response = client.post(admin_url("dicomnode", node.pk), {"ae_title": node.ae_title, "description": "by root"})
    assert response.status_code == 302, response.content[:2000]
    event = AuditEvent.objects.get(action="medical.dicom_node.update")
    assert (event.organization, event.actor_label) == (other_org, "root")
