"""The archive's study search for the portal's study list and the REST study list, on the index
columns, with the matching rules of QIDO-RS (`qido_query.attribute_condition`), so the portal,
`GET /api/v1/medical/studies/` and `GET .../dicomweb/studies` find the same studies for the same
criteria. Always inside one organization.

How each filter matches (PS3.4 C.2.2.2, as `qido_query` implements it):

- `patient_name`: a person name with `fuzzymatching=true` — case-insensitive, the value matches
  the start of any name component (`joh` finds `Doe^John`), `*` and `?` are wildcards.
- `text` (the portal's "patient name or ID" box): every word is such a fuzzy name match (so
  `john doe` finds `Doe^John`), or the whole text matches Patient ID.
- `patient_id`, `accession`: equality, or a wildcard match with `*`/`?` (case kept).
- `date_from`/`date_to`: the Study Date range `from-to`, `from-`, `-to`, inclusive; a study
  without a date never matches a range.
- `modality`: ModalitiesInStudy — a study matches when one of its series has the modality
  (equality, a wildcard, or a comma-separated list).

Bad values (a malformed date, a control character) raise `ValidationFailed`.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from apps.medical.models import Study
from apps.medical.qido_query import INDEXED, Level, attribute_condition, query_parse
from core.errors import ValidationFailed
from core.tenancy.models import Organization

_PATIENT_NAME_PATH = "patient__patient_name"
_PATIENT_ID_PATH = "patient__patient_id"


@dataclass(frozen=True)
class StudyFilters:
    """What a study search matches; empty values match everything."""

    patient_id: str = ""
    patient_name: str = ""
    accession: str = ""
    date_from: str = ""  # DA, YYYYMMDD
    date_to: str = ""
    modality: str = ""
    text: str = ""  # patient name (every word) or patient id


def qido_parameters(filters: StudyFilters) -> dict[str, list[str]]:
    """The QIDO-RS `/studies` query that means the same as `filters` (without `text`, which has no
    single QIDO equivalent: it is an OR of a name and an id match)."""
    params: dict[str, list[str]] = {}
    if filters.patient_id:
        params["PatientID"] = [filters.patient_id]
    if filters.patient_name:
        params["PatientName"] = [filters.patient_name]
        params["fuzzymatching"] = ["true"]
    if filters.accession:
        params["AccessionNumber"] = [filters.accession]
    if filters.date_from or filters.date_to:
        params["StudyDate"] = [f"{filters.date_from}-{filters.date_to}"]
    if filters.modality:
        params["ModalitiesInStudy"] = [filters.modality]
    return params


def _text_condition(text: str) -> Q | None:
    words = [word for word in text.replace("^", " ").split() if word]
    by_name = Q()
    for word in words:
        matched = attribute_condition(INDEXED["PatientName"], _PATIENT_NAME_PATH, "q", word, fuzzy=True)
        if matched is not None:
            by_name &= matched
    by_id = attribute_condition(INDEXED["PatientID"], _PATIENT_ID_PATH, "q", text, fuzzy=False)
    if by_id is None or not by_name:
        return None  # "*": every study
    return by_name | by_id


def study_condition(filters: StudyFilters) -> Q:
    """The condition on Study rows `filters` put; raises ValidationFailed on a bad value."""
    condition = query_parse(qido_parameters(filters), level=Level.STUDY).condition
    if text := filters.text.strip():
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
            message = "Control characters are not allowed."
            raise ValidationFailed(f"q: {message}", code="invalid", fields={"q": [message]})
        matched = _text_condition(text)
        if matched is not None:
            condition &= matched
    return condition


def study_search(*, org: Organization, filters: StudyFilters) -> QuerySet[Study]:
    """Studies of `org` matching `filters`, newest first (study date and time, then arrival)."""
    return (
        Study.objects.select_related("patient")
        .filter(organization=org)
        .filter(study_condition(filters))
        .order_by("-study_date", "-study_time", "-created_at", "-pk")
    )
