"""The clinician's review in the portal (apps/medical/diagnosis_views.py): the AI panel on the
study page and in the viewer, the saliency PNG, and the report page (start, save, sign, amend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from apps.medical.choices import AccessKind, ReportStatus
from apps.medical.models import PhiAccess, Report, Study
from core.audit.models import AuditEvent
from tests.medical.conftest import CT, dicom_path
from tests.medical.review_rows import analysis_make, store_files

pytestmark = pytest.mark.django_db

PORTAL = "/portal/medical"


@pytest.fixture
def study(org: Any, tmp_path: Path) -> Study:
    (instance,) = store_files(org, [dicom_path(CT)], tmp=tmp_path)
    return instance.series.study


@pytest.fixture
def analysis(org: Any, study: Study) -> Any:
    return analysis_make(org, study, label="ChestCT")


@pytest.fixture
def clinician(client_for: Any, org: Any) -> Any:
    return client_for(org, "clinician")


def test_the_study_page_shows_the_suggestion(clinician: Any, study: Study, analysis: Any):
    html = clinician.get(f"{PORTAL}/studies/{study.study_instance_uid}/").content.decode()
    assert 'data-testid="ai-panel"' in html and "ChestCT" in html and "82%" in html
    assert "mednist" in html and "version 1" in html
    assert "<svg" in html and "Class probabilities" in html
    finding = analysis.findings.get(level="instance")
    assert f"?finding={finding.pk}" in html


def test_the_study_page_without_analysis(clinician: Any, study: Study):
    html = clinician.get(f"{PORTAL}/studies/{study.study_instance_uid}/").content.decode()
    assert "No AI analysis of this study yet." in html and 'data-testid="start-report"' in html


def test_the_viewer_offers_the_overlay_on_its_slice(clinician: Any, study: Study, analysis: Any):
    series = study.series.get()
    page = clinician.get(f"{PORTAL}/studies/{study.study_instance_uid}/series/{series.series_instance_uid}/")
    html = page.content.decode()
    assert 'data-testid="ai-overlay-toggle"' in html and 'id="viewer-ai"' in html
    finding = analysis.findings.get(level="instance")
    assert page.context["ai_overlays"] == [
        {
            "finding": finding.pk,
            "sop": finding.instance.sop_instance_uid,
            "frame": 1,
            "series": series.series_instance_uid,
            "label": "ChestCT",
            "probability": pytest.approx(0.82),
            "url": f"{PORTAL}/findings/{finding.pk}/saliency.png",
            "index": 0,
        }
    ]


def test_the_saliency_png_is_served_logged_and_org_scoped(
    clinician: Any, client_for: Any, org: Any, other_org: Any, study: Study, analysis: Any, tmp_path: Path
):
    finding = analysis.findings.get(level="instance")
    url = f"{PORTAL}/findings/{finding.pk}/saliency.png"
    response = clinician.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    path = tmp_path / "saliency.png"
    path.write_bytes(b"".join(response.streaming_content))
    with Image.open(path) as image:
        assert image.size == (finding.instance.columns, finding.instance.rows)
    access = PhiAccess.objects.get(kind=AccessKind.ANALYSIS)
    assert access.sop_instance_uid == finding.instance.sop_instance_uid
    assert client_for(other_org, "clinician").get(url).status_code == 404
    assert client_for(org, "credit_analyst").get(url).status_code == 403
    series_finding = analysis.findings.get(level="series")  # no PNG
    assert clinician.get(f"{PORTAL}/findings/{series_finding.pk}/saliency.png").status_code == 404


def test_write_save_sign_and_amend_in_the_portal(clinician: Any, study: Study, analysis: Any):
    # when the clinician starts the report from the study page
    start = clinician.post(f"{PORTAL}/studies/{study.study_instance_uid}/report/")
    report = Report.objects.get(study=study)
    assert start.status_code == 302 and start["Location"] == f"{PORTAL}/reports/{report.pk}/"
    assert report.analysis_id == analysis.pk
    # and saves a draft
    body = {"findings": "Lungs clear.", "impression": "Normal.", "ai_decision": "changed", "final_label": "CXR"}
    assert clinician.post(f"{PORTAL}/reports/{report.pk}/", {**body, "action": "save"}).status_code == 302
    page = clinician.get(f"{PORTAL}/reports/{report.pk}/").content.decode()
    assert "Lungs clear." in page and 'data-testid="report-sign"' in page
    # a changed suggestion that keeps the label is refused on the form
    bad = clinician.post(f"{PORTAL}/reports/{report.pk}/", {**body, "final_label": "ChestCT", "action": "sign"})
    assert bad.status_code == 400 and "Must differ" in bad.content.decode()
    # when signing
    signed = clinician.post(f"{PORTAL}/reports/{report.pk}/", {**body, "action": "sign"})
    assert signed.status_code == 302
    report.refresh_from_db()
    assert report.status == ReportStatus.SIGNED and report.final_label == "CXR" and report.sr_sop_instance_uid
    page = clinician.get(f"{PORTAL}/reports/{report.pk}/").content.decode()
    assert report.content_sha256 in page and 'data-testid="report-amend"' in page
    # a signed report cannot be saved again
    again = clinician.post(f"{PORTAL}/reports/{report.pk}/", {**body, "impression": "Other.", "action": "save"})
    assert again.status_code == 409
    assert Report.objects.get(pk=report.pk).impression == "Normal."
    # when amending
    amend = clinician.post(f"{PORTAL}/reports/{report.pk}/", {"action": "amend"})
    amendment = Report.objects.get(amends=report)
    assert amend["Location"] == f"{PORTAL}/reports/{amendment.pk}/"
    html = clinician.get(f"{PORTAL}/reports/{amendment.pk}/").content.decode()
    assert "Amendment of version 1" in html and "Version 2" in html
    assert "Amended by" in clinician.get(f"{PORTAL}/reports/{report.pk}/").content.decode()
    # every view of a report page is audited
    assert AuditEvent.objects.filter(action="medical.report.read").count() >= 4
    assert PhiAccess.objects.filter(kind=AccessKind.REPORT).count() >= 4


def test_an_org_admin_cannot_sign_in_the_portal(client_for: Any, org: Any, study: Study, analysis: Any):
    admin = client_for(org, "org_admin")
    admin.post(f"{PORTAL}/studies/{study.study_instance_uid}/report/")
    report = Report.objects.get(study=study)
    page = admin.get(f"{PORTAL}/reports/{report.pk}/").content.decode()
    assert "Only clinicians can sign." in page
    refused = admin.post(
        f"{PORTAL}/reports/{report.pk}/", {"impression": "x", "ai_decision": "accepted", "action": "sign"}
    )
    assert refused.status_code == 403
    assert Report.objects.get(pk=report.pk).status == ReportStatus.DRAFT


def test_report_pages_tenancy_and_roles(client_for: Any, org: Any, other_org: Any, study: Study, analysis: Any):
    client_for(org, "clinician").post(f"{PORTAL}/studies/{study.study_instance_uid}/report/")
    report = Report.objects.get(study=study)
    other = client_for(other_org, "clinician")
    assert other.get(f"{PORTAL}/reports/{report.pk}/").status_code == 404
    assert other.post(f"{PORTAL}/reports/{report.pk}/", {"action": "amend"}).status_code == 404
    assert other.post(f"{PORTAL}/studies/{study.study_instance_uid}/report/").status_code == 404
    analyst = client_for(org, "credit_analyst")
    assert analyst.get(f"{PORTAL}/reports/{report.pk}/").status_code == 403
    assert analyst.get(f"{PORTAL}/studies/{study.study_instance_uid}/report/").status_code == 403
    assert client_for(org, "clinician").post(f"{PORTAL}/reports/{report.pk}/", {"action": "nope"}).status_code == 404
