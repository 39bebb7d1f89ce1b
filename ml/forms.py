"""Input validation for the model-registry portal pages. Services still validate; their errors land on the form."""

from __future__ import annotations

from collections.abc import Iterable

from django import forms

from ml.choices import PRODUCTION_ALIAS
from ml.models import alias_name_validator


class ModelAliasSetForm(forms.Form):
    """Point an alias at a version: a promotion, or a rollback to an older version."""

    alias = forms.CharField(max_length=50, initial=PRODUCTION_ALIAS, validators=[alias_name_validator])
    version = forms.TypedChoiceField(coerce=int, choices=())
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Recorded in the alias history and the audit log.",
    )

    def __init__(self, *args: object, version_numbers: Iterable[int] = (), **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]  # Form.__init__'s stubs are stricter than its *args/**kwargs pass-through
        self.fields["version"].choices = [(n, f"v{n}") for n in version_numbers]  # type: ignore[attr-defined]  # a ChoiceField; the stubs type fields as the Field base
