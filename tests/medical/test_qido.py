"""QIDO-RS (PS3.18 10.6) through the HTTP API: real files stored with STOW-RS, then searched at
every level with the standard's matching, includefield, paging, OHIF's exact queries, Accept
negotiation, tenancy and the PHI access log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.uid import generate_uid

from apps.medical import qido_query
from apps.medical.models import Instance, PhiAccess, Series, Study
from tests.conftest import assert_error
from tests.medical.conftest import CT, MR, MULTIFRAME, dicom_path

pytestmark = pytest.mark.django_db

ROOT = "/api/v1/medical/dicomweb"
CT_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
MR_STUDY = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"
EMRI_STUDY = "1.2.826.0.1.3680043.2.1143.3365540476747857567072393009509418480"
CT_SERIES = "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322"
EMRI_SERIES = "1.2.826.0.1.3680043.2.1143.3712364435022872412969836992152438492"

# DICOM JSON tags used below
PATIENT_NAME, PATIENT_ID, STUDY_DATE, STUDY_UID, SERIES_UID, SOP_UID = (
    "00100010",
    "00100020",
    "00080020",
    "0020000D",
    "0020000E",
    "00080018",
)


@dataclass
class Archive:
    """What the `archive` fixture stored: the edited studies' UIDs."""

    doe_study: str
    doe_series: str
    jane_study: str
    jane_ct_series: str
    jane_mr_series: str
    smith_study: str


def _edited(source: str, folder: Path, **values: Any) -> Path:
    """A copy of a pydicom test file with new instance UIDs and the given attributes."""
    dataset = pydicom.dcmread(dicom_path(source))
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    for keyword, value in values.items():
        setattr(dataset, keyword, value)
    path = folder / f"{dataset.SOPInstanceUID}.dcm"
    dataset.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def archive(stow: Callable[..., Any], tmp_path: Path) -> Archive:
    """Six studies: pydicom's CT_small, MR_small and emri_small as they are, and three edited ones
    (Doe^John CT in 2024, Doe^Jane with a CT and an MR series in 2024, smith^anna in 2023)."""
    uids = {name: generate_uid() for name in ("doe", "doe_s", "jane", "jane_ct", "jane_mr", "smith", "smith_s")}
    files = [
        CT,
        MR,
        MULTIFRAME,
        _edited(
            CT,
            tmp_path,
            PatientName="Doe^John",
            PatientID="PID-DOE",
            StudyDate="20240115",
            StudyTime="093000",
            AccessionNumber="ACC-1",
            StudyDescription="Chest CT",
            StudyInstanceUID=uids["doe"],
            SeriesInstanceUID=uids["doe_s"],
        ),
        _edited(
            CT,
            tmp_path,
            PatientName="Doe^Jane",
            PatientID="PID-JANE",
            StudyDate="20240301",
            StudyTime="140000",
            StudyDescription="chest ct",
            StudyInstanceUID=uids["jane"],
            SeriesInstanceUID=uids["jane_ct"],
            SeriesNumber=2,
        ),
        _edited(
            MR,
            tmp_path,
            PatientName="Doe^Jane",
            PatientID="PID-JANE",
            StudyDate="20240301",
            StudyTime="140000",
            StudyDescription="chest ct",
            StudyInstanceUID=uids["jane"],
            SeriesInstanceUID=uids["jane_mr"],
            SeriesNumber=1,
        ),
        _edited(
            MR,
            tmp_path,
            PatientName="smith^anna",
            PatientID="PID-SMITH",
            StudyDate="20231231",
            StudyTime="235959",
            StudyInstanceUID=uids["smith"],
            SeriesInstanceUID=uids["smith_s"],
        ),
    ]
    response = stow(files)
    assert response.status_code == 200, response.content[:500]
    return Archive(uids["doe"], uids["doe_s"], uids["jane"], uids["jane_ct"], uids["jane_mr"], uids["smith"])


def search(client: Any, path: str, query: str = "", **headers: str) -> Any:
    return client.get(f"{ROOT}/{path}" + (f"?{query}" if query else ""), **headers)


