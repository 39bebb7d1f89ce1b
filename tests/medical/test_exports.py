"""De-identified exports (`/api/v1/medical/exports/…`) and the "de-identify on receipt" policy,
on pydicom's real test files: the zip's files follow PS3.15 Table E.1-1, UIDs are remapped
consistently across exports, pixel data is untouched, and instances that may carry burned-in
text are quarantined (exports) or refused (receipt)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

import pydicom
import pytest
from django.core.files.storage import default_storage

from apps.medical import annex_e, exports
from apps.medical.deidentify import DUMMY_TEXT, DeidOptions, action_for
from apps.medical.models import Export, Instance, PhiAccess, Study, UidMapping
from core.audit.models import AuditEvent
from core.tenancy.actors import Actor
from core.tenancy.services import membership_set
from tests.conftest import assert_error
from tests.medical.conftest import CT, MR, MULTIFRAME, dicom_path

pytestmark = pytest.mark.django_db

EXPORTS = "/api/v1/medical/exports/"
US = "US1_UNCR.dcm"  # ultrasound without BurnedInAnnotation: held for review
SC = "SC_rgb.dcm"  # secondary capture without BurnedInAnnotation: held for review


def post_json(client: Any, url: str, body: object) -> Any:
    return client.post(url, data=json.dumps(body), content_type="application/json")


def study_uid(name: str) -> str:
    return str(pydicom.dcmread(dicom_path(name)).StudyInstanceUID)


@pytest.fixture
def stored(stow: Callable[..., Any]) -> Callable[..., list[str]]:
    """`stored(*names, client=api)`: STOW the files; returns their study UIDs."""

    def store(*names: str, client: Any = None) -> list[str]:
        response = stow(list(names), client=client)
        assert response.status_code == 200, response.content
        return [study_uid(name) for name in names]

    return store


@pytest.fixture
def run_export(django_capture_on_commit_callbacks: Any) -> Callable[..., dict[str, Any]]:
    """`run_export(client, studies, **body)`: POST an export, run its job inline; returns the export."""

    def run(client: Any, studies: list[str], **body: Any) -> dict[str, Any]:
        with django_capture_on_commit_callbacks(execute=True):
            response = post_json(client, EXPORTS, {"studies": studies, **body})
        assert response.status_code == 202, response.content
        detail = client.get(f"{EXPORTS}{response.json()['id']}/")
        assert detail.status_code == 200, detail.content
        return dict(detail.json())

    return run


def zip_datasets(client: Any, export: dict[str, Any]) -> dict[str, pydicom.Dataset]:
    response = client.get(export["download_url"])
    assert response.status_code == 200, response.content if not response.streaming else ""
    assert response["Content-Type"] == "application/zip"
    body = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return {name: pydicom.dcmread(io.BytesIO(archive.read(name))) for name in archive.namelist()}


def test_a_zip_export_holds_deidentified_copies_by_the_table(
    api: Any, org: Any, stored: Callable[..., list[str]], run_export: Callable[..., dict[str, Any]]
) -> None:
    # given: a CT, an MR and a multi-frame MR in the archive
    studies = stored(CT, MR, MULTIFRAME)
    sources = {study_uid(name): pydicom.dcmread(dicom_path(name)) for name in (CT, MR, MULTIFRAME)}

    # when: exported with the default options (the Basic Profile alone)
    export = run_export(api, studies)

    # then: the job succeeded with full progress, three instances exported, none held
    assert export["job"]["status"] == "succeeded", export["job"]
    assert export["job"]["progress"] == 1.0
    assert export["job"]["result"]["exported_instances"] == 3
    assert (export["exported_instances"], export["quarantined"], export["destination"]) == (3, [], "zip")
    datasets = zip_datasets(api, export)
    assert len(datasets) == 3
    basic = DeidOptions()
    for name, dataset in datasets.items():
        source_uid = next(
            uid for uid in sources if UidMapping.objects.get(source_uid=uid).new_uid == dataset.StudyInstanceUID
        )
        source = sources[source_uid]
        # the zip path is <new study>/<new series>/<new sop>.dcm
        assert name == f"{dataset.StudyInstanceUID}/{dataset.SeriesInstanceUID}/{dataset.SOPInstanceUID}.dcm"
        # the table's action for Patient's Name (Z: present, empty) and ID (Z/D: the dummy) was applied
        for keyword, tag in (("PatientName", 0x00100010), ("PatientID", 0x00100020)):
            row = annex_e.row_for(tag)
            assert row is not None
            expected = {"Z": "", "D": DUMMY_TEXT}[action_for(row, basic)]
            assert keyword in dataset and str(dataset[keyword].value or "") == expected, keyword
        assert dataset.PatientIdentityRemoved == "YES"
        assert "PatientBirthDate" not in dataset or not dataset.PatientBirthDate
        # UIDs remapped by the organization's table; pixels untouched
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            assert dataset[keyword].value != source[keyword].value
            assert (
                dataset[keyword].value
                == UidMapping.objects.get(organization=org, source_uid=source[keyword].value).new_uid
            )
        assert dataset.file_meta.MediaStorageSOPInstanceUID == dataset.SOPInstanceUID
        assert dataset.PixelData == source.PixelData

    # and: one PHI access row of kind export for the three studies, and the download is audited
    access = PhiAccess.objects.get(kind="export")
    assert sorted(access.studies.values_list("study_instance_uid", flat=True)) == sorted(studies)
    assert AuditEvent.objects.filter(action="medical.export.download", object_id=str(export["id"])).count() == 1


def test_the_same_study_gets_the_same_new_uids_in_two_exports(
    api: Any, stored: Callable[..., list[str]], run_export: Callable[..., dict[str, Any]]
) -> None:
    # given
    studies = stored(CT, MR)

    # when: two exports, the second of one study only and with other options
    first = zip_datasets(api, run_export(api, studies))
    second = zip_datasets(api, run_export(api, studies[:1], options={"retain_long_modified_dates": True}))

    # then: the CT has the same new study, series and instance UIDs in both
    [ct_second] = second.values()
    ct_first = next(ds for ds in first.values() if ds.Modality == "CT")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        assert ct_first[keyword].value == ct_second[keyword].value, keyword


def test_instances_that_may_carry_burned_in_text_are_quarantined(
    api: Any, stored: Callable[..., list[str]], run_export: Callable[..., dict[str, Any]]
) -> None:
    # given: a CT, an ultrasound and a secondary capture, none saying BurnedInAnnotation
    studies = stored(CT, US, SC)

    # when
    export = run_export(api, studies)

    # then: only the CT is in the zip; the others are listed with their reasons
    assert export["exported_instances"] == 1
    held = {item["instance"]: item["reason"] for item in export["quarantined"]}
    us, sc = (str(pydicom.dcmread(dicom_path(name)).SOPInstanceUID) for name in (US, SC))
    assert set(held) == {us, sc}
    assert "modality US" in held[us]
    assert "secondary capture" in held[sc]
    assert [ds.Modality for ds in zip_datasets(api, export).values()] == ["CT"]


def test_an_export_into_another_organization_stores_deidentified_instances_there(
    org: Any,
    other_org: Any,
    make_member: Callable[..., Any],
    api_client_for: Callable[..., Any],
    stored: Callable[..., list[str]],
    run_export: Callable[..., dict[str, Any]],
) -> None:
    # given: an org admin of both organizations (acting in acme), and two studies in acme
    from django.test import Client

    user = make_member(org, "org_admin", username="researcher")
    membership_set(actor=Actor.system(other_org), user=user, role="org_admin")
    client = Client()
    client.force_login(user)
    studies = stored(CT, US)

    # when
    export = run_export(client, studies, destination="organization", target_organization=other_org.slug)

    # then: the CT is in globex's index, de-identified, received via export; the US was held
    assert export["job"]["status"] == "succeeded", export["job"]
    assert (export["exported_instances"], len(export["quarantined"]), export["download_url"]) == (1, 1, None)
    assert export["target_organization"] == other_org.slug
    [copy] = Instance.objects.filter(organization=other_org)
    assert copy.received_via == "export"
    target_study = copy.series.study
    assert target_study.study_instance_uid == UidMapping.objects.get(organization=org, source_uid=studies[0]).new_uid
    assert (target_study.patient.patient_name, target_study.patient.patient_id) == ("", DUMMY_TEXT)
    assert not Study.objects.filter(organization=other_org, study_instance_uid__in=studies).exists()
    with default_storage.open(copy.file, "rb") as handle:
        assert pydicom.dcmread(handle).PatientIdentityRemoved == "YES"
    # and: globex sees it through its own API, not the download
    response = api_client_for(other_org).get(f"/api/v1/medical/studies/{target_study.study_instance_uid}/")
    assert response.status_code == 200
    assert_error(client.get(f"{EXPORTS}{export['id']}/download/"), 409, "no_download")


def test_a_rerun_of_the_job_leaves_one_zip_and_no_duplicate_instances(
    org: Any,
    other_org: Any,
    make_member: Callable[..., Any],
    api: Any,
    stored: Callable[..., list[str]],
    run_export: Callable[..., dict[str, Any]],
) -> None:
    # given: a finished zip export, and a finished export into globex
    studies = stored(CT, MR)
    zipped = run_export(api, studies)
    from django.test import Client

    user = make_member(org, "org_admin", username="researcher")
    membership_set(actor=Actor.system(other_org), user=user, role="org_admin")
    client = Client()
    client.force_login(user)
    copied = run_export(client, studies, destination="organization", target_organization=other_org.slug)

    # when: both jobs run again (a worker crashed after the work, before recording it)
    for export in (zipped, copied):
        exports.export_execute(export_id=export["id"], report=lambda **_: None)

    # then: exactly one zip, under the export's name; no second copy in globex
    name = exports.export_zip_name(Export.objects.get(pk=zipped["id"]))
    assert Export.objects.get(pk=zipped["id"]).file == name
    folder, file_name = name.rsplit("/", 1)
    assert default_storage.listdir(folder)[1] == [file_name]
    assert len(zip_datasets(api, zipped)) == 2
    assert Instance.objects.filter(organization=other_org).count() == 2


def test_an_api_key_cannot_export_into_another_organization(
    api: Any, other_org: Any, stored: Callable[..., list[str]]
) -> None:
    studies = stored(CT)
    response = post_json(
        api, EXPORTS, {"studies": studies, "destination": "organization", "target_organization": other_org.slug}
    )
    assert_error(response, 403, "permission_denied")
    assert not Export.objects.exists()


@pytest.mark.parametrize("membership", ["none", "clinician", "own"])
def test_the_target_must_be_another_organization_the_user_administers(
    membership: str,
    org: Any,
    other_org: Any,
    make_member: Callable[..., Any],
    stored: Callable[..., list[str]],
) -> None:
    # given
    from django.test import Client

    user = make_member(org, "org_admin", username="researcher")
    if membership == "clinician":
        membership_set(actor=Actor.system(other_org), user=user, role="clinician")
    client = Client()
    client.force_login(user)
    studies = stored(CT)
    target = org.slug if membership == "own" else other_org.slug
    # when
    response = post_json(
        client, EXPORTS, {"studies": studies, "destination": "organization", "target_organization": target}
    )
    # then
    if membership == "own":
        assert "target_organization" in assert_error(response, 400)["fields"]
    else:
        assert_error(response, 403, "permission_denied")
    assert not Export.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "studies"),
        ({"studies": []}, "studies"),
        ({"studies": "1.2.3"}, "studies"),
        ({"studies": [1.5]}, None),
        ({"studies": ["9" * 65]}, "studies"),
        ({"studies": ["1.2.3"]}, "studies"),
        ({"options": {"retain_everything": True}}, "options.retain_everything"),
        ({"options": {"retain_uids": "yes"}}, "options.retain_uids"),
        ({"options": {"retain_long_full_dates": True, "retain_long_modified_dates": True}}, None),
        ({"options": ["retain_uids"]}, "options"),
        ({"destination": "ftp"}, "destination"),
        ({"destination": "organization"}, "target_organization"),
        ({"target_organization": "not a slug!"}, "target_organization"),
    ],
)
def test_bad_export_requests_are_400(
    body: dict[str, Any], field: str | None, api: Any, stored: Callable[..., list[str]]
) -> None:
    # given
    studies = stored(CT)
    payload = {} if body == {} else {"studies": studies, **body}
    # when
    response = post_json(api, EXPORTS, payload)
    # then
    error = assert_error(response, 400)
    if field is not None:
        assert any(name.startswith(field) for name in error["fields"]), error
    assert not Export.objects.exists()


def test_unknown_and_other_organizations_study_uids_are_listed(
    api: Any, other_api: Any, stored: Callable[..., list[str]]
) -> None:
    # given: MR stored in globex only
    [ct] = stored(CT)
    [mr] = stored(MR, client=other_api)
    # when
    response = post_json(api, EXPORTS, {"studies": [ct, mr, "1.2.3.4"]})
    # then
    error = assert_error(response, 400, "unknown_studies")
    assert error["fields"]["studies"] == sorted([f"Not found: {mr}", "Not found: 1.2.3.4"])


def test_the_download_is_409_until_the_job_has_run(api: Any, stored: Callable[..., list[str]]) -> None:
    # given: an export whose job has not run (no commit here)
    response = post_json(api, EXPORTS, {"studies": stored(CT)})
    assert response.status_code == 202, response.content
    assert response.json()["job"]["status"] == "queued"
    assert response.json()["download_url"] is None
    # when / then
    assert_error(api.get(f"{EXPORTS}{response.json()['id']}/download/"), 409, "not_ready")


def test_exports_are_for_org_admins_and_medical_keys(
    org: Any,
    client_for: Callable[..., Any],
    api_client_for: Callable[..., Any],
    stored: Callable[..., list[str]],
    run_export: Callable[..., dict[str, Any]],
    api: Any,
) -> None:
    # given
    studies = stored(CT)
    export = run_export(api, studies)
    clinician = client_for(org, "clinician")
    finance = api_client_for(org, scopes=("finance",))
    # when / then: a clinician and a finance-only key are refused everywhere
    for client in (clinician, finance):
        assert_error(post_json(client, EXPORTS, {"studies": studies}), 403, "permission_denied")
        for url in (EXPORTS, f"{EXPORTS}{export['id']}/", export["download_url"]):
            assert_error(client.get(url), 403, "permission_denied")
    # and: an org admin session sees the list
    listed = client_for(org, "org_admin").get(EXPORTS)
    assert listed.status_code == 200 and listed.json()["results"][0]["id"] == export["id"]


def test_another_organizations_export_is_not_found(
    api: Any, other_api: Any, stored: Callable[..., list[str]], run_export: Callable[..., dict[str, Any]]
) -> None:
    # given
    export = run_export(api, stored(CT))
    # when / then
    for url in (f"{EXPORTS}{export['id']}/", f"{EXPORTS}{export['id']}/download/", f"{EXPORTS}999999/"):
        assert_error(other_api.get(url), 404, "not_found")
    assert other_api.get(EXPORTS).json()["count"] == 0


# --- de-identify on receipt ---------------------------------------------------------------------


def test_an_archive_that_deidentifies_on_receipt_stores_only_deidentified_instances(
    api: Any, org: Any, stow: Callable[..., Any]
) -> None:
    # given: a research archive keeping modified dates
    settings = {"deidentify_on_receipt": True, "deidentify_options": {"retain_long_modified_dates": True}}
    assert api.patch("/api/v1/medical/settings/", settings, format="json").status_code == 200
    source = pydicom.dcmread(dicom_path(CT))

    # when: a CT is sent twice by STOW-RS
    first = stow([CT])
    again = stow([CT])

    # then: stored once, de-identified: new UIDs, no name, shifted date, pixels as sent
    assert first.status_code == 200, first.content
    assert again.status_code == 200, again.content
    [instance] = Instance.objects.filter(organization=org)
    assert instance.sop_instance_uid != source.SOPInstanceUID
    assert (
        instance.sop_instance_uid == UidMapping.objects.get(organization=org, source_uid=source.SOPInstanceUID).new_uid
    )
    study = instance.series.study
    assert study.study_instance_uid != source.StudyInstanceUID
    assert (study.patient.patient_name, study.patient.patient_id) == ("", DUMMY_TEXT)
    assert study.study_date and study.study_date != source.StudyDate
    with default_storage.open(instance.file, "rb") as handle:
        stored_copy = pydicom.dcmread(handle)
    assert stored_copy.PatientIdentityRemoved == "YES"
    assert stored_copy.LongitudinalTemporalInformationModified == "MODIFIED"
    assert stored_copy.PixelData == source.PixelData
    assert not Study.objects.filter(study_instance_uid=source.StudyInstanceUID).exists()
    # the STOW answer names the instance as stored (its new UID)
    referenced = first.json()["00081199"]["Value"][0]
    assert referenced["00081155"]["Value"] == [instance.sop_instance_uid]


def test_receipt_deidentification_refuses_instances_that_may_carry_burned_in_text(
    api: Any, org: Any, stow: Callable[..., Any]
) -> None:
    # given
    assert api.patch("/api/v1/medical/settings/", {"deidentify_on_receipt": True}, format="json").status_code == 200
    # when: an ultrasound (no BurnedInAnnotation) and a CT in one request
    response = stow([US, CT])
    # then: the CT is stored, the US refused with 0110 and the reason; nothing of it is kept
    assert response.status_code == 202, response.content
    [failed] = response.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [0x0110]
    assert Instance.objects.filter(organization=org).count() == 1
    assert Instance.objects.get(organization=org).series.modality == "CT"


def test_a_study_deleted_before_the_job_ran_is_reported_missing(
    api: Any, stored: Callable[..., list[str]], django_capture_on_commit_callbacks: Any
) -> None:
    # given: an export of two studies, started (its job not yet run)
    ct, mr = stored(CT, MR)
    response = post_json(api, EXPORTS, {"studies": [ct, mr]})
    assert response.status_code == 202
    # when: the MR is deleted, then the job runs
    assert api.delete(f"/api/v1/medical/studies/{mr}/", {"reason": "wrong patient"}, format="json").status_code == 204
    result = exports.export_execute(export_id=response.json()["id"], report=lambda **_: None)
    # then: the CT is exported, the MR named as missing
    assert (result["exported_instances"], result["missing_studies"]) == (1, [mr])
