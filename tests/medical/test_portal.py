"""The clinician portal through Django's test client: pages, search, upload, deletion, PHI rows,
roles and tenancy (another organization's study UIDs are 404 on every page)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

import pydicom
import pytest
from pydicom.uid import UID

from apps.medical.models import DicomNode, Export, Instance, PhiAccess, PhiAccessStudy, Study
from apps.medical.ohif import ohif_dist
from apps.medical.services import dicom_node_create
from core.audit.models import AuditEvent
from core.tenancy.actors import Actor
from tests.medical.conftest import CT, MR, MULTIFRAME, dicom_path

pytestmark = pytest.mark.django_db

PORTAL = "/portal/medical/"


def _uids(name: str) -> tuple[str, str, str]:
    ds = pydicom.dcmread(dicom_path(name), stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


@pytest.fixture
def stored(stow):
    """CT_small, MR_small and the 10-frame emri_small in acme's archive (through STOW-RS)."""
    response = stow([CT, MR, MULTIFRAME])
    assert response.status_code == 200, response.content[:500]
    return {name: _uids(name) for name in (CT, MR, MULTIFRAME)}


def _pages(stored):
    study, series, _ = stored[CT]
    return [
        PORTAL,
        f"{PORTAL}?q=compressed",
        f"{PORTAL}upload/",
        f"{PORTAL}studies/{study}/",
        f"{PORTAL}studies/{study}/series/{series}/",
    ]


def _phi_rows(org, **filters):
    return PhiAccess.objects.filter(organization=org, kind="portal", **filters)


@pytest.mark.parametrize("role", ["clinician", "org_admin"])
def test_pages_render(client_for, org, stored, role):
    # given a clinician or an org admin
    client = client_for(org, role)
    for url in _pages(stored):
        # when opening each page, then it renders
        response = client.get(url)
        assert response.status_code == 200, (url, response.content[:300])


def test_navigation_shows_imaging_to_clinicians_and_admins_only(client_for, org):
    for role, visible in (("clinician", True), ("org_admin", True), ("merchant", False), ("credit_analyst", False)):
        body = client_for(org, role).get("/").content.decode()
        assert ('data-nav="medical"' in body) is visible, role
        assert (">Imaging<" in body) is visible, role


@pytest.mark.parametrize("role", ["merchant", "credit_analyst", "traffic_operator"])
def test_other_roles_are_forbidden(client_for, org, stored, role):
    client = client_for(org, role)
    study, _, _ = stored[CT]
    for url in [*_pages(stored), f"{PORTAL}ohif/app-config.js", f"{PORTAL}ohif/"]:
        assert client.get(url).status_code == 403, url
    assert client.post(f"{PORTAL}studies/{study}/delete/", {"reason": "x"}).status_code == 403
    assert Study.objects.filter(study_instance_uid=study).exists()


def test_signed_out_visitors_are_sent_to_the_login(client, stored):
    for url in _pages(stored):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url


def test_another_organizations_study_is_404_on_every_page(client_for, other_org, stored, org):
    # given a clinician and an admin of another organization
    study, series, _ = stored[CT]
    for role in ("clinician", "org_admin"):
        client = client_for(other_org, role)
        # when they open acme's study by its UIDs, then every page is "not found"
        assert client.get(f"{PORTAL}studies/{study}/").status_code == 404
        assert client.get(f"{PORTAL}studies/{study}/series/{series}/").status_code == 404
        assert client.post(f"{PORTAL}studies/{study}/delete/", {"reason": "x"}).status_code == 404
        # and their study list does not show it
        assert study not in client.get(PORTAL).content.decode()
    assert Study.objects.filter(organization=org, study_instance_uid=study).exists()
    # a series of another study of the same organization is not found either
    client = client_for(org, "clinician")
    mr_study = stored[MR][0]
    assert client.get(f"{PORTAL}studies/{mr_study}/series/{series}/").status_code == 404
    assert client.get(f"{PORTAL}studies/1.2.3.4/").status_code == 404