def found(client: Any, path: str, query: str = "", tag: str = STUDY_UID) -> list[str]:
    response = search(client, path, query)
    assert response.status_code == 200, response.content[:500]
    return [item[tag]["Value"][0] for item in response.json()]


def value(item: dict[str, Any], tag: str) -> Any:
    return item[tag].get("Value", [None])[0]


# --- the study level ---------------------------------------------------------------------------


def test_studies_are_listed_newest_first_with_the_required_attributes(api: Any, archive: Archive) -> None:
    # when
    response = search(api, "studies")
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom+json"
    studies = response.json()
    assert [value(study, STUDY_UID) for study in studies] == [
        archive.jane_study,
        archive.doe_study,
        archive.smith_study,
        MR_STUDY,
        CT_STUDY,
        EMRI_STUDY,
    ]
    jane = studies[0]
    required = {
        "00080005",
        "00080020",
        "00080030",
        "00080050",
        "00080056",
        "00080061",
        "00080090",
        "00081190",
        "00100010",
        "00100020",
        "00100030",
        "00100040",
        "0020000D",
        "00200010",
        "00201206",
        "00201208",
        "00081030",
    }
    assert required <= set(jane)
    assert jane["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}
    assert jane["00080061"] == {"vr": "CS", "Value": ["CT", "MR"]}
    assert jane["00201206"] == {"vr": "IS", "Value": [2]}
    assert jane["00201208"] == {"vr": "IS", "Value": [2]}
    assert jane["00080056"] == {"vr": "CS", "Value": ["ONLINE"]}
    assert jane["00081190"] == {"vr": "UR", "Value": [f"http://testserver{ROOT}/studies/{archive.jane_study}"]}
    assert jane["00080050"] == {"vr": "SH"}  # empty: no Value
    assert value(jane, "00081030") == "chest ct"
    assert list(jane) == sorted(jane)


def test_nothing_matching_is_an_empty_array(api: Any, archive: Archive) -> None:
    # when
    response = search(api, "studies", "PatientID=nobody")
    # then
    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("PatientName=Doe^John", ["doe"]),
        ("PatientName=doe^john", ["doe"]),  # PN matching ignores case
        ("PatientName=*doe*", ["jane", "doe"]),
        ("PatientName=DOE*", ["jane", "doe"]),
        ("PatientName=Doe^J%3Fne", ["jane"]),  # `?` sent escaped, as clients do
        ("PatientName=Doe", []),
        ("PatientName=*", ["jane", "doe", "smith", "mr", "ct", "emri"]),
        ("PatientName=", ["jane", "doe", "smith", "mr", "ct", "emri"]),
        ("PatientName=joh&fuzzymatching=true", ["doe"]),
        ("PatientName=DO&fuzzymatching=true", ["jane", "doe"]),
        ("PatientName=anna&fuzzymatching=true", ["smith"]),
        ("PatientName=joh&fuzzymatching=false", []),
        ("StudyDescription=chest*", ["jane"]),  # LO keeps case
        ("StudyDescription=Chest*", ["doe"]),
        ("StudyDescription=Chest CT", ["doe"]),
        ("PatientID=PID-DOE", ["doe"]),
        ("00100020=PID-DOE", ["doe"]),
        ("0010,0020=PID-DOE", ["doe"]),
        ("(0010,0020)=PID-DOE", ["doe"]),
        ("0010002a=x", ["jane", "doe", "smith", "mr", "ct", "emri"]),  # a private-range tag: ignored
        ("PatientID=pid-doe", []),
        ("PatientID=PID_DOE", []),  # `_` is not a wildcard
        ("PatientID=PID%", []),  # nor is `%`
        ("AccessionNumber=ACC-1", ["doe"]),
        ("StudyDate=20240301", ["jane"]),
        ("StudyDate=20240101-20240131", ["doe"]),
        ("StudyDate=20231231-20240131", ["doe", "smith"]),
        ("StudyDate=-20040826", ["mr", "ct", "emri"]),
        ("StudyDate=20240115-", ["jane", "doe"]),
        ("StudyDate=20000101-20301231", ["jane", "doe", "smith", "mr", "ct", "emri"]),
        ("StudyTime=0930-1400", ["jane", "doe", "emri"]),
        ("StudyTime=-1400", ["jane", "doe", "ct", "emri"]),
        ("StudyTime=2359-", ["smith"]),
        ("ModalitiesInStudy=CT", ["jane", "doe", "ct"]),
        ("ModalitiesInStudy=MR", ["jane", "smith", "mr", "emri"]),
        ("ModalitiesInStudy=CT,MR", ["jane", "doe", "smith", "mr", "ct", "emri"]),
        ("ModalitiesInStudy=C%3F", ["jane", "doe", "ct"]),
        ("Modality=CT", ["jane", "doe", "ct"]),
        ("00080061=MR&PatientName=Doe*", ["jane"]),
        ("PatientSex=F", ["smith", "mr"]),
    ],
)
def test_study_matching(api: Any, archive: Archive, query: str, expected: list[str]) -> None:
    # given
    names = {
        "jane": archive.jane_study,
        "doe": archive.doe_study,
        "smith": archive.smith_study,
        "mr": MR_STUDY,
        "ct": CT_STUDY,
        "emri": EMRI_STUDY,
    }
    # when
    uids = found(api, "studies", query)
    # then
    assert uids == [names[name] for name in expected]


