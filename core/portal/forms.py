"""Input validation for portal forms. Services still validate; their errors land on the form."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django import forms
from django.utils import timezone

from core.errors import DomainError
from core.tenancy.choices import Scope

EXPIRY_CHOICES = [("", "Never"), ("30", "In 30 days"), ("90", "In 90 days"), ("365", "In one year")]


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses this key, e.g. “loan origination system”.")
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="The API areas this key may call. Grant only what the client needs.",
    )
    expires_in_days = forms.TypedChoiceField(
        choices=EXPIRY_CHOICES, coerce=int, empty_value=None, required=False, label="Expires"
    )

    def expires_at(self) -> datetime | None:
        days = self.cleaned_data.get("expires_in_days")
        return timezone.now() + timedelta(days=days) if days else None


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(required=False, choices=())

    def __init__(self, *args: object, actions: Iterable[str] = (), **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]  # Form.__init__'s stubs are stricter than its *args/**kwargs pass-through
        self.fields["action"].choices = [("", "All actions"), *((a, a) for a in actions)]  # type: ignore[attr-defined]  # a ChoiceField; the stubs type fields as the Field base


def add_domain_error(form: forms.BaseForm, exc: DomainError) -> None:
    """Show a service's error on the form: per field where the form has that field; the message,
    and field errors the form has no field for (as "name: message"), on the form itself."""
    unplaced = [f"{name}: {m}" for name, messages in exc.fields.items() if name not in form.fields for m in messages]
    for name, messages in exc.fields.items():
        if name in form.fields:
            for message in messages:
                form.add_error(name, message)
    if unplaced or not exc.fields:
        form.add_error(None, exc.message)
    for message in unplaced:
        form.add_error(None, message)
