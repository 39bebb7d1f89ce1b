"""The reports' back office: org-scoped, signed reports read-only, drafts corrected through the
service (audited), every view an audited PHI read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from apps.medical.choices import AccessKind, ReportStatus
from apps.medical.models import PhiAccess, Report
from core.audit.models import AuditEvent
from tests.medical.conftest import CT, dicom_path
from tests.medical.review_rows import analysis_make, store_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(org: Any, make_member: Any) -> Client:
    user = make_member(org, "org_admin", username="staff-acme")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="medical"))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def reports_of_both(org: Any, other_org: Any, tmp_path: Path) -> dict[str, Report]:
    rows = {}
    for tenant in (org, other_org):
        (instance,) = store_files(tenant, [dicom_path(CT)], tmp=tmp_path)
        study = instance.series.study
        analysis = analysis_make(tenant, study)
        rows[tenant.slug] = Report.objects.create(organization=tenant, study=study, analysis=analysis, findings="draft")
    return rows


def test_lists_and_pages_are_org_scoped(staff: Client, reports_of_both: dict[str, Report]):
    mine, theirs = reports_of_both["acme"], reports_of_both["globex"]
    listing = staff.get("/admin/medical/report/").content.decode()
    assert f"/admin/medical/report/{mine.pk}/change/" in listing
    assert f"/admin/medical/report/{theirs.pk}/change/" not in listing
    assert staff.get(f"/admin/medical/report/{theirs.pk}/change/").status_code in (302, 404)
    assert staff.get(f"/admin/medical/report/{mine.pk}/change/").status_code == 200
    assert PhiAccess.objects.filter(kind=AccessKind.REPORT).count() == 1
    assert AuditEvent.objects.filter(action="medical.report.read", object_id=str(mine.pk)).count() == 1


def test_a_draft_is_corrected_through_the_service(staff: Client, reports_of_both: dict[str, Report]):
    mine = reports_of_both["acme"]
    response = staff.post(
        f"/admin/medical/report/{mine.pk}/change/",
        {"findings": "corrected", "impression": "", "ai_decision": "accepted", "final_label": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    mine.refresh_from_db()
    assert mine.findings == "corrected" and mine.final_label == "ChestCT"
    assert AuditEvent.objects.filter(action="medical.report.update", object_id=str(mine.pk)).count() == 1


def test_a_signed_report_is_read_only(staff: Client, reports_of_both: dict[str, Report]):
    mine = reports_of_both["acme"]
    Report.objects.filter(pk=mine.pk).update(status=ReportStatus.SIGNED)
    page = staff.get(f"/admin/medical/report/{mine.pk}/change/")
    assert page.status_code == 200 and 'name="findings"' not in page.content.decode()
    refused = staff.post(f"/admin/medical/report/{mine.pk}/change/", {"findings": "rewritten"})
    assert refused.status_code == 403
    assert Report.objects.get(pk=mine.pk).findings == "draft"
    assert staff.get(f"/admin/medical/report/{mine.pk}/delete/").status_code == 403
    assert staff.get("/admin/medical/report/add/").status_code == 403