def test_uid_lists_match_any_of_them(api: Any, archive: Archive) -> None:
    # when
    commas = found(api, "studies", f"StudyInstanceUID={CT_STUDY},{archive.doe_study}")
    backslashes = found(api, "studies", f"0020000D={CT_STUDY}%5C{MR_STUDY}")
    # then
    assert commas == [archive.doe_study, CT_STUDY]
    assert backslashes == [MR_STUDY, CT_STUDY]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("StudyDate=2024-01-01", "StudyDate"),
        ("StudyDate=20240231", "StudyDate"),
        ("StudyDate=20240201-20240101", "StudyDate"),
        ("StudyDate=-", "StudyDate"),
        ("StudyDate=2024*", "StudyDate"),
        ("StudyTime=2500", "StudyTime"),
        ("StudyInstanceUID=1.2.*", "StudyInstanceUID"),
        ("StudyInstanceUID=1.02.3", "StudyInstanceUID"),
        ("StudyInstanceUID=abc", "StudyInstanceUID"),
        ("NoSuchKeyword=1", "NoSuchKeyword"),
        ("0010002=1", "0010002"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("offset=-5", "offset"),
        ("offset=1.5", "offset"),
        ("limit=1&limit=2", "limit"),
        ("fuzzymatching=yes", "fuzzymatching"),
        ("includefield=NoSuchKeyword", "includefield"),
        ("PatientID=a%00b", "PatientID"),
        ("PatientID=a&PatientID=b", "PatientID"),
    ],
)
def test_a_bad_query_is_a_400_naming_the_key(api: Any, archive: Archive, query: str, field: str) -> None:
    # when
    response = search(api, "studies", query)
    # then
    error = assert_error(response, 400, "invalid")
    assert list(error["fields"]) == [field]
    assert field in error["message"]


def test_a_dicom_attribute_the_index_does_not_match_on_is_ignored_with_a_warning(api: Any, archive: Archive) -> None:
    # when
    response = search(api, "studies", "PatientAge=058Y&SOPInstanceUID=1.2.3&PatientID=PID-DOE")
    # then: the indexed key still matches; the others are named in the Warning header
    assert response.status_code == 200
    assert [value(study, STUDY_UID) for study in response.json()] == [archive.doe_study]
    assert response["Warning"].startswith('299 tessera "')
    assert "PatientAge is not a supported matching key" in response["Warning"]
    assert "SOPInstanceUID is not a supported matching key" in response["Warning"]


def test_limit_and_offset_page_the_ordered_results(api: Any, archive: Archive) -> None:
    # given
    everything = found(api, "studies")
    # when
    pages = [found(api, "studies", f"limit=2&offset={offset}") for offset in (0, 2, 4, 6)]
    # then
    assert pages == [everything[0:2], everything[2:4], everything[4:6], []]
    assert found(api, "studies", "limit=100000") == everything