def test_study_list_search(client_for, org, stored):
    client = client_for(org, "clinician")
    ct, mr, emri = stored[CT][0], stored[MR][0], stored[MULTIFRAME][0]

    def found(query: str) -> set[str]:
        response = client.get(f"{PORTAL}?{query}")
        assert response.status_code == 200
        return set(re.findall(r'data-study-uid="([^"]+)"', response.content.decode())) & {ct, mr, emri}

    # every study, newest first (MR 2004-08-26, CT 2004-01-19, emri 2000-01-01)
    body = client.get(PORTAL).content.decode()
    assert re.findall(r'data-study-uid="([^"]+)"', body) == [mr, ct, emri]
    # patient name, in any case and word order ("CompressedSamples^CT1")
    assert found("q=compressedsamples") == {ct, mr}
    assert found("q=ct1+compressedsamples") == {ct}
    # patient id
    assert found("q=4MR1") == {mr}
    # modality
    assert found("modality=mr") == {mr, emri}
    assert found("modality=CT") == {ct}
    # date range (inclusive)
    assert found("date_from=2004-01-01&date_to=2004-01-31") == {ct}
    assert found("date_from=2004-01-19") == {ct, mr}
    assert found("date_to=2003-12-31") == {emri}
    # accession: none of these files has one
    assert found("accession=nothing") == set()


def test_study_list_bad_filters_are_shown_not_500(client_for, org, stored):
    client = client_for(org, "clinician")
    response = client.get(f"{PORTAL}?date_from=2004-13-45&date_to=yesterday")
    assert response.status_code == 200
    assert "Enter a valid date." in response.content.decode()
    response = client.get(f"{PORTAL}?date_from=2005-01-01&date_to=2004-01-01")
    assert "The end date is before the start date." in response.content.decode()
    assert client.get(f"{PORTAL}?page=999").status_code == 200
    assert client.get(f"{PORTAL}?page=abc").status_code == 200
    assert client.get(f"{PORTAL}?q=" + "x" * 500).status_code == 200


def test_study_list_is_paginated(client_for, org, stow, tmp_path):
    # given 27 studies (CT_small with 27 different Study/Series/SOP UIDs)
    ds = pydicom.dcmread(dicom_path(CT))
    parts = []
    for number in range(27):
        ds.StudyInstanceUID = UID(f"1.2.826.0.1.3680043.8.498.1.{number + 1}")
        ds.SeriesInstanceUID = UID(f"1.2.826.0.1.3680043.8.498.2.{number + 1}")
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(f"1.2.826.0.1.3680043.8.498.3.{number + 1}")
        ds.StudyDate = f"2020{(number % 12) + 1:02d}01"
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        parts.append(buffer.getvalue())
    assert stow(parts).status_code == 200
    client = client_for(org, "clinician")
    # when listing with a filter, then 25 on page 1, 2 on page 2, and the pager keeps the filter
    first = client.get(f"{PORTAL}?modality=CT").content.decode()
    assert len(re.findall(r"data-study-uid=", first)) == 25
    assert "modality=CT&amp;page=2" in first
    second = client.get(f"{PORTAL}?modality=CT&page=2").content.decode()
    assert len(re.findall(r"data-study-uid=", second)) == 2


def test_each_page_writes_one_phi_row(client_for, org, stored):
    client = client_for(org, "clinician")
    study, series, _ = stored[CT]
    PhiAccess.objects.filter(organization=org).count()
    # the study list: one row with every listed study
    client.get(PORTAL)
    row = _phi_rows(org).get()
    assert set(row.studies.values_list("study_instance_uid", flat=True)) == {uid for uid, _, _ in stored.values()}
    assert row.path == PORTAL
    assert row.actor_label == f"{org.slug}-clinician"
    # the study page: one row for that study
    client.get(f"{PORTAL}studies/{study}/")
    assert _phi_rows(org).count() == 2
    assert list(_phi_rows(org).first().studies.values_list("study_instance_uid", "patient_id")) == [(study, "1CT1")]
    # the viewer: one row, with the series
    client.get(f"{PORTAL}studies/{study}/series/{series}/")
    viewer_row = _phi_rows(org).first()
    assert viewer_row.series_instance_uid == series
    assert _phi_rows(org).count() == 3
    # a 404 of another organization's UIDs writes nothing
    client.get(f"{PORTAL}studies/1.2.3/")
    assert _phi_rows(org).count() == 3


def test_a_series_without_images_shows_its_modality_not_a_broken_thumbnail(client_for, org, stow):
    # given: an RT plan (no pixel data) in the archive
    assert stow(["rtplan.dcm"]).status_code == 200
    study, series, _ = _uids("rtplan.dcm")
    # when
    body = client_for(org, "clinician").get(f"{PORTAL}studies/{study}/").content.decode()
    # then: no thumbnail request that could only fail, the modality in its place
    assert f"series/{series}/thumbnail" not in body
    assert 'data-testid="no-thumbnail">RTPLAN<' in body


