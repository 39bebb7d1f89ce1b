"""The archive's study list, searched on the index columns (the REST twin of the portal's list):
patient id, patient name (contains, case-insensitive), accession number, study date range and
modality. Always inside one organization."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, QuerySet

from apps.medical.models import Series, Study
from core.tenancy.models import Organization


@dataclass(frozen=True)
class StudyFilters:
    """What a study search matches; empty values match everything."""

    patient_id: str = ""
    patient_name: str = ""
    accession: str = ""
    date_from: str = ""  # DA, YYYYMMDD
    date_to: str = ""
    modality: str = ""


def study_search(*, org: Organization, filters: StudyFilters) -> QuerySet[Study]:
    """Studies of `org` matching `filters`, newest first (the model's ordering)."""
    studies = Study.objects.select_related("patient").filter(organization=org)
    if filters.patient_id:
        studies = studies.filter(patient__patient_id=filters.patient_id)
    if filters.patient_name:
        studies = studies.filter(patient__patient_name__icontains=filters.patient_name)
    if filters.accession:
        studies = studies.filter(accession_number=filters.accession)
    if filters.date_from:
        studies = studies.filter(study_date__gte=filters.date_from)
    if filters.date_to:
        studies = studies.filter(study_date__lte=filters.date_to)
    if filters.modality:
        studies = studies.filter(
            Exists(Series.objects.filter(study_id=OuterRef("pk"), modality__iexact=filters.modality))
        )
    return studies
