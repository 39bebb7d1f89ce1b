"""The clinician's report: drafts, the signature rules, immutability, the amendment chain, the
content hash and the VERIFIED SR written into the study — through the partner API and the
services (apps/medical/reports.py, apps/medical/report_apis.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.core.files.storage import default_storage
from django.test import Client

from apps.medical import reports, services
from apps.medical.choices import AccessKind, ReceivedVia, ReportStatus
from apps.medical.models import ArchiveSettings, Instance, PhiAccess, Report, Study
from apps.medical.structured_reports import ai_result_read
from core.audit.models import AuditEvent
from core.tenancy.actors import Actor
from tests.conftest import assert_error
from tests.medical import dicom_validators
from tests.medical.conftest import CT, MR, dicom_path
from tests.medical.review_rows import analysis_make, store_files

pytestmark = pytest.mark.django_db

API = "/api/v1/medical"


@pytest.fixture
def study(org: Any, tmp_path: Path) -> Study:
    (instance,) = store_files(org, [dicom_path(CT)], tmp=tmp_path)
    return instance.series.study


@pytest.fixture
def analysis(org: Any, study: Study) -> Any:
    return analysis_make(org, study, label="ChestCT")


@pytest.fixture
def clinician(make_member: Any, org: Any) -> Any:
    user = make_member(org, role="clinician", username="cleo")
    user.first_name, user.last_name = "Cleo", "Doe"
    user.save(update_fields=["first_name", "last_name"])
    return user


@pytest.fixture
def session(clinician: Any) -> Client:
    client = Client()
    client.force_login(clinician)
    return client


def _stored_dataset(row: Instance) -> pydicom.Dataset:
    with default_storage.open(row.file, "rb") as handle:
        return pydicom.dcmread(io.BytesIO(handle.read()))  # in memory: highdicom copies the dataset


def _post(client: Any, url: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(url, json.dumps(body or {}), content_type="application/json")


def _patch(client: Any, url: str, body: dict[str, Any]) -> Any:
    return client.patch(url, json.dumps(body), content_type="application/json")


def _draft(client: Any, study: Study, **body: Any) -> dict[str, Any]:
    response = _post(client, f"{API}/studies/{study.study_instance_uid}/reports/", body)
    assert response.status_code == 201, response.content
    data: dict[str, Any] = response.json()
    return data


def _signed(session: Client, study: Study, **body: Any) -> dict[str, Any]:
    draft = _draft(session, study, impression="Normal chest CT.", ai_decision="accepted", **body)
    response = _post(session, f"{API}/reports/{draft['id']}/sign/")
    assert response.status_code == 200, response.content
    data: dict[str, Any] = response.json()
    return data


# --- Drafts -----------------------------------------------------------------------------------------


def test_a_draft_reviews_the_latest_succeeded_analysis_by_default(api: Any, org: Any, study: Study, analysis: Any):
    # given an older analysis and one whose job has not finished
    analysis_make(org, study, status="running")
    # when
    draft = _draft(api, study, findings="Lungs clear.")
    # then
    assert draft["version"] == 1 and draft["status"] == "draft" and draft["amends"] is None
    assert draft["analysis"]["id"] == analysis.pk
    assert draft["analysis"]["suggested_label"] == "ChestCT"
    assert draft["analysis"]["model"] == "mednist" and draft["analysis"]["model_version"] == 1
    assert draft["findings"] == "Lungs clear." and draft["signed_by"] is None and draft["content_sha256"] == ""
    assert AuditEvent.objects.filter(action="medical.report.create", object_id=str(draft["id"])).count() == 1


def test_a_draft_can_review_no_analysis_or_a_chosen_one(api: Any, org: Any, study: Study, analysis: Any, tmp_path):
    # given
    (other,) = store_files(org, [dicom_path(MR)], tmp=tmp_path)
    # when
    draft = _draft(api, study, analysis=None, impression="Unremarkable.")
    # then
    assert draft["analysis"] is None
    # and another study's analysis, an unfinished one, an unknown one are refused
    other_analysis = analysis_make(org, other.series.study)
    url = f"{API}/studies/{other.series.study.study_instance_uid}/reports/"
    running = analysis_make(org, other.series.study, status="running")
    assert_error(_post(api, url, {"analysis": analysis.pk}), 400, "unknown_analysis")
    assert_error(_post(api, url, {"analysis": running.pk}), 400, "analysis_not_ready")
    assert_error(_post(api, url, {"analysis": 999_999}), 400, "unknown_analysis")
    assert _draft(api, other.series.study, analysis=other_analysis.pk)["analysis"]["id"] == other_analysis.pk


def test_one_chain_per_study(api: Any, study: Study, analysis: Any):
    _draft(api, study)
    assert_error(_post(api, f"{API}/studies/{study.study_instance_uid}/reports/", {}), 409, "report_exists")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ai_decision": "maybe"}, "ai_decision"),
        ({"findings": ["x"]}, "findings"),
        ({"final_label": "x" * 101}, "final_label"),
        ({"impression": "x" * 5_001}, "impression"),
        ({"analysis": "one"}, "analysis"),
        ({"analysis": 0}, "analysis"),
        ({"ai_decision": "accepted", "final_label": "Hand"}, "final_label"),
        ({"ai_decision": "changed", "final_label": "ChestCT"}, "final_label"),
        ({"ai_decision": "rejected", "final_label": "ChestCT"}, "final_label"),
        ({"findings": "bad\x00byte"}, "findings"),
    ],
)
def test_bad_drafts_are_400_with_the_field(api: Any, study: Study, analysis: Any, body: dict[str, Any], field: Any):
    error = assert_error(_post(api, f"{API}/studies/{study.study_instance_uid}/reports/", body), 400)
    if field:
        assert field in error["fields"], error
    assert not Report.objects.exists()


def test_a_report_without_ai_has_no_decision(api: Any, study: Study):
    error = assert_error(
        _post(api, f"{API}/studies/{study.study_instance_uid}/reports/", {"ai_decision": "accepted"}), 400
    )
    assert error["code"] == "no_ai_suggestion"


def test_non_json_and_unknown_study(api: Any, study: Study):
    url = f"{API}/studies/{study.study_instance_uid}/reports/"
    assert api.post(url, "findings=x", content_type="application/x-www-form-urlencoded").status_code == 415
    assert_error(api.post(url, "{not json", content_type="application/json"), 400)
    assert_error(_post(api, f"{API}/studies/1.2.3.4/reports/", {}), 404)
    assert_error(api.get(f"{API}/reports/999999/"), 404)


def test_patch_changes_a_draft_and_accepted_takes_the_suggestion(api: Any, study: Study, analysis: Any):
    draft = _draft(api, study)
    # when
    response = _patch(api, f"{API}/reports/{draft['id']}/", {"impression": "  Chest CT.  ", "ai_decision": "accepted"})
    # then
    assert response.status_code == 200, response.content
    assert response.json()["impression"] == "Chest CT." and response.json()["final_label"] == "ChestCT"
    assert response.json()["findings"] == ""  # left out: unchanged
    assert AuditEvent.objects.filter(action="medical.report.update", object_id=str(draft["id"])).count() == 1


# --- Signing ----------------------------------------------------------------------------------------


def test_an_api_key_can_never_sign(api: Any, study: Study, analysis: Any):
    draft = _draft(api, study, impression="x", ai_decision="accepted")
    error = assert_error(_post(api, f"{API}/reports/{draft['id']}/sign/"), 403, "signature_requires_person")
    assert "attestation" in error["message"]
    assert Report.objects.get(pk=draft["id"]).status == ReportStatus.DRAFT


@pytest.mark.parametrize("role", ["org_admin", "credit_analyst"])
def test_only_clinicians_sign(client_for: Any, org: Any, api: Any, study: Study, analysis: Any, role: str):
    draft = _draft(api, study, impression="x", ai_decision="accepted")
    response = _post(client_for(org, role), f"{API}/reports/{draft['id']}/sign/")
    assert_error(response, 403)
    assert Report.objects.get(pk=draft["id"]).status == ReportStatus.DRAFT


def test_signing_needs_the_csrf_token(clinician: Any, api: Any, study: Study, analysis: Any):
    draft = _draft(api, study, impression="x", ai_decision="accepted")
    client = Client(enforce_csrf_checks=True)
    client.force_login(clinician)
    assert_error(_post(client, f"{API}/reports/{draft['id']}/sign/"), 403)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"ai_decision": "accepted"}, "report_empty"),
        ({"impression": "x"}, "decision_required"),
        ({"impression": "x", "ai_decision": "changed"}, "final_label_required"),
    ],
)
def test_an_incomplete_draft_is_not_signed(
    session: Client, study: Study, analysis: Any, body: dict[str, Any], code: str
):
    draft = _draft(session, study, **body)
    assert_error(_post(session, f"{API}/reports/{draft['id']}/sign/"), 400, code)
    assert Report.objects.get(pk=draft["id"]).status == ReportStatus.DRAFT
    assert not Instance.objects.filter(received_via=ReceivedVia.AI).exists()


def test_signing_verifies_hashes_and_writes_the_verified_sr(session: Client, clinician: Any, study: Study, analysis):
    # when
    signed = _signed(session, study, findings="Clear lungs.")
    # then the report is signed, by whom and when, with the hash of its canonical content
    report = Report.objects.get(pk=signed["id"])
    assert signed["status"] == "signed" and signed["signed_by"] == "cleo" and signed["signed_at"]
    assert signed["final_label"] == "ChestCT"
    assert signed["content_sha256"] == reports.report_content_sha256(report)
    assert len(signed["content_sha256"]) == 64
    canonical = json.loads(reports.report_content_canonical(report))
    assert canonical["impression"] == "Normal chest CT." and canonical["signed_by"] == "cleo"
    # and a VERIFIED SR is in the study, stored as AI output, retrievable like any instance
    sr_row = Instance.objects.get(sop_instance_uid=signed["sr_sop_instance_uid"])
    assert sr_row.series.study_id == study.pk and sr_row.received_via == ReceivedVia.AI
    sr = _stored_dataset(sr_row)
    assert sr.VerificationFlag == "VERIFIED"
    assert str(sr.VerifyingObserverSequence[0].VerifyingObserverName) == "Doe^Cleo"
    content = ai_result_read(sr)
    assert content.decision == "accepted" and content.final_label == "ChestCT"
    assert content.algorithm_name == "mednist" and content.algorithm_version == "1"
    ct = Instance.objects.filter(series__study=study).exclude(received_via=ReceivedVia.AI).get()
    assert ct.sop_instance_uid in content.source_sop_instance_uids
    wado = session.get(
        f"{API}/dicomweb/studies/{study.study_instance_uid}/series/{sr_row.series.series_instance_uid}"
        f"/instances/{sr_row.sop_instance_uid}",
        HTTP_ACCEPT='multipart/related; type="application/dicom"',
    )
    assert wado.status_code == 200
    # and the signature is audited
    event = AuditEvent.objects.get(action="medical.report.sign", object_id=str(report.pk))
    assert event.actor_user == clinician and event.details["content_sha256"] == signed["content_sha256"]


def test_a_de_identifying_archive_keeps_the_verified_sr_as_written(
    session: Client, org: Any, study: Study, analysis: Any
):
    # given an archive that de-identifies what it receives (a research archive), after the study came in
    ArchiveSettings.objects.update_or_create(organization=org, defaults={"deidentify_on_receipt": True})
    # when the report is signed
    signed = _signed(session, study)
    # then its SR is stored as written: its own UID, the study's UID, and the source image it names
    sr_row = Instance.objects.get(organization=org, sop_instance_uid=signed["sr_sop_instance_uid"])
    assert sr_row.series.study_id == study.pk
    content = ai_result_read(_stored_dataset(sr_row))
    ct = Instance.objects.filter(series__study=study).exclude(received_via=ReceivedVia.AI).get()
    assert content.source_sop_instance_uids == [ct.sop_instance_uid]


@pytest.mark.parametrize("decision", ["accepted", "rejected"])
def test_the_verified_sr_passes_dciodvfy_and_pixelmed(session: Client, study: Study, analysis: Any, tmp_path, decision):
    # given a report signed with the decision
    signed = _signed(session, study) if decision == "accepted" else None
    if signed is None:
        draft = _draft(session, study, impression="Not a chest CT.", ai_decision=decision)
        signed = _post(session, f"{API}/reports/{draft['id']}/sign/").json()
    row = Instance.objects.get(sop_instance_uid=signed["sr_sop_instance_uid"])
    path = tmp_path / "sr.dcm"
    with default_storage.open(row.file, "rb") as handle:
        path.write_bytes(handle.read())
    # then dciodvfy finds no error, and PixelMed finds the TID 1500 root template with no error
    dicom_validators.require_validator("dciodvfy")
    assert dicom_validators.dciodvfy_errors(path) == []
    dicom_validators.require_validator("pixelmed")
    validation = dicom_validators.pixelmed_sr_report(path)
    assert validation.complete and validation.errors == [], validation.output
    assert validation.root_template and validation.root_template.startswith("TID_1500")


def test_changed_and_rejected_decisions_are_signed_as_said(session: Client, org: Any, study: Study, tmp_path):
    # given two studies, each with a suggestion
    analysis_make(org, study, label="ChestCT")
    (mr,) = store_files(org, [dicom_path(MR)], tmp=tmp_path)
    analysis_make(org, mr.series.study, label="BreastMRI")
    # when one is changed and the other rejected without a label
    changed = _draft(session, study, impression="Abdomen.", ai_decision="changed", final_label="AbdomenCT")
    rejected = _draft(session, mr.series.study, impression="Not a breast MRI.", ai_decision="rejected")
    signed_changed = _post(session, f"{API}/reports/{changed['id']}/sign/").json()
    signed_rejected = _post(session, f"{API}/reports/{rejected['id']}/sign/").json()
    # then
    assert (signed_changed["ai_decision"], signed_changed["final_label"]) == ("changed", "AbdomenCT")
    assert (signed_rejected["ai_decision"], signed_rejected["final_label"]) == ("rejected", reports.REJECTED_LABEL)
    row = Instance.objects.get(sop_instance_uid=signed_rejected["sr_sop_instance_uid"])
    content = ai_result_read(_stored_dataset(row))
    assert (content.decision, content.final_label, content.label) == ("rejected", "no finding", "BreastMRI")


def test_a_report_without_ai_is_signed_without_an_sr(session: Client, study: Study):
    draft = _draft(session, study, impression="Normal.")
    signed = _post(session, f"{API}/reports/{draft['id']}/sign/").json()
    assert signed["status"] == "signed" and signed["sr_sop_instance_uid"] == "" and signed["analysis"] is None
    assert not Instance.objects.filter(received_via=ReceivedVia.AI).exists()


# --- Immutability ---------------------------------------------------------------------------------


def test_a_signed_report_is_immutable(session: Client, api: Any, study: Study, analysis: Any):
    signed = _signed(session, study)
    url = f"{API}/reports/{signed['id']}/"
    # through the API
    assert_error(_patch(api, url, {"impression": "changed"}), 409, "report_signed")
    assert_error(_post(session, f"{url}sign/"), 409, "report_signed")
    # and at the model level
    report = Report.objects.get(pk=signed["id"])
    report.impression = "rewritten"
    with pytest.raises(PermissionError):
        report.save()
    with pytest.raises(PermissionError):
        Report.objects.filter(pk=report.pk).update(impression="rewritten")
    with pytest.raises(PermissionError):
        Report.objects.filter(pk=report.pk).delete()
    with pytest.raises(PermissionError):
        report.delete()
    assert Report.objects.get(pk=signed["id"]).impression == "Normal chest CT."
    # drafts are ordinary rows
    draft = Report.objects.create(organization=report.organization, study=report.study, version=9)
    Report.objects.filter(pk=draft.pk).update(impression="draft edit")
    draft.delete()


# --- Amendments -----------------------------------------------------------------------------------


def test_amendment_chain(session: Client, api: Any, study: Study, analysis: Any):
    # given a signed version 1
    v1 = _signed(session, study, findings="First read.")
    # when amending it
    response = _post(session, f"{API}/reports/{v1['id']}/amend/")
    # then version 2 is a draft linked to it, with its content
    assert response.status_code == 201, response.content
    v2 = response.json()
    assert (v2["version"], v2["status"], v2["amends"]) == (2, "draft", v1["id"])
    assert (v2["findings"], v2["impression"], v2["ai_decision"]) == ("First read.", "Normal chest CT.", "accepted")
    # a second amendment of version 1, and an amendment of the draft, are refused
    assert_error(_post(session, f"{API}/reports/{v1['id']}/amend/"), 409, "report_amended")
    assert_error(_post(session, f"{API}/reports/{v2['id']}/amend/"), 409, "report_not_signed")
    # when version 2 is edited and signed
    _patch(
        session,
        f"{API}/reports/{v2['id']}/",
        {"ai_decision": "changed", "final_label": "HeadCT", "impression": "Head."},
    )
    signed2 = _post(session, f"{API}/reports/{v2['id']}/sign/").json()
    # then both versions read back, the old one unchanged, the chain linked both ways
    old = api.get(f"{API}/reports/{v1['id']}/").json()
    assert old["status"] == "signed" and old["impression"] == "Normal chest CT." and old["amended_by"] == v2["id"]
    assert old["content_sha256"] == v1["content_sha256"]
    assert signed2["final_label"] == "HeadCT" and signed2["sr_sop_instance_uid"] != v1["sr_sop_instance_uid"]
    chain = api.get(f"{API}/studies/{study.study_instance_uid}/reports/").json()
    assert [row["version"] for row in chain["results"]] == [2, 1]
    assert (
        json.loads(reports.report_content_canonical(Report.objects.get(pk=v2["id"])))["amends"] == v1["content_sha256"]
    )
    assert Instance.objects.filter(series__study=study, received_via=ReceivedVia.AI).count() == 2
    assert AuditEvent.objects.filter(action="medical.report.amend", object_id=str(v2["id"])).count() == 1


# --- Reads are audited; tenancy -------------------------------------------------------------------


def test_reads_are_audit_and_phi_access_rows(api: Any, study: Study, analysis: Any):
    draft = _draft(api, study)
    api.get(f"{API}/reports/{draft['id']}/")
    api.get(f"{API}/studies/{study.study_instance_uid}/reports/")
    assert AuditEvent.objects.filter(action="medical.report.read").count() == 2
    accesses = PhiAccess.objects.filter(kind=AccessKind.REPORT)
    assert accesses.count() == 2
    assert {row.study_instance_uid for access in accesses for row in access.studies.all()} == {study.study_instance_uid}


def test_another_organizations_reports_are_not_found(
    api: Any, other_api: Any, study: Study, analysis: Any, make_member: Any, other_org: Any
):
    draft = _draft(api, study, impression="x", ai_decision="accepted")
    url = f"{API}/reports/{draft['id']}/"
    assert_error(other_api.get(url), 404)
    assert_error(_patch(other_api, url, {"impression": "y"}), 404)
    assert_error(_post(other_api, f"{url}amend/"), 404)
    assert_error(other_api.get(f"{API}/studies/{study.study_instance_uid}/reports/"), 404)
    assert_error(_post(other_api, f"{API}/studies/{study.study_instance_uid}/reports/", {}), 404)
    other_clinician = Client()
    other_clinician.force_login(make_member(other_org, role="clinician"))
    assert_error(_post(other_clinician, f"{url}sign/"), 404)
    assert Report.objects.get(pk=draft["id"]).status == ReportStatus.DRAFT


def test_scope_and_authentication(api_client_for: Any, org: Any, study: Study, client: Any):
    url = f"{API}/studies/{study.study_instance_uid}/reports/"
    assert_error(api_client_for(org, scopes=("finance",)).get(url), 403)
    assert_error(client.get(url), 401)


# --- The study cannot be deleted under its reports ---------------------------------------------------


def test_a_study_with_reports_is_not_deleted(api: Any, org: Any, study: Study, analysis: Any):
    _draft(api, study)
    response = api.generic(
        "DELETE",
        f"{API}/studies/{study.study_instance_uid}/",
        json.dumps({"reason": "cleanup"}),
        content_type="application/json",
    )
    assert_error(response, 409, "study_has_reports")
    assert Study.objects.filter(pk=study.pk).exists()
    with pytest.raises(Exception) as refused:
        services.study_delete(actor=Actor.system(org), study=study, reason="cleanup")
    assert getattr(refused.value, "code", "") == "study_has_reports"
