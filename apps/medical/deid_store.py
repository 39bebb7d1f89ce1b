"""Database-backed `uid_for` and `date_shift_days` for `apps.medical.deidentify`.

Within an organization the same source UID always maps to the same new UID (`UidMapping`), and
every date of one patient moves by the same number of days (`PatientDateShift`, keyed by the
sha256 of the Patient ID, never the ID itself), across exports, receipts and worker processes.

Two workers may meet the same UID or patient at once: each looks the row up, creates it when
missing inside a savepoint, and on the unique constraint's IntegrityError reads the row the other
worker wrote, so both end with the same value.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction

from apps.medical.deidentify import new_uid, patient_key
from apps.medical.models import PatientDateShift, UidMapping

if TYPE_CHECKING:
    from core.tenancy.models import Organization

# A new patient's dates move back by 30 days to 2 years: far enough that no real date shows
# through, never zero, and intervals between one patient's dates are kept exactly.
DATE_SHIFT_MIN_DAYS = 30
DATE_SHIFT_MAX_DAYS = 730


def random_shift_days() -> int:
    """A new patient's shift: a negative whole number of days, from a CSPRNG."""
    return -(DATE_SHIFT_MIN_DAYS + secrets.randbelow(DATE_SHIFT_MAX_DAYS - DATE_SHIFT_MIN_DAYS + 1))


def _existing_uid(organization: Organization, source_uid: str) -> str | None:
    return (
        UidMapping.objects.filter(organization=organization, source_uid=source_uid)
        .values_list("new_uid", flat=True)
        .first()
    )


def _existing_shift(organization: Organization, key: str) -> int | None:
    return (
        PatientDateShift.objects.filter(organization=organization, patient_key=key)
        .values_list("shift_days", flat=True)
        .first()
    )


def uid_mapping_get_or_create(*, organization: Organization, source_uid: str) -> str:
    """The organization's new UID for `source_uid`, created on first use."""
    existing = _existing_uid(organization, source_uid)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():  # a savepoint: the IntegrityError leaves an outer transaction usable
            return UidMapping.objects.create(
                organization=organization, source_uid=source_uid, new_uid=new_uid()
            ).new_uid
    except IntegrityError:
        # Another worker mapped it between our read and our insert: its UID is the one.
        return UidMapping.objects.get(organization=organization, source_uid=source_uid).new_uid


def date_shift_get_or_create(
    *, organization: Organization, patient_id: str, choose: Callable[[], int] = random_shift_days
) -> int:
    """The organization's date shift for the patient with this (source) Patient ID, created on first use.

    Instances without a Patient ID share the shift of the empty ID.
    """
    key = patient_key(patient_id)
    existing = _existing_shift(organization, key)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return PatientDateShift.objects.create(
                organization=organization, patient_key=key, shift_days=choose()
            ).shift_days
    except IntegrityError:
        return PatientDateShift.objects.get(organization=organization, patient_key=key).shift_days


def uid_for_organization(organization: Organization) -> Callable[[str], str]:
    """A `uid_for` for `deidentify`, remembering within one caller what it already looked up."""
    seen: dict[str, str] = {}

    def uid_for(source_uid: str) -> str:
        if source_uid not in seen:
            seen[source_uid] = uid_mapping_get_or_create(organization=organization, source_uid=source_uid)
        return seen[source_uid]

    return uid_for


def date_shift_for_organization(organization: Organization) -> Callable[[str], int]:
    """A `date_shift_days` for `deidentify`, remembering within one caller what it already looked up."""
    seen: dict[str, int] = {}

    def date_shift_days(patient_id: str) -> int:
        if patient_id not in seen:
            seen[patient_id] = date_shift_get_or_create(organization=organization, patient_id=patient_id)
        return seen[patient_id]

    return date_shift_days
