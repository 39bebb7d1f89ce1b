"""Portal forms of the credit analyst portal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms

from apps.finance.choices import DEFAULT_MODEL_NAME, Decision
from apps.finance.feature_encoding import FeatureSpec
from apps.finance.models import CreditPolicy


class DatasetUploadForm(forms.Form):
    file = forms.FileField(help_text="CSV with a header row; one row per historical application.")
    name = forms.CharField(max_length=200, required=False)
    target = forms.CharField(max_length=200, help_text="The column that says whether the applicant defaulted.")
    positive_label = forms.CharField(
        max_length=100, required=False, help_text="Only when the target is not 0/1: the value meaning default."
    )

    def service_fields(self) -> dict[str, Any]:
        return {k: self.cleaned_data[k] for k in ("name", "target", "positive_label")}


class TrainForm(forms.Form):
    model = forms.SlugField(max_length=100, initial=DEFAULT_MODEL_NAME)
    n_estimators = forms.IntegerField(min_value=10, max_value=5000, initial=1000, label="Max boosting rounds")
    learning_rate = forms.FloatField(min_value=0.001, max_value=1.0, initial=0.05)
    max_depth = forms.IntegerField(min_value=1, max_value=12, initial=4)
    class_weight = forms.ChoiceField(choices=[("auto", "auto"), ("balanced", "balanced"), ("none", "none")])
    promote = forms.BooleanField(required=False, help_text="Org admins: put the new version in production.")

    def params(self) -> dict[str, Any]:
        return {k: self.cleaned_data[k] for k in ("n_estimators", "learning_rate", "max_depth", "class_weight")}


class PromoteForm(forms.Form):
    version = forms.IntegerField(min_value=1)
    reason = forms.CharField(max_length=500, required=False)


class BatchForm(forms.Form):
    file = forms.FileField(help_text="CSV with the model's feature columns (+ optional application_id).")
    model = forms.CharField(max_length=100, required=False, help_text="Default: the production credit model.")
    name = forms.CharField(max_length=200, required=False)


class DecisionSearchForm(forms.Form):
    application_id = forms.CharField(required=False)
    decision = forms.ChoiceField(choices=[("", "any"), *Decision.choices], required=False)
    model = forms.CharField(required=False)
    min_score = forms.IntegerField(required=False)
    max_score = forms.IntegerField(required=False)
    created_after = forms.DateTimeField(required=False)


class PolicyForm(forms.ModelForm):
    class Meta:
        model = CreditPolicy
        fields = ["points_at_base_odds", "base_odds", "pdo", "approve_min_score", "decline_below_score"]


class ApplicationForm(forms.Form):
    """Base of the per-model application form built by `application_form_for`."""

    application_id = forms.CharField(max_length=200)
    explain = forms.BooleanField(required=False, label="Explain approvals too")
    feature_names: Sequence[str] = ()

    def features(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self.feature_names:
            value = self.cleaned_data.get(f"f__{name}")
            if value not in (None, ""):
                values[name] = value
        return values


def application_form_for(features: Sequence[FeatureSpec]) -> type[ApplicationForm]:
    """A form with one input per model feature: numbers, or a list of the known categories."""
    fields: dict[str, Any] = {}
    for spec in features:
        label = spec.description or spec.name
        help_text = "" if spec.missing_allowed else "required"
        if spec.is_categorical:
            choices = [("", "— missing —" if spec.missing_allowed else "— choose —")] + [
                (c, c) for c in spec.categories
            ]
            fields[f"f__{spec.name}"] = forms.ChoiceField(
                choices=choices, required=not spec.missing_allowed, label=f"{spec.name}", help_text=label
            )
        else:
            fields[f"f__{spec.name}"] = forms.FloatField(
                required=not spec.missing_allowed,
                label=spec.name,
                help_text=f"{label} {help_text}".strip(),
                min_value=spec.min,
                max_value=spec.max,
            )
    fields["feature_names"] = [s.name for s in features]
    return type("CreditApplicationForm", (ApplicationForm,), fields)