def test_study_page_shows_attributes_series_and_thumbnails(client_for, org, stored):
    client = client_for(org, "clinician")
    study, series, _ = stored[MR]
    body = client.get(f"{PORTAL}studies/{study}/").content.decode()
    assert "CompressedSamples^MR1" in body
    assert "4MR1" in body
    assert "2004-08-26" in body
    assert f'src="/api/v1/medical/dicomweb/studies/{study}/series/{series}/thumbnail"' in body
    assert f"{PORTAL}studies/{study}/series/{series}/" in body
    # a clinician sees neither the access log nor the delete form
    assert 'data-testid="access-log"' not in body
    assert 'data-testid="delete-study"' not in body


def test_admin_sees_the_study_access_log(client_for, org, stored, api):
    # given reads of the study by a clinician (portal) and an API key (a PHI row written by the archive)
    study, series, _ = stored[CT]
    clinician = client_for(org, "clinician")
    clinician.get(f"{PORTAL}studies/{study}/series/{series}/")
    # when an org admin opens the study
    body = client_for(org, "org_admin").get(f"{PORTAL}studies/{study}/").content.decode()
    # then the log lists the clinician's viewer request and the admin's own page view
    log = body[body.index('data-testid="access-log"') :]
    assert f"{org.slug}-clinician" in log
    assert f"{PORTAL}studies/{study}/series/{series}/" in log
    assert f"{org.slug}-org_admin" in log
    assert 'data-testid="delete-study"' in body
    # and reading the log is itself audited
    assert AuditEvent.objects.filter(action="medical.access_log.read").exists()


def test_admin_deletes_a_study_with_a_reason(client_for, org, stored):
    study, _, _ = stored[CT]
    client = client_for(org, "org_admin")
    # without a reason: refused, the study stays
    response = client.post(f"{PORTAL}studies/{study}/delete/", {"reason": "  "})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert Study.objects.filter(organization=org, study_instance_uid=study).exists()
    # with a reason: deleted, audited with it, back to the list
    response = client.post(f"{PORTAL}studies/{study}/delete/", {"reason": "sent to the wrong archive"})
    assert response.status_code == 302 and response["Location"] == PORTAL
    assert not Study.objects.filter(organization=org, study_instance_uid=study).exists()
    event = AuditEvent.objects.get(action="medical.study.delete")
    assert event.details["reason"] == "sent to the wrong archive"
    assert client.get(f"{PORTAL}studies/{study}/").status_code == 404
    # a GET never deletes
    assert client.get(f"{PORTAL}studies/{stored[MR][0]}/delete/").status_code == 405


def test_clinician_may_not_delete(client_for, org, stored):
    study, _, _ = stored[CT]
    response = client_for(org, "clinician").post(f"{PORTAL}studies/{study}/delete/", {"reason": "mine"})
    assert response.status_code == 403
    assert Study.objects.filter(organization=org, study_instance_uid=study).exists()


def test_viewer_lists_every_frame_in_order(client_for, org, stored):
    client = client_for(org, "clinician")
    study, series, sop = stored[MULTIFRAME]
    response = client.get(f"{PORTAL}studies/{study}/series/{series}/")
    body = response.content.decode()
    data = _viewer_data(body)
    base = f"/api/v1/medical/dicomweb/studies/{study}/series/{series}/instances/{sop}"
    assert [frame["url"] for frame in data["frames"]] == [f"{base}/frames/{n}/rendered" for n in range(1, 11)]
    assert {preset["name"] for preset in data["presets"]} == {"lung", "mediastinum", "bone", "brain"}
    # a single-frame instance is rendered whole; MR_small's own window is where free W/L starts
    study, series, sop = stored[MR]
    body = client.get(f"{PORTAL}studies/{study}/series/{series}/").content.decode()
    data = _viewer_data(body)
    assert [frame["url"] for frame in data["frames"]] == [
        f"/api/v1/medical/dicomweb/studies/{study}/series/{series}/instances/{sop}/rendered"
    ]
    assert data["initial"] == {"center": 600.0, "width": 1600.0}


def test_viewer_orders_instances_by_instance_number(client_for, org, stow):
    # given a series of three CT_small copies sent out of order (instance numbers 3, 1, 2)
    ds = pydicom.dcmread(dicom_path(CT))
    parts = []
    for number in (3, 1, 2):
        ds.InstanceNumber = number
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(f"1.2.826.0.1.3680043.8.498.9.{number}")
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        parts.append(buffer.getvalue())
    assert stow(parts).status_code == 200
    body = client_for(org, "clinician").get(f"{PORTAL}studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/")
    data = _viewer_data(body.content.decode())
    assert [frame["instance"] for frame in data["frames"]] == [1, 2, 3]