def test_more_results_than_the_server_maximum_are_cut_with_a_warning(
    api: Any, archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a server maximum of 4
    monkeypatch.setattr(qido_query, "MAX_RESULTS", 4)
    # when
    unbounded = search(api, "studies")
    asked_for_ten = search(api, "studies", "limit=10")
    asked_for_four = search(api, "studies", "limit=4")
    # then
    for response in (unbounded, asked_for_ten):
        assert len(response.json()) == 4
        assert "additional results" in response["Warning"]
    assert len(asked_for_four.json()) == 4
    assert not asked_for_four.has_header("Warning")


# --- includefield ------------------------------------------------------------------------------


def test_includefield_by_keyword_tag_list_and_repetition(api: Any, archive: Archive) -> None:
    # when: PatientAge and PatientWeight are stored study-level attributes, not index columns
    by_keyword = search(api, "studies", f"StudyInstanceUID={CT_STUDY}&includefield=PatientAge").json()[0]
    by_tags = search(api, "studies", f"StudyInstanceUID={CT_STUDY}&includefield=00101010,00101030").json()[0]
    repeated = search(
        api, "studies", f"StudyInstanceUID={CT_STUDY}&includefield=00101010&includefield=PatientWeight"
    ).json()[0]
    # then
    assert by_keyword["00101010"] == {"vr": "AS", "Value": ["000Y"]}
    assert {"00101010", "00101030"} <= set(by_tags)
    assert {"00101010", "00101030"} <= set(repeated)
    assert "00101010" not in search(api, "studies", f"StudyInstanceUID={CT_STUDY}").json()[0]


def test_includefield_all_returns_the_study_level_attributes_only(api: Any, archive: Archive) -> None:
    # when
    study = search(api, "studies", f"StudyInstanceUID={CT_STUDY}&includefield=all").json()[0]
    # then: patient and study attributes of the stored instance
    assert {"00101010", "00101030", "001021B0", "00101002"} <= set(study)
    # never a series- or instance-level value, pixel data or a bulk data reference
    for tag in ("00080060", "00280010", "00200013", "00180050", "7FE00010", "00080018", "00200032"):
        assert tag not in study
    assert "BulkDataURI" not in str(study)
    assert study[PATIENT_NAME] == {"vr": "PN", "Value": [{"Alphabetic": "CompressedSamples^CT1"}]}


def test_study_and_series_rows_store_only_their_levels_attributes_and_answer_as_whole_rows_did(
    api: Any, archive: Archive
) -> None:
    # given: what includefield=all answers from the rows as stored now (their level's attributes only)
    queries = [("studies", "includefield=all"), ("series", "includefield=all"), ("studies", "")]
    answers = [search(api, path, query).json() for path, query in queries]
    study = Study.objects.get(study_instance_uid=CT_STUDY)
    series = Series.objects.get(series_instance_uid=CT_SERIES)
    instance = Instance.objects.get(series=series)
    assert study.attributes == qido_query.level_attributes(instance.attributes, "study")
    assert series.attributes == qido_query.level_attributes(instance.attributes, "series")
    assert "7FE00010" not in study.attributes and "00280010" not in study.attributes
    assert len(study.attributes) < len(instance.attributes) / 3
    # when: the rows hold the whole first instance, as rows stored before did
    studies_seen, series_seen = set(), set()
    for each in Instance.objects.select_related("series").order_by("pk"):  # the first instance of each
        if each.series.study_id not in studies_seen:
            Study.objects.filter(pk=each.series.study_id).update(attributes=each.attributes)
            studies_seen.add(each.series.study_id)
        if each.series_id not in series_seen:
            Series.objects.filter(pk=each.series_id).update(attributes=each.attributes)
            series_seen.add(each.series_id)
    # then: the same answers
    assert [search(api, path, query).json() for path, query in queries] == answers


def test_includefield_of_a_lower_level_attribute_is_not_taken_from_the_first_instance(
    api: Any, archive: Archive
) -> None:
    # when: Modality (a series attribute) and Rows (an instance attribute) at the study level
    study = search(api, "studies", f"StudyInstanceUID={CT_STUDY}&includefield=00080060,Rows").json()[0]
    # then: ModalitiesInStudy is the study's answer
    assert "00080060" not in study and "00280010" not in study
    assert study["00080061"] == {"vr": "CS", "Value": ["CT"]}


# --- the series level --------------------------------------------------------------------------


def test_series_of_a_study(api: Any, archive: Archive) -> None:
    # when: OHIF's series query
    response = search(api, f"studies/{archive.jane_study}/series", "includefield=0008103E,00080021")
    # then: in series number order, with the series attributes
    assert response.status_code == 200
    series = response.json()
    assert [value(item, SERIES_UID) for item in series] == [archive.jane_mr_series, archive.jane_ct_series]
    mr = series[0]
    assert mr["00080060"] == {"vr": "CS", "Value": ["MR"]}
    assert mr["00200011"] == {"vr": "IS", "Value": [1]}
    assert mr["00201209"] == {"vr": "IS", "Value": [1]}
    assert value(mr, STUDY_UID) == archive.jane_study
    assert {"0008103E", "00080021", "00400244", "00400245"} <= set(mr)
    assert (
        value(mr, "00081190") == f"http://testserver{ROOT}/studies/{archive.jane_study}/series/{archive.jane_mr_series}"
    )
    assert PATIENT_NAME not in mr  # study attributes only when searching across studies


def test_series_across_studies_carry_the_study_attributes(api: Any, archive: Archive) -> None:
    # when
    series = search(api, "series", "Modality=CT&PatientName=Doe*").json()
    # then
    assert [value(item, SERIES_UID) for item in series] == [archive.jane_ct_series, archive.doe_series]
    assert series[0][PATIENT_NAME] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}
    assert {"00201206", "00201208", "00080061"} <= set(series[0])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SeriesNumber=2", ["jane_ct"]),
        (f"SeriesInstanceUID={EMRI_SERIES}", ["emri"]),
        ("Modality=MR&StudyDate=2024*", None),
        ("Modality=MR&StudyDate=20240101-", ["jane_mr"]),
        ("BodyPartExamined=*", ["jane_mr", "jane_ct", "doe", "smith", "mr", "ct", "emri"]),
    ],
)
def test_series_matching(api: Any, archive: Archive, query: str, expected: list[str] | None) -> None:
    # given
    names = {
        "jane_mr": archive.jane_mr_series,
        "jane_ct": archive.jane_ct_series,
        "doe": archive.doe_series,
        "emri": EMRI_SERIES,
        "ct": CT_SERIES,
    }
    # when
    response = search(api, "series", query)
    # then
    if expected is None:
        assert_error(response, 400, "invalid")
        return
    uids = [value(item, SERIES_UID) for item in response.json()]
    assert [uid for uid in uids if uid in names.values()] == [names[name] for name in expected if name in names]
    assert len(uids) == len(expected)


