"""Forms of the merchant portal."""

from __future__ import annotations

from django import forms

from apps.retail.choices import Algorithm


class TrainForm(forms.Form):
    algorithm = forms.ChoiceField(choices=Algorithm.choices, initial=Algorithm.AUTO)
    promote = forms.BooleanField(required=False, help_text="Make the new version production (org admins).")