def _viewer_data(body: str) -> dict:
    found = re.search(r'<script id="viewer-data" type="application/json">(.*?)</script>', body, re.S)
    assert found is not None
    return json.loads(found[1])


def _upload(client, *files):
    return client.post(f"{PORTAL}upload/", {"uploads": list(files)})


def _named(name: str, data: bytes) -> io.BytesIO:
    buffer = io.BytesIO(data)
    buffer.name = name
    return buffer


def test_upload_several_files_stores_and_refuses_with_reasons(client_for, org):
    client = client_for(org, "clinician")
    # given two real instances, a truncated file and a text file
    response = _upload(
        client,
        _named("ct.dcm", dicom_path(CT).read_bytes()),
        _named("mr.dcm", dicom_path(MR).read_bytes()),
        _named("cut.dcm", dicom_path("MR_truncated.dcm").read_bytes()),
        _named("notes.txt", b"not a DICOM file"),
    )
    # then the two are stored (received via upload), the others refused with their reasons
    assert response.status_code == 200
    body = response.content.decode()
    assert re.search(r'data-testid="stored-count">2<', body)
    assert re.search(r'data-testid="refused-count">2<', body)
    assert body.count('data-outcome="refused"') == 2
    assert "Not a DICOM Part 10 file" in body
    assert set(Instance.objects.filter(organization=org).values_list("received_via", flat=True)) == {"upload"}
    assert Instance.objects.filter(organization=org).count() == 2
    # and the result page's PHI row names the stored studies
    row = _phi_rows(org).get()
    assert set(row.studies.values_list("study_instance_uid", flat=True)) == {_uids(CT)[0], _uids(MR)[0]}
    # when the same files come again, nothing is stored twice
    response = _upload(client, _named("ct.dcm", dicom_path(CT).read_bytes()))
    assert 'data-outcome="unchanged"' in response.content.decode()
    assert Instance.objects.filter(organization=org).count() == 2


def test_upload_a_zip(client_for, org):
    client = client_for(org, "clinician")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("study/ct.dcm", dicom_path(CT).read_bytes())
        archive.writestr("study/emri.dcm", dicom_path(MULTIFRAME).read_bytes())
        archive.writestr("study/", b"")
        archive.writestr("__MACOSX/._ct.dcm", b"resource fork")
        archive.writestr("README.txt", b"hello")
    response = _upload(client, _named("study.zip", buffer.getvalue()))
    body = response.content.decode()
    assert re.search(r'data-testid="stored-count">2<', body)
    assert re.search(r'data-testid="refused-count">1<', body)
    assert "study.zip: README.txt" in body
    assert Instance.objects.filter(organization=org, received_via="upload").count() == 2
    assert not PhiAccessStudy.objects.exclude(organization=org).exists()


def test_upload_without_files_or_a_broken_zip(client_for, org):
    client = client_for(org, "clinician")
    response = client.post(f"{PORTAL}upload/", {})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    # a file that starts like a zip but is not one is refused as a file, not a 500
    response = _upload(client, _named("broken.zip", b"PK\x03\x04" + b"\x00" * 100))
    assert response.status_code == 200
    assert re.search(r'data-testid="refused-count">1<', response.content.decode())
    assert not Instance.objects.filter(organization=org).exists()


def test_upload_result_page_stays_in_the_organization(client_for, org, other_org, stored):
    # an upload into another organization of the same bytes makes its own study there
    response = _upload(client_for(other_org, "clinician"), _named("ct.dcm", dicom_path(CT).read_bytes()))
    assert 'data-outcome="stored"' in response.content.decode()
    assert Study.objects.filter(study_instance_uid=stored[CT][0]).count() == 2


# --- OHIF ---------------------------------------------------------------------------------------

INSTALLED_OHIF = ohif_dist()  # the checkout's var/ohif (make ohif), read before settings change


