"""The clinician's worklist (apps/medical/worklist.py and its portal page): derived states,
filters, pagination, newest first, tenancy and roles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.test import Client

from apps.medical import worklist
from apps.medical.choices import AccessKind, ReportStatus, WorklistState
from apps.medical.models import PhiAccess, Report, Study
from tests.medical.conftest import CT, MR, MULTIFRAME, dicom_path
from tests.medical.review_rows import analysis_make, store_files

pytestmark = pytest.mark.django_db

WORKLIST = "/portal/medical/worklist/"


def _study_file(tmp: Path, name: str, *, study_uid: str, date: str, modality: str = "CT", number: int = 0) -> Path:
    """A copy of a pydicom test file as a study of its own on `date`."""
    ds = pydicom.dcmread(dicom_path(name))
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = f"{study_uid}.1"
    ds.SOPInstanceUID = f"{study_uid}.1.1"
    ds.StudyDate = date
    ds.StudyTime = "120000"
    ds.Modality = modality
    ds.PatientID = f"P{number}"
    path = tmp / f"{study_uid}.dcm"
    ds.save_as(path)
    return path


@pytest.fixture
def studies(org: Any, tmp_path: Path) -> dict[str, Study]:
    """Three studies: new (MR, 2024-01-01), AI suggested (CT, 2024-02-01), reported (CT, 2024-03-01)."""
    files = [
        _study_file(tmp_path, MR, study_uid="1.2.826.0.1.1", date="20240101", modality="MR", number=1),
        _study_file(tmp_path, CT, study_uid="1.2.826.0.1.2", date="20240201", number=2),
        _study_file(tmp_path, CT, study_uid="1.2.826.0.1.3", date="20240301", number=3),
    ]
    rows = {
        instance.series.study.study_instance_uid: instance.series.study
        for instance in store_files(org, files, tmp=tmp_path)
    }
    new, suggested, reported = (rows[f"1.2.826.0.1.{n}"] for n in (1, 2, 3))
    analysis_make(org, suggested, label="ChestCT")
    analysis = analysis_make(org, reported, label="AbdomenCT")
    Report.objects.create(
        organization=org, study=reported, analysis=analysis, status=ReportStatus.SIGNED, impression="x"
    )
    return {"new": new, "suggested": suggested, "reported": reported}


def _uids(queryset: Any) -> list[str]:
    return [study.study_instance_uid for study in queryset]


def test_states_are_derived_and_newest_first(org: Any, studies: dict[str, Study]):
    rows: list[Any] = list(worklist.worklist_studies(org=org))  # annotated rows
    assert [(row.study_instance_uid, row.worklist_state) for row in rows] == [
        ("1.2.826.0.1.3", WorklistState.REPORTED),
        ("1.2.826.0.1.2", WorklistState.AI_SUGGESTED),
        ("1.2.826.0.1.1", WorklistState.NEW),
    ]
    assert rows[1].suggested_label == "ChestCT" and rows[0].suggested_label == "AbdomenCT"
    assert rows[2].suggested_label is None


def test_a_running_analysis_or_a_draft_does_not_change_the_state(org: Any, studies: dict[str, Study]):
    analysis_make(org, studies["new"], status="running")
    Report.objects.create(organization=org, study=studies["suggested"], impression="draft")
    rows: list[Any] = list(worklist.worklist_studies(org=org))  # annotated rows
    states = {row.study_instance_uid: row.worklist_state for row in rows}
    assert states["1.2.826.0.1.1"] == WorklistState.NEW
    assert states["1.2.826.0.1.2"] == WorklistState.AI_SUGGESTED


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (worklist.WorklistFilters(state=WorklistState.NEW), ["1.2.826.0.1.1"]),
        (worklist.WorklistFilters(state=WorklistState.AI_SUGGESTED), ["1.2.826.0.1.2"]),
        (worklist.WorklistFilters(state=WorklistState.REPORTED), ["1.2.826.0.1.3"]),
        (worklist.WorklistFilters(modality="CT"), ["1.2.826.0.1.3", "1.2.826.0.1.2"]),
        (worklist.WorklistFilters(modality="mr"), ["1.2.826.0.1.1"]),
        (worklist.WorklistFilters(date_from="20240115", date_to="20240215"), ["1.2.826.0.1.2"]),
        (worklist.WorklistFilters(date_from="20240201"), ["1.2.826.0.1.3", "1.2.826.0.1.2"]),
        (worklist.WorklistFilters(suggestion="chestct"), ["1.2.826.0.1.2"]),
        (worklist.WorklistFilters(suggestion="Hand"), []),
    ],
)
def test_filters(org: Any, studies: dict[str, Study], filters: worklist.WorklistFilters, expected: list[str]):
    assert _uids(worklist.worklist_studies(org=org, filters=filters)) == expected


def test_the_latest_analysis_is_the_suggestion(org: Any, studies: dict[str, Study]):
    analysis_make(org, studies["suggested"], label="HeadCT")
    assert _uids(worklist.worklist_studies(org=org, filters=worklist.WorklistFilters(suggestion="HeadCT"))) == [
        "1.2.826.0.1.2"
    ]
    assert worklist.worklist_suggestions(org=org) == ["AbdomenCT", "ChestCT", "HeadCT"]


def _training_run(org: Any, labels: list[dict[str, str]], *, status: str = "succeeded", kind: str = "") -> Any:
    from core.jobs.models import Job
    from ml.models import RegisteredModel, TrainingRun

    kind = kind or worklist.CLASSIFIER_KIND
    model, _ = RegisteredModel.objects.get_or_create(organization=org, name=f"m-{kind}", kind=kind)
    job = Job.objects.create(organization=org, kind="ml.train", domain="medical", status=status)
    return TrainingRun.objects.create(
        organization=org, registered_model=model, job=job, kind=kind, data={"labels": labels}
    )


def test_labelled_training_studies_are_not_waiting_for_a_read(org: Any, other_org: Any, studies: dict[str, Study]):
    # given the new study labelled by study UID and the AI-suggested one by an instance UID
    suggested_instance = studies["suggested"].series.get().instances.get()
    _training_run(
        org,
        [
            {"uid": studies["new"].study_instance_uid, "label": "MR"},
            {"uid": suggested_instance.sop_instance_uid, "label": "CT"},
            {"uid": studies["reported"].series.get().series_instance_uid, "label": "CT"},
        ],
    )
    # when the worklist derives the states
    rows: list[Any] = list(worklist.worklist_studies(org=org))
    states = {row.study_instance_uid: row.worklist_state for row in rows}
    # then both are "labelled" (a signed report still says "reported"), and none needs review
    assert states == {
        "1.2.826.0.1.1": WorklistState.LABELLED,
        "1.2.826.0.1.2": WorklistState.LABELLED,
        "1.2.826.0.1.3": WorklistState.REPORTED,
    }
    assert (
        _uids(worklist.worklist_studies(org=org, filters=worklist.WorklistFilters(state=worklist.NEEDS_REVIEW))) == []
    )
    assert _uids(worklist.worklist_studies(org=org, filters=worklist.WorklistFilters(state="labelled"))) == [
        "1.2.826.0.1.2",
        "1.2.826.0.1.1",
    ]


def test_only_succeeded_classifier_runs_of_the_organization_label_studies(
    org: Any, other_org: Any, studies: dict[str, Study]
):
    uid = studies["new"].study_instance_uid
    _training_run(org, [{"uid": uid, "label": "MR"}], status="failed")
    _training_run(org, [{"uid": uid, "label": "MR"}], kind="finance.credit_xgboost")
    _training_run(other_org, [{"uid": uid, "label": "MR"}])
    assert worklist.labelled_study_ids(org=org) == set()
    needs_review = worklist.worklist_studies(org=org, filters=worklist.WorklistFilters(state=worklist.NEEDS_REVIEW))
    assert _uids(needs_review) == ["1.2.826.0.1.2", "1.2.826.0.1.1"]


def test_the_page_hides_labelled_studies_unless_asked(client_for: Any, org: Any, studies: dict[str, Study]):
    _training_run(org, [{"uid": studies["new"].study_instance_uid, "label": "MR"}])
    client = client_for(org, "clinician")
    default = client.get(WORKLIST).content.decode()
    assert "1.2.826.0.1.2" in default and "1.2.826.0.1.1" not in default
    labelled = client.get(WORKLIST, {"state": "labelled"}).content.decode()
    assert 'data-state="labelled"' in labelled and "1.2.826.0.1.1" in labelled and "1.2.826.0.1.2" not in labelled


def test_another_organization_sees_none(other_org: Any, studies: dict[str, Study]):
    assert _uids(worklist.worklist_studies(org=other_org)) == []
    assert worklist.worklist_suggestions(org=other_org) == []


# --- The page ---------------------------------------------------------------------------------------


def test_the_page_lists_filters_and_logs(client_for: Any, org: Any, studies: dict[str, Study]):
    client = client_for(org, "clinician")
    page = client.get(WORKLIST, {"state": "any"})
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index("1.2.826.0.1.3") < html.index("1.2.826.0.1.2") < html.index("1.2.826.0.1.1")
    assert 'data-state="reported"' in html and 'data-state="ai_suggested"' in html and 'data-state="new"' in html
    # by default the page lists what needs a read: the reported study is not there
    default = client.get(WORKLIST).content.decode()
    assert "1.2.826.0.1.2" in default and "1.2.826.0.1.1" in default and "1.2.826.0.1.3" not in default
    filtered = client.get(WORKLIST, {"state": "ai_suggested", "modality": "ct"}).content.decode()
    assert "1.2.826.0.1.2" in filtered and "1.2.826.0.1.3" not in filtered and "1.2.826.0.1.1" not in filtered
    by_date = client.get(WORKLIST, {"date_from": "2024-02-15", "state": "any"}).content.decode()
    assert "1.2.826.0.1.3" in by_date and "1.2.826.0.1.2" not in by_date
    access = PhiAccess.objects.filter(kind=AccessKind.PORTAL, path=f"{WORKLIST}?state=any").get()
    assert {row.study_instance_uid for row in access.studies.all()} == {s.study_instance_uid for s in studies.values()}


def test_bad_filters_are_a_400_page(client_for: Any, org: Any, studies: dict[str, Study]):
    client = client_for(org, "clinician")
    assert client.get(WORKLIST, {"state": "signed"}).status_code == 400
    assert client.get(WORKLIST, {"date_from": "2024-03-01", "date_to": "2024-01-01"}).status_code == 400
    assert client.get(WORKLIST, {"date_from": "yesterday"}).status_code == 400
    assert client.get(WORKLIST, {"page": "999"}).status_code == 200  # the last page


def test_pagination(client_for: Any, org: Any, tmp_path: Path, monkeypatch: Any):
    from apps.medical import diagnosis_views

    monkeypatch.setattr(diagnosis_views, "WORKLIST_PER_PAGE", 2)
    files = [
        _study_file(tmp_path, CT, study_uid=f"1.2.826.0.2.{n}", date=f"202401{n:02d}", number=n) for n in range(1, 6)
    ]
    store_files(org, files, tmp=tmp_path)
    client = client_for(org, "clinician")
    first = client.get(WORKLIST).content.decode()
    third = client.get(WORKLIST, {"page": 3}).content.decode()
    assert "1.2.826.0.2.5" in first and "1.2.826.0.2.4" in first and "1.2.826.0.2.3" not in first
    assert "Page 1 of 3" in first
    assert "1.2.826.0.2.1" in third and "1.2.826.0.2.2" not in third


def test_roles(client_for: Any, org: Any, studies: dict[str, Study], client: Client):
    assert client_for(org, "credit_analyst").get(WORKLIST).status_code == 403
    assert client_for(org, "org_admin").get(WORKLIST).status_code == 200
    assert client.get(WORKLIST).status_code == 302  # to the login page


def test_tenancy_on_the_page(client_for: Any, other_org: Any, studies: dict[str, Study]):
    html = client_for(other_org, "clinician").get(WORKLIST).content.decode()
    assert "1.2.826.0.1" not in html


def test_the_multiframe_overlay_lands_on_its_frame(client_for: Any, org: Any, tmp_path: Path):
    (instance,) = store_files(org, [dicom_path(MULTIFRAME)], tmp=tmp_path)
    analysis = analysis_make(org, instance.series.study, label="BreastMRI")
    finding = analysis.findings.get(level="instance")
    finding.frame_number = 4
    finding.save(update_fields=["frame_number"])
    page = client_for(org, "clinician").get(
        f"/portal/medical/studies/{instance.series.study.study_instance_uid}/series/{instance.series.series_instance_uid}/"
    )
    assert page.status_code == 200
    overlays = page.context["ai_overlays"]
    assert [(item["index"], item["frame"]) for item in overlays] == [(3, 4)]
