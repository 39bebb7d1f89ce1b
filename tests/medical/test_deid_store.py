"""Tests of `apps.medical.deid_store`: UID remapping and date shifts kept per organization in the
database, consistent across calls and callers, race-safe, never storing a Patient ID."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.dataset import Dataset

from apps.medical import deid_store
from apps.medical.deid_store import (
    DATE_SHIFT_MAX_DAYS,
    DATE_SHIFT_MIN_DAYS,
    date_shift_for_organization,
    date_shift_get_or_create,
    random_shift_days,
    uid_for_organization,
    uid_mapping_get_or_create,
)
from apps.medical.deidentify import DeidOptions, deidentify, patient_key
from apps.medical.models import PatientDateShift, UidMapping

pytestmark = pytest.mark.django_db


def test_same_source_uid_maps_to_the_same_new_uid_within_an_organization(org: Any, other_org: Any) -> None:
    # given / when
    first = uid_mapping_get_or_create(organization=org, source_uid="1.2.3.4")
    again = uid_for_organization(org)("1.2.3.4")
    elsewhere = uid_mapping_get_or_create(organization=other_org, source_uid="1.2.3.4")
    # then
    assert first == again != "1.2.3.4"
    assert elsewhere != first  # organizations do not share mappings
    assert UidMapping.objects.filter(organization=org).count() == 1


def test_uid_race_returns_the_row_the_other_worker_wrote(org: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # given another worker's mapping written after our lookup found nothing
    theirs = UidMapping.objects.create(organization=org, source_uid="1.2.3.5", new_uid="2.25.1")
    monkeypatch.setattr(deid_store, "_existing_uid", lambda organization, source_uid: None)
    # when we map the same UID
    ours = uid_mapping_get_or_create(organization=org, source_uid="1.2.3.5")
    # then the unique constraint makes us take theirs
    assert ours == theirs.new_uid
    assert UidMapping.objects.filter(organization=org, source_uid="1.2.3.5").count() == 1


def test_date_shift_is_per_patient_and_stores_no_patient_id(org: Any, other_org: Any) -> None:
    shift = date_shift_get_or_create(organization=org, patient_id="MRN-0042")
    assert date_shift_for_organization(org)("MRN-0042") == shift
    assert -DATE_SHIFT_MAX_DAYS <= shift <= -DATE_SHIFT_MIN_DAYS
    row = PatientDateShift.objects.get(organization=org)
    assert row.patient_key == patient_key("MRN-0042") and "MRN" not in row.patient_key
    date_shift_get_or_create(organization=other_org, patient_id="MRN-0042", choose=lambda: -99)
    assert PatientDateShift.objects.get(organization=other_org).shift_days == -99


def test_date_shift_race_returns_the_row_the_other_worker_wrote(org: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    PatientDateShift.objects.create(organization=org, patient_key=patient_key("MRN-7"), shift_days=-123)
    monkeypatch.setattr(deid_store, "_existing_shift", lambda organization, key: None)
    assert date_shift_get_or_create(organization=org, patient_id="MRN-7", choose=lambda: -5) == -123


def test_random_shift_is_never_zero_and_in_range() -> None:
    shifts = {random_shift_days() for _ in range(200)}
    assert all(-DATE_SHIFT_MAX_DAYS <= shift <= -DATE_SHIFT_MIN_DAYS for shift in shifts)
    assert len(shifts) > 1


def test_two_exports_of_one_study_stay_linked(org: Any) -> None:
    # given one instance, de-identified by two separate callers (two export jobs)
    source = Dataset()
    source.PatientID = "MRN-0042"
    source.StudyInstanceUID = "1.2.3.4.10"
    source.SOPInstanceUID = "1.2.3.4.11"
    source.StudyDate = "20200115"
    options = DeidOptions(retain_long_modified_dates=True)
    # when
    results = [
        deidentify(
            source,
            options=options,
            uid_for=uid_for_organization(org),
            date_shift_days=date_shift_for_organization(org),
        ).dataset
        for _ in range(2)
    ]
    # then both copies carry the same new UIDs and the same shifted date
    assert results[0].StudyInstanceUID == results[1].StudyInstanceUID != source.StudyInstanceUID
    assert results[0].SOPInstanceUID == results[1].SOPInstanceUID
    assert results[0].StudyDate == results[1].StudyDate != source.StudyDate
    assert UidMapping.objects.filter(organization=org).count() == 2