@pytest.fixture
def without_ohif(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"


@pytest.fixture
def with_ohif(settings, tmp_path):
    if not (INSTALLED_OHIF / "index.html").is_file():
        pytest.skip("OHIF is not installed here (make ohif)")
    return INSTALLED_OHIF


def test_ohif_config_points_at_this_archive(client_for, org, without_ohif):
    response = client_for(org, "clinician").get(f"{PORTAL}ohif/app-config.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    body = response.content.decode()
    config = json.loads(body[body.index("window.config = ") + len("window.config = ") : body.index(";\n")])
    assert config["routerBasename"] == "/portal/medical/ohif"
    source = config["dataSources"][0]
    assert config["defaultDataSourceName"] == source["sourceName"]
    assert source["namespace"] == "@ohif/extension-default.dataSourcesModule.dicomweb"
    settings_ = source["configuration"]
    assert {settings_[key] for key in ("qidoRoot", "wadoRoot", "wadoUriRoot")} == {"/api/v1/medical/dicomweb"}
    assert settings_["imageRendering"] == settings_["thumbnailRendering"] == "wadors"
    assert settings_["enableStudyLazyLoad"] and settings_["supportsWildcard"] and settings_["supportsFuzzyMatching"]
    assert settings_["omitQuotationForMultipartRequest"]
    # the roots become absolute, same origin, in the browser
    assert "window.location.origin + source.configuration[key]" in body


def test_ohif_not_installed_is_404_and_not_offered(client_for, org, stored, without_ohif):
    client = client_for(org, "clinician")
    assert client.get(f"{PORTAL}ohif/").status_code == 404
    assert client.get(f"{PORTAL}ohif/viewer?StudyInstanceUIDs=1.2").status_code == 404
    assert 'data-testid="open-ohif"' not in client.get(f"{PORTAL}studies/{stored[CT][0]}/").content.decode()


def test_ohif_is_served_under_the_mount(client_for, org, stored, with_ohif):
    client = client_for(org, "clinician")
    # the study page offers it
    study = stored[CT][0]
    body = client.get(f"{PORTAL}studies/{study}/").content.decode()
    assert f'href="/portal/medical/ohif/viewer?StudyInstanceUIDs={study}"' in body
    # index.html for the root and for OHIF's routes, rewritten to the mount
    for url in (f"{PORTAL}ohif/", f"{PORTAL}ohif/viewer?StudyInstanceUIDs={study}", f"{PORTAL}ohif/local"):
        response = client.get(url)
        assert response.status_code == 200, url
        index = response.content.decode()
        assert 'window.PUBLIC_URL="/portal/medical/ohif/"' in index
        assert 'src="/portal/medical/ohif/app-config.js"' in index
        assert re.search(r'src="/portal/medical/ohif/app\.bundle\.[0-9a-f]+\.js"', index)
        assert not re.search(r'(src|href)="/(?!portal/medical/ohif/)', index)
        assert "init-service-worker" not in index
        assert response["Cache-Control"] == "private, no-cache"
    # the bundles load their chunks from the mount; the installed files are unchanged
    found = re.search(r'src="/portal/medical/ohif/(app\.bundle\.[0-9a-f]+\.js)"', index)
    assert found is not None
    bundle = found[1]
    response = client.get(f"{PORTAL}ohif/{bundle}")
    assert response.status_code == 200
    assert b'__webpack_require__.p = "/portal/medical/ohif/";' in response.content
    assert b'__webpack_require__.p = "/";' in (with_ohif / bundle).read_bytes()
    # wasm with its media type (streaming compilation needs it); a missing asset is a 404
    wasm = next(with_ohif.glob("*.wasm")).name
    response = client.get(f"{PORTAL}ohif/{wasm}")
    assert response.status_code == 200 and response["Content-Type"] == "application/wasm"
    assert client.get(f"{PORTAL}ohif/no-such-chunk.bundle.js").status_code == 404
    # nothing outside the dist is reachable
    assert client.get(f"{PORTAL}ohif/../package.json").status_code == 404
    assert client.get(f"{PORTAL}ohif/%2e%2e/package.json").status_code == 404


# --- de-identified export -------------------------------------------------------------------------


def test_admin_exports_a_study_and_follows_its_job(client_for, org, stored, django_capture_on_commit_callbacks):
    # given an org admin on a study page, with the export form
    client = client_for(org, "org_admin")
    study = stored[MULTIFRAME][0]
    body = client.get(f"{PORTAL}studies/{study}/").content.decode()
    assert 'data-testid="export-button"' in body
    # when exporting with an option (the job is enqueued on commit; tests run it inline)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{PORTAL}studies/{study}/export/", {"retain_patient_characteristics": "on"})
    # then the export page follows the job with the progress widget and offers the zip
    assert response.status_code == 302
    export = Export.objects.get(organization=org)
    assert response["Location"] == f"{PORTAL}exports/{export.pk}/"
    assert export.study_uids == [study] and export.options["retain_patient_characteristics"] is True
    page = client.get(response["Location"]).content.decode()
    assert f'data-job-url="/api/v1/jobs/{export.job_id}/"' in page
    assert f'href="/api/v1/medical/exports/{export.pk}/download/"' in page
    download = client.get(f"/api/v1/medical/exports/{export.pk}/download/")
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))) as archive:
        names = archive.namelist()
    assert len(names) == 1 and study not in names[0]  # new UIDs


