"""STOW-RS through the HTTP API: the bodies real clients send, the malformed ones (a 400/415 in
the error shape, never a 500, and nothing stored), the Store Instances Response, `POST
/studies/{study}`, and tenancy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.conf import settings
from pydicom.uid import generate_uid

from apps.medical.dicom_files import DATA_SET_DOES_NOT_MATCH
from apps.medical.models import Instance, Patient, Series, Study
from core.audit.models import AuditEvent
from tests.conftest import assert_error
from tests.medical.conftest import (
    CT,
    MR,
    MULTIFRAME,
    MULTIFRAME_J2K,
    STOW_URL,
    dicom_path,
    stow_body,
    stow_content_type,
)

pytestmark = pytest.mark.django_db

# DICOM JSON tags of the Store Instances Response Module (PS3.18 Table 10.5.3-1)
REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_INSTANCE_UID = "00081155"
FAILURE_REASON = "00081197"
WARNING_REASON = "00081196"
RETRIEVE_URL = "00081190"

RTPLAN = "rtplan.dcm"  # a non-image instance


# --- helpers the other STOW/archive test modules use too -----------------------------------------


def referenced(response: Any) -> list[dict[str, Any]]:
    """The ReferencedSOPSequence items of a STOW answer."""
    return list(response.json().get(REFERENCED_SOP_SEQUENCE, {}).get("Value", []))


def failed(response: Any) -> list[dict[str, Any]]:
    """The FailedSOPSequence items of a STOW answer."""
    return list(response.json().get(FAILED_SOP_SEQUENCE, {}).get("Value", []))


def item_uid(item: dict[str, Any]) -> str:
    return str(item.get(REFERENCED_SOP_INSTANCE_UID, {}).get("Value", [""])[0])


def item_code(item: dict[str, Any], tag: str = FAILURE_REASON) -> int:
    return int(item[tag]["Value"][0])


def sop_uid(name: str | Path) -> str:
    path = name if isinstance(name, Path) else dicom_path(name)
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def media_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def store_audits(org: Any = None) -> list[AuditEvent]:
    events = AuditEvent.objects.filter(action__startswith="medical.instance.")
    return list(events.filter(organization=org) if org is not None else events)


def assert_nothing_stored(org: Any = None) -> None:
    """No Instance, Series, Study or Patient row, no file under MEDIA_ROOT, no store audit row."""
    rows = {model.__name__: model.objects.count() for model in (Instance, Series, Study, Patient)}
    assert rows == {"Instance": 0, "Series": 0, "Study": 0, "Patient": 0}, rows
    assert media_files() == []
    assert store_audits(org) == []


def assert_archive_holds(org: Any, names: Sequence[str | Path]) -> None:
    """Exactly these instances are stored in `org`, each file byte-identical to what was sent."""
    from django.core.files.storage import default_storage

    stored = {instance.sop_instance_uid: instance for instance in Instance.objects.filter(organization=org)}
    assert set(stored) == {sop_uid(name) for name in names}
    for name in names:
        path = name if isinstance(name, Path) else dicom_path(name)
        with default_storage.open(stored[sop_uid(name)].file, "rb") as handle:
            assert handle.read() == path.read_bytes()
    assert len(media_files()) == len({instance.sha256 for instance in stored.values()})


def send(client: Any, body: bytes, content_type: str, url: str = STOW_URL, **extra: Any) -> Any:
    return client.generic("POST", url, body, content_type=content_type, **extra)


# --- the bodies real clients send ------------------------------------------------------------------


def test_one_instance_is_stored_with_the_store_instances_response(api: Any, org: Any) -> None:
    # when
    response = send(api, stow_body([CT]), stow_content_type())

    # then: 200, DICOM JSON, the instance referenced with its retrieve URL, stored byte-identical
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/dicom+json"
    (item,) = referenced(response)
    assert item_uid(item) == sop_uid(CT)
    study = pydicom.dcmread(dicom_path(CT), stop_before_pixels=True).StudyInstanceUID
    assert item[RETRIEVE_URL]["Value"][0].startswith(f"http://testserver/api/v1/medical/dicomweb/studies/{study}/")
    assert response.json()[RETRIEVE_URL]["Value"] == [f"http://testserver/api/v1/medical/dicomweb/studies/{study}"]
    assert FAILED_SOP_SEQUENCE not in response.json()
    assert_archive_holds(org, [CT])
    (audit,) = store_audits(org)
    assert audit.action == "medical.instance.store" and audit.details["received_via"] == "stow"


def test_many_instances_of_several_studies_in_one_body(api: Any, org: Any) -> None:
    # when
    names = [CT, MR, MULTIFRAME_J2K, RTPLAN]
    response = send(api, stow_body(names), stow_content_type())

    # then: all four stored (the JPEG 2000 one as it came); several studies: no top-level RetrieveURL
    assert response.status_code == 200, response.content
    assert [item_uid(item) for item in referenced(response)] == [sop_uid(name) for name in names]
    assert RETRIEVE_URL not in response.json()
    assert_archive_holds(org, names)
    j2k = Instance.objects.get(sop_instance_uid=sop_uid(MULTIFRAME_J2K))
    assert j2k.transfer_syntax_uid == "1.2.840.10008.1.2.4.90" and j2k.number_of_frames == 10
    assert len(store_audits(org)) == 4


@pytest.mark.parametrize(
    "content_type",
    [
        'multipart/related; type="application/dicom"; boundary="tessera-test-boundary"',
        "multipart/related; type=application/dicom; boundary=tessera-test-boundary",
        'Multipart/Related; Type="Application/DICOM"; Boundary=tessera-test-boundary',
        "multipart/related; boundary=tessera-test-boundary",  # no type: application/dicom assumed
        'multipart/related;type="application/dicom";boundary=tessera-test-boundary;start="<x>"',
    ],
    ids=["quoted", "unquoted", "mixed-case", "no-type", "no-spaces-start-param"],
)
def test_the_content_type_as_clients_write_it(api: Any, org: Any, content_type: str) -> None:
    # when
    response = send(api, stow_body([CT]), content_type)

    # then
    assert response.status_code == 200, response.content
    assert_archive_holds(org, [CT])


def test_a_quoted_boundary_with_characters_a_token_cannot_hold(api: Any, org: Any) -> None:
    # given: RFC 2046 allows spaces, '=', '?' and ':' in a quoted boundary
    boundary = "a b=c?d:e"
    body = stow_body([CT], boundary)

    # when
    response = send(api, body, f'multipart/related; type="application/dicom"; boundary="{boundary}"')

    # then
    assert response.status_code == 200, response.content
    assert_archive_holds(org, [CT])


def _raw_body(parts: list[tuple[bytes, bytes]], boundary: bytes = b"b0undary", *, preamble: bytes = b"") -> bytes:
    """A body assembled by hand: (header block, payload) per part."""
    out = bytearray(preamble)
    for headers, payload in parts:
        out += b"--" + boundary + b"\r\n" + headers + payload + b"\r\n"
    return bytes(out + b"--" + boundary + b"--")


BOUNDARY_TYPE = 'multipart/related; type="application/dicom"; boundary=b0undary'


@pytest.mark.parametrize(
    ("headers", "preamble", "epilogue"),
    [
        (b"Content-Type: application/dicom\r\n\r\n", b"", b""),
        (b"Content-Type: application/dicom\r\n\r\n", b"\r\n", b"\r\n"),
        (b"Content-Type: application/dicom\r\n\r\n", b"This is a preamble.\r\n", b"\r\nand an epilogue\r\n"),
        (b"Content-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\n\r\n", b"", b""),
        (b'Content-Type: application/dicom; transfer-syntax="1.2.840.10008.1.2.1"\r\n\r\n', b"", b""),
        (b"Content-Type: application/dicom\r\nContent-Length: 39206\r\nContent-ID: <1@x>\r\n\r\n", b"", b""),
        (b"\r\n", b"", b""),  # a part without headers
        (b"Content-Type: application/dicom\n\n", b"", b""),  # LF-only header block
        (b"content-type:application/dicom\r\n\r\n", b"\r\n", b""),
    ],
    ids=[
        "plain",
        "crlf-before-and-after",
        "preamble-and-epilogue",
        "transfer-syntax",
        "quoted-transfer-syntax",
        "more-headers",
        "no-headers",
        "lf-only-headers",
        "lower-case-no-space",
    ],
)
def test_part_framing_real_clients_send(api: Any, org: Any, headers: bytes, preamble: bytes, epilogue: bytes) -> None:
    # given
    body = _raw_body([(headers, dicom_path(CT).read_bytes())], preamble=preamble) + epilogue

    # when
    response = send(api, body, BOUNDARY_TYPE)

    # then
    assert response.status_code == 200, response.content
    assert_archive_holds(org, [CT])


def test_transport_padding_after_a_boundary(api: Any, org: Any) -> None:
    # given: RFC 2046 allows linear white space between a boundary and its CRLF
    ct, mr = dicom_path(CT).read_bytes(), dicom_path(MR).read_bytes()
    body = (
        b"--b0undary  \t\r\nContent-Type: application/dicom\r\n\r\n"
        + ct
        + b"\r\n--b0undary \r\nContent-Type: application/dicom\r\n\r\n"
        + mr
        + b"\r\n--b0undary--  \r\n"
    )

    # when
    response = send(api, body, BOUNDARY_TYPE)

    # then
    assert response.status_code == 200, response.content
    assert_archive_holds(org, [CT, MR])


def test_a_part_whose_bytes_contain_the_boundary_without_crlf(api: Any, org: Any, tmp_path: Path) -> None:
    # given: an instance whose description holds "--b0undary" (not preceded by CRLF: not a delimiter)
    dataset = pydicom.dcmread(dicom_path(CT))
    dataset.StudyDescription = "x--b0undary--y"
    path = tmp_path / "ct.dcm"
    dataset.save_as(path, enforce_file_format=True)

    # when
    response = send(api, _raw_body([(b"Content-Type: application/dicom\r\n\r\n", path.read_bytes())]), BOUNDARY_TYPE)

    # then
    assert response.status_code == 200, response.content
    assert_archive_holds(org, [path])


def test_a_part_that_is_not_application_dicom_is_a_failed_item_and_the_others_are_stored(api: Any, org: Any) -> None:
    # given: a DICOM JSON metadata part (the bulk-data form of STOW, not supported) beside a DICOM part
    body = _raw_body(
        [
            (b"Content-Type: application/dicom+json\r\n\r\n", b"[{}]"),
            (b"Content-Type: application/dicom\r\n\r\n", dicom_path(CT).read_bytes()),
        ]
    )

    # when
    response = send(api, body, 'multipart/related; boundary=b0undary; type="application/dicom"')

    # then: 202, one failed item, the CT stored
    assert response.status_code == 202, response.content
    assert [item_uid(item) for item in referenced(response)] == [sop_uid(CT)]
    (failure,) = failed(response)
    assert item_code(failure) == 0xC000
    assert_archive_holds(org, [CT])


# --- malformed bodies: an error in the error shape, never a 500, nothing stored --------------------


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"no boundary anywhere in this body", BOUNDARY_TYPE, 400),
        (_raw_body([(b"\r\n", b"DICM" * 100)])[:-14], BOUNDARY_TYPE, 400),  # no closing boundary
        (b"--b0undary\r\nContent-Type: application/dicom\r\n", BOUNDARY_TYPE, 400),  # headers never end
        (b"--b0undary--\r\n", BOUNDARY_TYPE, 400),  # no part at all
        (b"--b0undary\r\n\r\nxx\r\n--b0undary--", 'multipart/related; type="application/dicom"', 400),
        (b"--b0undary\r\n\r\nxx\r\n--b0undary--", "multipart/related; boundary=", 400),
        (b'{"a": 1}', "application/json", 415),
        (b"DICM", "application/dicom", 415),
        (b"--b0undary\r\n\r\nxx\r\n--b0undary--", "multipart/form-data; boundary=b0undary", 415),
        (
            b"--b0undary\r\n\r\n[]\r\n--b0undary--",
            'multipart/related; type="application/dicom+json"; boundary=b0undary',
            415,
        ),
        (
            b"--b0undary\r\n\r\n<x/>\r\n--b0undary--",
            "multipart/related; type=application/dicom+xml; boundary=b0undary",
            415,
        ),
        (b"--b0undary\r\n\r\nxx\r\n--b0undary--", "", 415),
    ],
    ids=[
        "no-boundary-in-body",
        "truncated",
        "headers-never-end",
        "no-parts",
        "missing-boundary-param",
        "empty-boundary-param",
        "json",
        "bare-dicom",
        "form-data",
        "dicom-json-type",
        "dicom-xml-type",
        "no-content-type",
    ],
)
def test_malformed_bodies_are_refused_and_leave_nothing(
    api: Any, org: Any, body: bytes, content_type: str, status: int
) -> None:
    # when
    response = send(api, body, content_type)

    # then
    assert_error(response, status)
    assert_nothing_stored(org)


def test_an_empty_body_is_a_400(api: Any, org: Any) -> None:
    response = send(api, b"", BOUNDARY_TYPE, CONTENT_LENGTH="0")
    assert_error(response, 400, "bad_multipart")
    assert_nothing_stored(org)


def test_a_body_truncated_after_complete_parts_stores_nothing(api: Any, org: Any) -> None:
    # given: two complete instances, then the body stops inside a third (a client that died)
    body = stow_body([CT, MR, MULTIFRAME])
    cut = body[: len(body) - 5000]

    # when
    response = send(api, cut, stow_content_type())

    # then: a malformed body is a 400, and the instances before the cut are not kept either
    assert_error(response, 400, "bad_multipart")
    assert_nothing_stored(org)


def test_a_very_long_boundary_parameter_is_a_400(api: Any, org: Any) -> None:
    response = send(api, b"--x\r\n\r\n--x--", f"multipart/related; boundary={'x' * 300}")
    assert_error(response, 400)
    assert_nothing_stored(org)


# --- POST /studies/{study} -------------------------------------------------------------------------


def test_store_into_a_study_refuses_instances_of_another_study(api: Any, org: Any) -> None:
    # given
    study = pydicom.dcmread(dicom_path(CT), stop_before_pixels=True).StudyInstanceUID

    # when: the CT (that study) and the MR (another study) to /studies/{CT's study}
    response = send(api, stow_body([CT, MR]), stow_content_type(), url=f"{STOW_URL}/{study}")

    # then: 202, the MR a failed item with 0xA900, not stored
    assert response.status_code == 202, response.content
    assert [item_uid(item) for item in referenced(response)] == [sop_uid(CT)]
    (failure,) = failed(response)
    assert item_uid(failure) == sop_uid(MR) and item_code(failure) == DATA_SET_DOES_NOT_MATCH
    assert_archive_holds(org, [CT])
    assert Study.objects.get().study_instance_uid == study
    assert len(store_audits(org)) == 1


def test_store_into_a_study_with_only_other_studies_is_a_409(api: Any, org: Any) -> None:
    # when
    response = send(api, stow_body([MR]), stow_content_type(), url=f"{STOW_URL}/1.2.3.4")

    # then
    assert response.status_code == 409, response.content
    assert [item_code(item) for item in failed(response)] == [DATA_SET_DOES_NOT_MATCH]
    assert response.json()[RETRIEVE_URL]["Value"] == ["http://testserver/api/v1/medical/dicomweb/studies/1.2.3.4"]
    assert_nothing_stored(org)


# --- tenancy ----------------------------------------------------------------------------------------


def test_another_orgs_key_stores_into_that_org_only(other_api: Any, org: Any, other_org: Any) -> None:
    # when
    response = send(other_api, stow_body([CT]), stow_content_type())

    # then
    assert response.status_code == 200, response.content
    assert Instance.objects.filter(organization=org).count() == 0
    assert Instance.objects.filter(organization=other_org).count() == 1
    assert [event.organization_id for event in store_audits()] == [other_org.pk]


def test_the_same_uids_in_two_orgs_are_two_studies(api: Any, other_api: Any, org: Any, other_org: Any) -> None:
    # when
    first = send(api, stow_body([CT]), stow_content_type())
    second = send(other_api, stow_body([CT]), stow_content_type())

    # then: each org has its own study, series, instance and file; no duplicate warning
    assert (first.status_code, second.status_code) == (200, 200)
    assert WARNING_REASON not in referenced(second)[0]
    studies = Study.objects.filter(study_instance_uid=sop_uid_study(CT))
    assert sorted(study.organization_id for study in studies) == sorted([org.pk, other_org.pk])
    assert all(study.number_of_instances == 1 for study in studies)
    files = {instance.file for instance in Instance.objects.all()}
    assert len(files) == 2 and all(
        f"org-{instance.organization_id}/" in instance.file for instance in Instance.objects.all()
    )


def sop_uid_study(name: str) -> str:
    return str(pydicom.dcmread(dicom_path(name), stop_before_pixels=True).StudyInstanceUID)


def test_a_finance_only_key_is_403_and_no_key_is_401(api_client_for: Callable[..., Any], org: Any, client: Any) -> None:
    # when
    finance = send(api_client_for(org, scopes=("finance",)), stow_body([CT]), stow_content_type())
    anonymous = send(client, stow_body([CT]), stow_content_type())

    # then
    assert_error(finance, 403)
    assert_error(anonymous, 401)
    assert_nothing_stored()


@pytest.mark.parametrize("role", ["clinician", "org_admin"])
def test_a_clinician_or_org_admin_session_stores(client_for: Callable[..., Any], org: Any, role: str) -> None:
    response = send(client_for(org, role), stow_body([CT]), stow_content_type())
    assert response.status_code == 200, response.content
    assert_archive_holds(org, [CT])


@pytest.mark.parametrize("role", ["credit_analyst", "merchant", "traffic_operator"])
def test_other_roles_sessions_are_403(client_for: Callable[..., Any], org: Any, role: str) -> None:
    response = send(client_for(org, role), stow_body([CT]), stow_content_type())
    assert_error(response, 403)
    assert_nothing_stored()


# --- bodies of many parts (batches), empty parts, refusals inside a batch -----------------------------


def ct_copies(folder: Path, count: int, **changes: Any) -> list[Path]:
    """`count` distinct instances (new SOP Instance UIDs) made from CT_small by pydicom, with
    `changes` (keyword: value) applied to each."""
    folder.mkdir(parents=True, exist_ok=True)
    base = pydicom.dcmread(dicom_path(CT))
    paths = []
    for index in range(count):
        dataset = base.copy()
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.InstanceNumber = index + 1
        for keyword, value in changes.items():
            setattr(dataset, keyword, value)
        path = folder / f"{dataset.SOPInstanceUID}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def test_a_body_of_more_parts_than_one_batch(api: Any, org: Any, tmp_path: Path) -> None:
    # given: 120 instances of one series, a broken file in the middle and a repeat at the end
    paths: list[Path | str] = [*ct_copies(tmp_path, 120)]
    paths.insert(60, "MR_truncated.dcm")
    paths.append(paths[0])

    # when
    response = send(api, stow_body(paths), stow_content_type())

    # then: 202 (one failure); 120 stored once, the repeat a no-op; the counts right
    assert response.status_code == 202, response.content
    assert len(referenced(response)) == 121 and len(failed(response)) == 1
    assert Instance.objects.count() == 120
    study, series = Study.objects.get(), Series.objects.get()
    assert (study.number_of_series, study.number_of_instances, series.number_of_instances) == (1, 120, 120)
    assert len(media_files()) == 120
    assert len(store_audits(org)) == 120


def test_an_empty_part_is_a_failed_item(api: Any, org: Any) -> None:
    body = _raw_body([(b"Content-Type: application/dicom\r\n\r\n", b""), (b"\r\n", dicom_path(CT).read_bytes())])
    response = send(api, body, BOUNDARY_TYPE)
    assert response.status_code == 202, response.content
    assert [item_code(item) for item in failed(response)] == [0xC000]
    assert_archive_holds(org, [CT])


def test_an_instance_whose_series_is_in_another_study_is_refused_and_its_study_is_not_made(
    api: Any, org: Any, tmp_path: Path
) -> None:
    # given: the CT stored; then, in one body, an instance of a new study that reuses the CT's
    # series UID (refused) and a good instance of that same new study in a new series
    assert send(api, stow_body([CT]), stow_content_type()).status_code == 200
    ct_series = pydicom.dcmread(dicom_path(CT), stop_before_pixels=True).SeriesInstanceUID
    new_study = "1.2.826.0.1.3680043.8.498.555"
    (bad,) = ct_copies(tmp_path, 1, StudyInstanceUID=new_study, SeriesInstanceUID=ct_series)
    (good,) = ct_copies(tmp_path, 1, StudyInstanceUID=new_study, SeriesInstanceUID="1.2.826.0.1.3680043.8.498.556")

    # when
    response = send(api, stow_body([bad, good]), stow_content_type())

    # then: the bad one 0xA900; the good one stored in the new study; nothing of the bad one kept
    assert response.status_code == 202, (response.content, response.get("Warning"))
    assert [(item_uid(item), item_code(item)) for item in failed(response)] == [(sop_uid(bad), DATA_SET_DOES_NOT_MATCH)]
    assert [item_uid(item) for item in referenced(response)] == [sop_uid(good)]
    assert_archive_holds(org, [CT, good])
    new = Study.objects.get(study_instance_uid=new_study)
    assert (new.number_of_series, new.number_of_instances) == (1, 1)
    old = Study.objects.exclude(pk=new.pk).get()
    assert (old.number_of_series, old.number_of_instances) == (1, 1)
    assert Series.objects.get(series_instance_uid=ct_series).number_of_instances == 1