def test_a_bad_series_number_is_a_400(api: Any, archive: Archive) -> None:
    # when
    response = search(api, f"studies/{CT_STUDY}/series", "SeriesNumber=two")
    # then
    assert_error(response, 400, "invalid")


# --- the instance level ------------------------------------------------------------------------


def test_instances_of_a_series(api: Any, archive: Archive) -> None:
    # when: OHIF's instance query
    response = search(api, f"studies/{EMRI_STUDY}/series/{EMRI_SERIES}/instances")
    # then
    assert response.status_code == 200
    (instance,) = response.json()
    assert instance["00280008"] == {"vr": "IS", "Value": [10]}
    assert instance["00280010"] == {"vr": "US", "Value": [64]}
    assert instance["00280011"] == {"vr": "US", "Value": [64]}
    assert instance["00280100"] == {"vr": "US", "Value": [16]}
    assert instance["00200013"]["vr"] == "IS"
    assert value(instance, "00080016") == "1.2.840.10008.5.1.4.1.1.4.1"
    assert value(instance, SERIES_UID) == EMRI_SERIES and value(instance, STUDY_UID) == EMRI_STUDY
    sop = value(instance, SOP_UID)
    assert value(instance, "00081190") == (
        f"http://testserver{ROOT}/studies/{EMRI_STUDY}/series/{EMRI_SERIES}/instances/{sop}"
    )
    assert "7FE00010" not in instance


