"""Forms of the clinician portal: study search, upload, study deletion and export."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.db.models import Q, QuerySet

from apps.medical.deidentify import DeidOptions
from apps.medical.models import Study
from core.tenancy.models import Organization

MAX_UPLOAD_FILES = 100  # Django's DATA_UPLOAD_MAX_NUMBER_FILES default: more files go in a zip


class StudySearchForm(forms.Form):
    """The study list's filters; every field is optional (an empty form lists every study)."""

    q = forms.CharField(required=False, max_length=64, label="Patient name or ID")
    accession = forms.CharField(required=False, max_length=16, label="Accession")
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    modality = forms.CharField(required=False, max_length=16, label="Modality")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def studies(self, *, org: Organization) -> QuerySet[Study]:
        """`org`'s studies matching the (valid) filters, newest first."""
        studies = Study.objects.filter(organization=org).select_related("patient")
        data = self.cleaned_data if self.is_valid() else {}
        if text := (data.get("q") or "").strip():
            # DICOM PN stores "Family^Given": "doe john" should find "Doe^John"
            words = [word for word in text.replace("^", " ").split() if word]
            by_name = Q()
            for word in words:
                by_name &= Q(patient__patient_name__icontains=word)
            studies = studies.filter(by_name | Q(patient__patient_id__icontains=text))
        if accession := (data.get("accession") or "").strip():
            studies = studies.filter(accession_number__icontains=accession)
        if start := data.get("date_from"):
            studies = studies.filter(study_date__gte=start.strftime("%Y%m%d"))
        if end := data.get("date_to"):
            studies = studies.exclude(study_date="").filter(study_date__lte=end.strftime("%Y%m%d"))
        if modality := (data.get("modality") or "").strip().upper():
            studies = studies.filter(series__modality=modality).distinct()
        return studies.order_by("-study_date", "-study_time", "-created_at", "-pk")


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files from one `<input type=file multiple>` (Django's documented recipe)."""

    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        single = super().clean
        if isinstance(data, list | tuple) and data:
            return [single(item, initial) for item in data]
        cleaned = single(None if isinstance(data, list | tuple) else data, initial)  # "required" when empty
        return [cleaned] if cleaned else []


class UploadForm(forms.Form):
    uploads = MultipleFileField(
        label="DICOM files or a zip",
        help_text=f"Up to {MAX_UPLOAD_FILES} files at once; a zip of a whole study for more.",
    )


class StudyDeleteForm(forms.Form):
    reason = forms.CharField(
        max_length=500, widget=forms.Textarea(attrs={"rows": 2}), help_text="Kept in the audit log."
    )


# The PS3.15 Table E.1-1 option names, for the export form's checkboxes.
DEID_OPTION_LABELS = {
    "retain_safe_private": "Retain Safe Private",
    "retain_uids": "Retain UIDs",
    "retain_device_identity": "Retain Device Identity",
    "retain_institution_identity": "Retain Institution Identity",
    "retain_patient_characteristics": "Retain Patient Characteristics",
    "retain_long_full_dates": "Retain Longitudinal Temporal Information with Full Dates",
    "retain_long_modified_dates": "Retain Longitudinal Temporal Information with Modified Dates",
    "clean_descriptors": "Clean Descriptors",
    "clean_structured_content": "Clean Structured Content",
    "clean_graphics": "Clean Graphics",
}


class ExportForm(forms.Form):
    """A de-identified export of one study: the Basic Profile plus the options ticked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in DeidOptions.__dataclass_fields__:
            self.fields[name] = forms.BooleanField(required=False, label=DEID_OPTION_LABELS.get(name, name))

    def options(self) -> dict[str, bool]:
        return {name: bool(self.cleaned_data.get(name)) for name in DeidOptions.__dataclass_fields__}


class DicomNodeForm(forms.Form):
    """An org admin allows a modality or PACS to send to the listener (validated by the service)."""

    ae_title = forms.CharField(max_length=16, label="Calling AE title", strip=False)
    host = forms.CharField(required=False, max_length=255, label="Host (empty: any)")
    description = forms.CharField(required=False, max_length=200, label="Description")
