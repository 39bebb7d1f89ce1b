"""`/api/v1/medical/studies/…`: the study list with its filters (from the index), a study with
its series, and deleting a study or a series with a reason. Every read writes a PHI access row."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pydicom
import pytest
from django.core.files.storage import default_storage

from apps.medical.models import Instance, PhiAccess, Series, Study
from core.audit.models import AuditEvent
from tests.conftest import assert_error
from tests.medical.conftest import CT, MR, MULTIFRAME, dicom_path

pytestmark = pytest.mark.django_db

STUDIES = "/api/v1/medical/studies/"


def uid_of(name: str, keyword: str = "StudyInstanceUID") -> str:
    return str(pydicom.dcmread(dicom_path(name))[keyword].value)


@pytest.fixture
def archive(stow: Callable[..., Any]) -> dict[str, str]:
    """CT, MR and the multi-frame MR stored in acme: name → Study Instance UID."""
    response = stow([CT, MR, MULTIFRAME])
    assert response.status_code == 200, response.content
    return {name: uid_of(name) for name in (CT, MR, MULTIFRAME)}


def listed(api: Any, **query: str) -> list[str]:
    response = api.get(STUDIES, query)
    assert response.status_code == 200, response.content
    return sorted(study["study_instance_uid"] for study in response.json()["results"])


def delete_json(client: Any, url: str, body: object) -> Any:
    return client.delete(url, data=json.dumps(body), content_type="application/json")


def test_the_list_pages_the_studies_and_records_one_search(api: Any, archive: dict[str, str]) -> None:
    # when
    response = api.get(STUDIES, {"page_size": 2})
    # then: paginated, with the index attributes
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3 and len(body["results"]) == 2
    ct = next(study for study in api.get(STUDIES).json()["results"] if study["study_instance_uid"] == archive[CT])
    assert ct["patient_id"] == "1CT1" and ct["modalities_in_study"] == "CT" and ct["number_of_instances"] == 1
    # and: one PHI row per request, naming the studies on its page
    searches = PhiAccess.objects.filter(kind="search").order_by("id")
    assert searches.count() == 2
    assert searches.first() is not None and searches.first().studies.count() == 2  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"patient_id": "1CT1"}, [CT]),
        ({"patient_name": "compressedsamples"}, [CT, MR]),
        ({"patient_name": "mr1"}, [MR]),
        ({"modality": "mr"}, [MR, MULTIFRAME]),
        ({"modality": "CT"}, [CT]),
        ({"patient_id": "nobody"}, []),
    ],
)
def test_the_list_filters(query: dict[str, str], expected: list[str], api: Any, archive: dict[str, str]) -> None:
    assert listed(api, **query) == sorted(archive[name] for name in expected)


def test_the_list_filters_by_accession_and_date(api: Any, archive: dict[str, str]) -> None:
    # given: the CT's own accession number and study date
    ct = pydicom.dcmread(dicom_path(CT))
    date = str(ct.StudyDate)
    # when / then
    if ct.get("AccessionNumber"):
        assert archive[CT] in listed(api, accession=str(ct.AccessionNumber))
    assert archive[CT] in listed(api, date_from=date, date_to=date)
    iso = f"{date[:4]}-{date[4:6]}-{date[6:]}"
    assert archive[CT] in listed(api, date_from=iso)
    assert archive[CT] not in listed(api, date_to="1900-01-01")
    assert listed(api, accession="no-such") == []


@pytest.mark.parametrize(
    "query",
    [
        {"date_from": "yesterday"},
        {"date_to": "2024-13-01"},
        {"date_from": "2024-02-01", "date_to": "2024-01-01"},
        {"modality": "C/T"},
        {"patient_id": "x" * 65},
        {"page": "0"},
        {"page_size": "many"},
    ],
)
def test_bad_list_queries_are_400(query: dict[str, str], api: Any) -> None:
    response = api.get(STUDIES, query)
    assert_error(response, 400)


def test_a_study_with_its_series_is_read_and_recorded(api: Any, archive: dict[str, str]) -> None:
    # when
    response = api.get(f"{STUDIES}{archive[CT]}/")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["study_instance_uid"] == archive[CT]
    assert [series["series_instance_uid"] for series in body["series"]] == [uid_of(CT, "SeriesInstanceUID")]
    access = PhiAccess.objects.get(kind="metadata")
    assert list(access.studies.values_list("study_instance_uid", flat=True)) == [archive[CT]]


def test_another_organizations_study_is_not_found(other_api: Any, archive: dict[str, str]) -> None:
    series = uid_of(CT, "SeriesInstanceUID")
    assert_error(other_api.get(f"{STUDIES}{archive[CT]}/"), 404, "not_found")
    assert_error(delete_json(other_api, f"{STUDIES}{archive[CT]}/", {"reason": "x"}), 404, "not_found")
    url = f"{STUDIES}{archive[CT]}/series/{series}/"
    assert_error(delete_json(other_api, url, {"reason": "x"}), 404, "not_found")
    assert other_api.get(STUDIES).json()["count"] == 0
    assert Study.objects.filter(study_instance_uid=archive[CT]).exists()


def test_a_finance_only_key_is_403(org: Any, api_client_for: Callable[..., Any], archive: dict[str, str]) -> None:
    client = api_client_for(org, scopes=("finance",))
    assert_error(client.get(STUDIES), 403, "permission_denied")
    assert_error(client.get(f"{STUDIES}{archive[CT]}/"), 403, "permission_denied")
    assert_error(delete_json(client, f"{STUDIES}{archive[CT]}/", {"reason": "x"}), 403, "permission_denied")
    assert not PhiAccess.objects.filter(kind="search").exists()


def test_deleting_a_study_removes_rows_and_files_and_is_audited(
    api: Any, archive: dict[str, str], django_capture_on_commit_callbacks: Any
) -> None:
    # given
    files = list(Instance.objects.filter(series__study__study_instance_uid=archive[CT]).values_list("file", flat=True))
    # when: the files go once the deletion commits
    with django_capture_on_commit_callbacks(execute=True):
        response = delete_json(api, f"{STUDIES}{archive[CT]}/", {"reason": "duplicate upload"})
    # then
    assert response.status_code == 204
    assert not Study.objects.filter(study_instance_uid=archive[CT]).exists()
    assert not any(default_storage.exists(name) for name in files)
    event = AuditEvent.objects.get(action="medical.study.delete")
    assert event.details["reason"] == "duplicate upload"
    assert_error(api.get(f"{STUDIES}{archive[CT]}/"), 404)


def test_deleting_a_series_keeps_the_study_counts_true(api: Any, stow: Callable[..., Any]) -> None:
    # given: the multi-frame MR, one study of one series
    stow([MULTIFRAME])
    study = uid_of(MULTIFRAME)
    series = uid_of(MULTIFRAME, "SeriesInstanceUID")
    # when
    response = delete_json(api, f"{STUDIES}{study}/series/{series}/", {"reason": "wrong patient"})
    # then
    assert response.status_code == 204
    assert not Series.objects.filter(series_instance_uid=series).exists()
    remaining = Study.objects.get(study_instance_uid=study)
    assert (remaining.number_of_series, remaining.number_of_instances) == (0, 0)
    assert AuditEvent.objects.get(action="medical.series.delete").details["reason"] == "wrong patient"


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}, {"reason": None}])
def test_a_delete_needs_a_reason(body: dict[str, Any], api: Any, archive: dict[str, str]) -> None:
    series = uid_of(CT, "SeriesInstanceUID")
    for url in (f"{STUDIES}{archive[CT]}/", f"{STUDIES}{archive[CT]}/series/{series}/"):
        error = assert_error(delete_json(api, url, body), 400)
        assert "reason" in error["fields"], error
    assert Study.objects.filter(study_instance_uid=archive[CT]).exists()


def test_unknown_uids_are_404(api: Any, archive: dict[str, str]) -> None:
    assert_error(delete_json(api, f"{STUDIES}1.2.3/", {"reason": "x"}), 404)
    assert_error(delete_json(api, f"{STUDIES}{archive[CT]}/series/1.2.3/", {"reason": "x"}), 404)
    # a series addressed under another study of the same archive is not found either
    series = uid_of(CT, "SeriesInstanceUID")
    assert_error(delete_json(api, f"{STUDIES}{archive[MR]}/series/{series}/", {"reason": "x"}), 404)


def test_a_clinician_reads_but_cannot_delete(org: Any, client_for: Callable[..., Any], archive: dict[str, str]) -> None:
    clinician = client_for(org, "clinician")
    assert clinician.get(STUDIES).status_code == 200
    assert clinician.get(f"{STUDIES}{archive[CT]}/").status_code == 200
    response = delete_json(clinician, f"{STUDIES}{archive[CT]}/", {"reason": "x"})
    assert_error(response, 403, "permission_denied")
    assert Study.objects.filter(study_instance_uid=archive[CT]).exists()