def test_instances_of_a_study_and_across_studies(api: Any, archive: Archive) -> None:
    # when
    of_study = search(api, f"studies/{archive.jane_study}/instances").json()
    by_sop = search(api, "instances", "SOPClassUID=1.2.840.10008.5.1.4.1.1.2&PatientID=PID-DOE").json()
    everything = search(api, "instances").json()
    # then
    assert {value(item, SERIES_UID) for item in of_study} == {archive.jane_ct_series, archive.jane_mr_series}
    assert "00080060" in of_study[0] and PATIENT_NAME not in of_study[0]
    assert [value(item, STUDY_UID) for item in by_sop] == [archive.doe_study]
    assert by_sop[0][PATIENT_NAME] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}]}
    assert len(everything) == 7


def test_includefield_all_at_the_instance_level_has_no_bulk_data(api: Any, archive: Archive) -> None:
    # when
    (instance,) = search(api, f"studies/{CT_STUDY}/series/{CT_SERIES}/instances", "includefield=all").json()
    # then: the instance's attributes (an image position, a slice thickness), no pixel data
    assert {"00200032", "00180050", "00280030"} <= set(instance)
    assert "7FE00010" not in instance and "BulkDataURI" not in str(instance)


# --- OHIF v3's queries, as it sends them -------------------------------------------------------


def test_ohif_study_list_queries(api: Any, archive: Archive) -> None:
    # given
    base = "limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060"
    # when
    everything = search(api, "studies", base, HTTP_ACCEPT="*/*")
    by_name = found(api, "studies", f"{base}&PatientName=*doe*")
    by_id = found(api, "studies", f"{base}&00100020=PID-DOE")
    by_date = found(api, "studies", f"{base}&StudyDate=20000101-20301231")
    by_modality = found(api, "studies", f"{base}&ModalitiesInStudy=MR")
    # then
    assert everything.status_code == 200 and len(everything.json()) == 6
    assert by_name == [archive.jane_study, archive.doe_study]
    assert by_id == [archive.doe_study]
    assert len(by_date) == 6
    assert len(by_modality) == 4


def test_ohif_series_and_instances_queries(api: Any, archive: Archive) -> None:
    # when
    series = search(
        api, f"studies/{CT_STUDY}/series", "includefield=0008103E%2C00080021", HTTP_ACCEPT="application/dicom+json"
    )
    instances = search(api, f"studies/{CT_STUDY}/series/{CT_SERIES}/instances", HTTP_ACCEPT="application/dicom+json")
    # then
    assert [value(item, SERIES_UID) for item in series.json()] == [CT_SERIES]
    assert value(series.json()[0], "00080021") == "19970430"  # the file's SeriesDate
    assert len(instances.json()) == 1


# --- Accept ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/dicom+json", "application/dicom+json"),
        ("*/*", "application/dicom+json"),
        ("application/json", "application/json"),
        ("application/dicom+xml;q=0.9, application/dicom+json", "application/dicom+json"),
        ("text/html, application/*;q=0.8", "application/dicom+json"),
    ],
)
def test_accept_variants(api: Any, archive: Archive, accept: str, content_type: str) -> None:
    # when
    response = search(api, "studies", HTTP_ACCEPT=accept)
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert len(response.json()) == 6


@pytest.mark.parametrize(
    "accept", ["application/dicom+xml", 'multipart/related; type="application/dicom"', "image/jpeg", "text/html"]
)
@pytest.mark.parametrize("path", ["studies", "series", "instances", f"studies/{CT_STUDY}/series"])
def test_an_accept_without_json_is_a_406(api: Any, archive: Archive, accept: str, path: str) -> None:
    # when
    response = search(api, path, HTTP_ACCEPT=accept)
    # then
    assert_error(response, 406, "not_acceptable")


# --- tenancy and scopes ------------------------------------------------------------------------

SEARCH_PATHS = [
    "studies",
    "series",
    "instances",
    f"studies/{CT_STUDY}/series",
    f"studies/{CT_STUDY}/instances",
    f"studies/{CT_STUDY}/series/{CT_SERIES}/instances",
]