def test_export_refusals(client_for, org, other_org, stored):
    study = stored[CT][0]
    # conflicting options: the form shows the service's error, no export
    response = client_for(org, "org_admin").post(
        f"{PORTAL}studies/{study}/export/", {"retain_long_full_dates": "on", "retain_long_modified_dates": "on"}
    )
    assert response.status_code == 400
    assert "Cannot be combined with retain_long_full_dates." in response.content.decode()
    # a clinician may not export; another organization's study is not found
    assert client_for(org, "clinician").post(f"{PORTAL}studies/{study}/export/", {}).status_code == 403
    assert client_for(other_org, "org_admin").post(f"{PORTAL}studies/{study}/export/", {}).status_code == 404
    assert not Export.objects.exists()
    # another organization's export page is not found, and a clinician sees none
    client_for(org, "org_admin").post(f"{PORTAL}studies/{study}/export/", {})
    export = Export.objects.get(organization=org)
    assert client_for(other_org, "org_admin").get(f"{PORTAL}exports/{export.pk}/").status_code == 404
    assert client_for(org, "clinician").get(f"{PORTAL}exports/{export.pk}/").status_code == 403


# --- DICOM nodes (org admins) ---------------------------------------------------------------------


def test_an_org_admin_adds_deactivates_and_removes_a_dicom_node(client_for: Any, org: Any) -> None:

    # given
    client = client_for(org, "org_admin")
    # when: added
    response = client.post("/portal/medical/dicom-nodes/", {"ae_title": "CT_SCANNER_1", "host": "10.0.0.5"})
    # then
    assert response.status_code == 302
    node = DicomNode.objects.get(organization=org)
    assert (node.ae_title, node.host, node.active) == ("CT_SCANNER_1", "10.0.0.5", True)
    page = client.get("/portal/medical/dicom-nodes/")
    assert page.status_code == 200 and b"CT_SCANNER_1" in page.content and b"11112" in page.content
    # when: deactivated, then removed
    assert client.post("/portal/medical/dicom-nodes/", {"node": node.pk, "action": "toggle"}).status_code == 302
    node.refresh_from_db()
    assert node.active is False
    assert client.post("/portal/medical/dicom-nodes/", {"node": node.pk, "action": "delete"}).status_code == 302
    assert not DicomNode.objects.exists()
    assert AuditEvent.objects.filter(organization=org, action__startswith="medical.dicom_node").count() == 3


def test_a_bad_or_taken_ae_title_is_shown_on_the_form(client_for: Any, org: Any, other_org: Any) -> None:

    # given: another organization uses the title
    dicom_node_create(actor=Actor.system(other_org), ae_title="SHARED_AE")
    client = client_for(org, "org_admin")
    # when / then
    taken = client.post("/portal/medical/dicom-nodes/", {"ae_title": "SHARED_AE"})
    assert taken.status_code == 400 and b"already in use" in taken.content and b"globex" not in taken.content
    bad = client.post("/portal/medical/dicom-nodes/", {"ae_title": "BAD\\TITLE"})
    assert bad.status_code == 400
    assert client.post("/portal/medical/dicom-nodes/", {"ae_title": ""}).status_code == 400


def test_dicom_nodes_are_for_org_admins_and_stay_in_their_organization(
    client_for: Any, org: Any, other_org: Any
) -> None:

    # given: a node of another organization
    theirs = dicom_node_create(actor=Actor.system(other_org), ae_title="THEIR_CT")
    admin = client_for(org, "org_admin")
    # when / then: not listed, not changeable (404), and a clinician may not manage nodes
    assert b"THEIR_CT" not in admin.get("/portal/medical/dicom-nodes/").content
    assert admin.post("/portal/medical/dicom-nodes/", {"node": theirs.pk, "action": "delete"}).status_code == 404
    assert admin.post("/portal/medical/dicom-nodes/", {"node": "x", "action": "delete"}).status_code == 404
    assert DicomNode.objects.filter(pk=theirs.pk).exists()
    assert client_for(org, "clinician").get("/portal/medical/dicom-nodes/").status_code == 403
