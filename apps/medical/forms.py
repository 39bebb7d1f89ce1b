"""Forms of the clinician portal: study search, upload, study deletion and export."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet

from apps.medical import index_search
from apps.medical.deidentify import DeidOptions
from apps.medical.models import Study
from core.errors import ValidationFailed
from core.portal.forms import add_domain_error
from core.tenancy.models import Organization
from ml.models import RegisteredModel

MAX_UPLOAD_FILES = 100  # Django's DATA_UPLOAD_MAX_NUMBER_FILES default: more files go in a zip


class StudySearchForm(forms.Form):
    """The study list's filters; every field is optional (an empty form lists every study)."""

    q = forms.CharField(
        required=False,
        max_length=64,
        label="Patient name or ID",
        help_text="Each word matches the start of a name part (joh finds Doe^John); * and ? are wildcards.",
    )
    accession = forms.CharField(required=False, max_length=16, label="Accession", help_text="* and ? are wildcards.")
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
        """`org`'s studies matching the (valid) filters, newest first, with the archive's one
        matcher (`index_search`: QIDO-RS rules — fuzzy person names, `*`/`?` wildcards, date
        ranges). Invalid fields are ignored (the form shows their errors); a value the matcher
        refuses becomes a form error, and no study is listed."""
        data = self.cleaned_data if self.is_valid() else {}
        start, end = data.get("date_from"), data.get("date_to")
        filters = index_search.StudyFilters(
            text=(data.get("q") or "").strip(),
            accession=(data.get("accession") or "").strip(),
            date_from=start.strftime("%Y%m%d") if start else "",
            date_to=end.strftime("%Y%m%d") if end else "",
            modality=(data.get("modality") or "").strip().upper(),
        )
        try:
            return index_search.study_search(org=org, filters=filters)
        except ValidationFailed as exc:
            add_domain_error(self, exc)
            return Study.objects.none()


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


class ClassifierTrainForm(forms.Form):
    """The imaging lead's training form: what `POST /api/v1/medical/training-runs/` takes as a
    CSV upload (`apps.medical.training.classifier_training_start` validates it all again)."""

    model = forms.CharField(max_length=100, help_text="The classifier to train (created on first use).")
    classes = forms.CharField(
        required=False,
        max_length=2000,
        help_text="Class names in output order, comma-separated (default: the labels, sorted).",
    )
    labels_file = forms.FileField(
        label="Labels (CSV)", help_text="A header row uid,label; study, series or instance UIDs."
    )
    epochs = forms.IntegerField(min_value=1, max_value=200, initial=10)
    batch_size = forms.IntegerField(min_value=1, max_value=256, initial=32)
    learning_rate = forms.FloatField(min_value=1e-8, max_value=1.0, initial=0.001)
    input_size = forms.IntegerField(min_value=16, max_value=256, initial=64, help_text="Square side in pixels.")
    architecture = forms.ChoiceField(
        choices=[
            ("densenet121", "DenseNet-121"),
            ("densenet169", "DenseNet-169"),
            ("resnet18", "ResNet-18"),
            ("resnet34", "ResNet-34"),
        ],
        initial="densenet121",
        help_text="Ignored when fine-tuning: a fine-tuned version keeps its base version's network.",
    )
    base_version = forms.IntegerField(
        required=False, min_value=1, help_text="Fine-tune from this version of the same model (optional)."
    )
    promote = forms.BooleanField(required=False, help_text="Point the production alias at the new version.")

    def class_names(self) -> list[str] | None:
        names = [name.strip() for name in (self.cleaned_data.get("classes") or "").split(",") if name.strip()]
        return names or None

    def params(self) -> dict[str, Any]:
        data = self.cleaned_data
        params = {name: data[name] for name in ("epochs", "batch_size", "learning_rate", "input_size")}
        if data.get("base_version") is None:
            params["architecture"] = data["architecture"]
        return params


class RoutingRuleForm(forms.Form):
    """A routing rule (`apps.medical.routing`): which new series a classifier analyses on receipt."""

    name = forms.CharField(max_length=100)
    modality = forms.CharField(required=False, max_length=16, help_text="e.g. CR, CT; empty matches any.")
    body_part = forms.CharField(required=False, max_length=16, help_text="e.g. CHEST; empty matches any.")
    series_description_pattern = forms.CharField(
        required=False,
        max_length=200,
        label="Series description pattern",
        help_text="A regular expression searched in the series description (case-insensitive); empty matches any.",
    )
    registered_model: forms.ModelChoiceField[Any] = forms.ModelChoiceField(
        queryset=RegisteredModel.objects.none(), label="Model", empty_label=None
    )  # the organization's classifiers, set in __init__
    alias = forms.CharField(max_length=64, initial="production")
    active = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, org: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["registered_model"].queryset = RegisteredModel.objects.filter(  # type: ignore[attr-defined]  # a ModelChoiceField
            organization=org, kind="medical.image_classifier"
        ).order_by("name")

    def clean(self) -> dict[str, Any]:
        from apps.medical.routing import routing_rule_values

        cleaned = super().clean() or {}
        values: dict[str, Any] = {
            key: cleaned[key]
            for key in ("name", "modality", "body_part", "series_description_pattern", "alias")
            if key in cleaned
        }
        try:
            cleaned.update(routing_rule_values(values))
        except ValidationFailed as exc:
            add_domain_error(self, exc)
        return cleaned


class DicomNodeForm(forms.Form):
    """An org admin allows a modality or PACS to send to the listener (validated by the service)."""

    ae_title = forms.CharField(max_length=16, label="Calling AE title", strip=False)
    host = forms.CharField(required=False, max_length=255, label="Host (empty: any)")
    description = forms.CharField(required=False, max_length=200, label="Description")