@pytest.mark.parametrize("path", SEARCH_PATHS)
def test_another_organization_sees_nothing(other_api: Any, archive: Archive, path: str) -> None:
    # when: globex searches everything, and acme's study and series by UID
    response = search(other_api, path)
    by_uid = search(other_api, path, f"StudyInstanceUID={CT_STUDY}")
    # then
    assert response.status_code == 200 and response.json() == []
    assert by_uid.status_code == 200 and by_uid.json() == []


@pytest.mark.parametrize("path", SEARCH_PATHS)
def test_a_finance_only_key_is_refused(api_client_for: Callable[..., Any], org: Any, path: str) -> None:
    # given
    finance = api_client_for(org, scopes=("finance",))
    # when
    response = search(finance, path)
    # then
    assert_error(response, 403, "permission_denied")


def test_an_unknown_study_in_the_path_matches_nothing(api: Any, archive: Archive) -> None:
    # when
    series = search(api, "studies/1.2.3.4/series")
    instances = search(api, f"studies/1.2.3.4/series/{CT_SERIES}/instances")
    # then
    assert series.status_code == 200 and series.json() == []
    assert instances.status_code == 200 and instances.json() == []


@pytest.mark.parametrize("uid", ["x" * 65, "abc", "1..2"])
def test_a_malformed_uid_in_the_path_is_a_400(api: Any, uid: str) -> None:
    # when
    response = search(api, f"studies/{uid}/series")
    # then
    assert_error(response, 400, "invalid")


def test_a_clinician_session_searches(client_for: Callable[..., Any], org: Any, archive: Archive) -> None:
    # given
    clinician = client_for(org, "clinician")
    # when
    response = clinician.get(f"{ROOT}/studies", {"PatientName": "*doe*"})
    # then
    assert response.status_code == 200 and len(response.json()) == 2


# --- PHI access --------------------------------------------------------------------------------


def test_every_search_writes_one_phi_access_row_with_the_returned_studies(api: Any, archive: Archive) -> None:
    # given
    before = PhiAccess.objects.count()
    # when
    search(api, "studies", "PatientName=*doe*")
    search(api, "series", "Modality=CT")
    search(api, f"studies/{EMRI_STUDY}/series/{EMRI_SERIES}/instances")
    search(api, "studies", "PatientID=nobody")
    # then
    rows = list(PhiAccess.objects.order_by("id")[before:])
    assert [row.kind for row in rows] == ["search"] * 4
    studies = [sorted(study.study_instance_uid for study in row.studies.all()) for row in rows]
    assert studies[0] == sorted([archive.jane_study, archive.doe_study])
    assert studies[1] == sorted([archive.jane_study, archive.doe_study, CT_STUDY])
    assert studies[2] == [EMRI_STUDY]
    assert studies[3] == []
    assert rows[0].path == f"{ROOT}/studies?PatientName=*doe*"
    assert rows[2].series_instance_uid == EMRI_SERIES
    assert {study.patient_id for study in rows[0].studies.all()} == {"PID-JANE", "PID-DOE"}


def test_a_refused_search_writes_no_access_row(api: Any, archive: Archive) -> None:
    # given
    before = PhiAccess.objects.count()
    # when
    search(api, "studies", "StudyDate=yesterday")
    search(api, "studies", HTTP_ACCEPT="application/dicom+xml")
    # then
    assert PhiAccess.objects.count() == before


# --- efficiency --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("studies", "includefield=all"),
        ("series", "includefield=all"),
        ("instances", "includefield=all"),
        ("studies", "ModalitiesInStudy=MR"),
    ],
)
def test_a_search_costs_the_same_queries_whatever_it_returns(
    api: Any,
    archive: Archive,
    path: str,
    query: str,
    django_assert_num_queries: Any,
    django_assert_max_num_queries: Any,
) -> None:
    # given: the cost of a search returning one result
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        assert len(search(api, path, f"{query}&limit=1").json()) == 1
    # when / then: returning every result costs no more (authentication, one search query, the access log)
    with django_assert_max_num_queries(len(one.captured_queries)):
        assert len(search(api, path, query).json()) > 3
    assert len(one.captured_queries) <= 6
