"""One study matcher: the portal's study list, the REST study list and QIDO-RS `/studies` find the
same studies for the same criteria (fuzzy person names, `*`/`?` wildcards, date ranges,
modalities), because the first two go through `index_search`, which is QIDO-RS's matching."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import generate_uid

from apps.medical.index_search import StudyFilters, qido_parameters
from tests.conftest import assert_error
from tests.medical.conftest import CT, MR, MULTIFRAME, dicom_path

pytestmark = pytest.mark.django_db

PORTAL = "/portal/medical/"
STUDIES = "/api/v1/medical/studies/"
QIDO = "/api/v1/medical/dicomweb/studies"


@pytest.fixture
def archive(stow: Callable[..., Any], tmp_path: Path) -> dict[str, str]:
    """CT (CompressedSamples^CT1, 1CT1, 2004-01-19), MR (CompressedSamples^MR1, 4MR1,
    2004-08-26), the multi-frame MR (no name, 2000-01-01) and a CT of Doe^John (JD-77,
    accession ACC-123, 2024-01-05): name → Study Instance UID."""
    doe = pydicom.dcmread(dicom_path(CT))
    doe.StudyInstanceUID, doe.SeriesInstanceUID, doe.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    doe.file_meta.MediaStorageSOPInstanceUID = doe.SOPInstanceUID
    doe.PatientName, doe.PatientID, doe.AccessionNumber, doe.StudyDate = "Doe^John", "JD-77", "ACC-123", "20240105"
    path = tmp_path / "doe.dcm"
    doe.save_as(path, enforce_file_format=True)
    response = stow([CT, MR, MULTIFRAME, path])
    assert response.status_code == 200, response.content
    uids = {
        name: str(pydicom.dcmread(dicom_path(name), stop_before_pixels=True).StudyInstanceUID)
        for name in (CT, MR, MULTIFRAME)
    }
    return {"ct": uids[CT], "mr": uids[MR], "emri": uids[MULTIFRAME], "doe": str(doe.StudyInstanceUID)}


def _portal(client: Any, query: dict[str, str]) -> set[str]:
    response = client.get(PORTAL, query)
    assert response.status_code == 200
    return set(re.findall(r'data-study-uid="([^"]+)"', response.content.decode()))


def _rest(api: Any, query: dict[str, str]) -> set[str]:
    response = api.get(STUDIES, query)
    assert response.status_code == 200, response.content
    return {study["study_instance_uid"] for study in response.json()["results"]}


def _qido(api: Any, query: dict[str, list[str]]) -> set[str]:
    response = api.get(QIDO, query, HTTP_ACCEPT="application/dicom+json")
    assert response.status_code in (200, 204), response.content
    return {study["0020000D"]["Value"][0] for study in (response.json() if response.status_code == 200 else [])}


# (portal query, REST query, studies expected); the QIDO-RS query is `qido_parameters` of the REST one
CRITERIA = [
    ({"q": "compressed"}, {"patient_name": "compressed"}, {"ct", "mr"}),  # start of a name component
    ({"q": "mr1"}, {"patient_name": "mr1"}, {"mr"}),  # any component, any case
    ({"q": "joh"}, {"patient_name": "joh"}, {"doe"}),
    ({"q": "compressed*ct?"}, {"patient_name": "compressed*ct?"}, {"ct"}),  # wildcards in a fuzzy name
    ({"q": "samples"}, {"patient_name": "samples"}, set()),  # not a component start
    ({"q": "*samples*"}, {"patient_name": "*samples*"}, {"ct", "mr"}),
    ({"q": "?MR1"}, {"patient_id": "?MR1"}, {"mr"}),  # patient id, wildcard
    ({"q": "JD-77"}, {"patient_id": "JD-77"}, {"doe"}),
    ({"accession": "ACC*"}, {"accession": "ACC*"}, {"doe"}),
    ({"accession": "ACC"}, {"accession": "ACC"}, set()),  # equality without a wildcard
    (
        {"date_from": "2004-01-01", "date_to": "2004-01-31"},
        {"date_from": "2004-01-01", "date_to": "2004-01-31"},
        {"ct"},
    ),
    ({"date_from": "2004-01-19"}, {"date_from": "2004-01-19"}, {"ct", "mr", "doe"}),
    ({"date_to": "2003-12-31"}, {"date_to": "2003-12-31"}, {"emri"}),
    ({"modality": "mr"}, {"modality": "mr"}, {"mr", "emri"}),
    ({"modality": "CT", "date_from": "2024-01-01"}, {"modality": "CT", "date_from": "2024-01-01"}, {"doe"}),
]


@pytest.mark.parametrize(("portal_query", "rest_query", "expected"), CRITERIA)
def test_the_portal_the_rest_api_and_qido_find_the_same_studies(
    client_for: Callable[..., Any],
    org: Any,
    api: Any,
    archive: dict[str, str],
    portal_query: dict[str, str],
    rest_query: dict[str, str],
    expected: set[str],
) -> None:
    # given
    client = client_for(org, "clinician")
    wanted = {archive[name] for name in expected}
    filters = StudyFilters(
        patient_id=rest_query.get("patient_id", ""),
        patient_name=rest_query.get("patient_name", ""),
        accession=rest_query.get("accession", ""),
        date_from=rest_query.get("date_from", "").replace("-", ""),
        date_to=rest_query.get("date_to", "").replace("-", ""),
        modality=rest_query.get("modality", "").upper(),
    )
    # when / then
    assert _portal(client, portal_query) == wanted
    assert _rest(api, rest_query) == wanted
    assert _qido(api, qido_parameters(filters)) == wanted


def test_the_portal_matches_every_word_of_a_name_in_any_order(
    client_for: Callable[..., Any], org: Any, archive: dict[str, str]
) -> None:
    client = client_for(org, "clinician")
    assert _portal(client, {"q": "john doe"}) == {archive["doe"]}
    assert _portal(client, {"q": "Doe^John"}) == {archive["doe"]}
    assert _portal(client, {"q": "ct1 compressedsamples"}) == {archive["ct"]}
    assert _portal(client, {"q": "*"}) == set(archive.values())


def test_a_value_the_matcher_refuses_is_a_form_error_or_a_400(
    client_for: Callable[..., Any], org: Any, api: Any, archive: dict[str, str]
) -> None:
    # when: a control character in the name
    portal = client_for(org, "clinician").get(PORTAL, {"q": "doe\x01"})
    rest = api.get(STUDIES, {"patient_name": "doe\x01"})
    # then
    assert portal.status_code == 200
    assert "Control characters are not allowed." in portal.content.decode()
    assert not re.findall(r'data-study-uid="([^"]+)"', portal.content.decode())
    assert_error(rest, 400)


def test_another_organizations_studies_are_not_found(
    client_for: Callable[..., Any],
    org: Any,
    other_org: Any,
    api_client_for: Callable[..., Any],
    archive: dict[str, str],
) -> None:
    # then: the same criteria in another organization find nothing
    assert _portal(client_for(other_org, "clinician"), {"q": "compressed"}) == set()
    assert _rest(api_client_for(other_org), {"patient_name": "compressed"}) == set()
