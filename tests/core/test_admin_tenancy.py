"""Tenancy of every registered admin: staff of one organization never see another's rows.

Generated from `admin.site._registry`, so the admin of a new model (a new domain's included) is
covered without anyone remembering to add it here. Rows are built generically from the model's
fields (every required field gets a plain value of its type; relations are built in the same
organization); a model whose constraints need a particular value gets it in `FIELD_VALUES`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from core.adminkit import OrganizationScopedAdminMixin, SuperuserOnlyAdminMixin
from core.tenancy.models import Organization

pytestmark = pytest.mark.django_db

# Platform-level models, not owned by an organization: their admins are for superusers only
# (`SuperuserOnlyAdminMixin`), which the tests below check.
NOT_ORGANIZATION_OWNED = {"auth.User", "auth.Group"}

# (model label, field name) -> value, where a generic value would break a constraint.
FIELD_VALUES: dict[tuple[str, str], Any] = {}

_sequence = itertools.count(1)


def registered_models() -> list[type[models.Model]]:
    return list(admin.site._registry)


def tenant_models() -> list[type[models.Model]]:
    return [model for model in registered_models() if model._meta.label not in NOT_ORGANIZATION_OWNED]


def _required_value(model: type[models.Model], field: models.Field[Any, Any], org: Organization) -> Any:
    override = FIELD_VALUES.get((model._meta.label, field.name))
    if override is not None:
        return override(org) if callable(override) else override
    if field.is_relation:
        related = field.related_model
        assert isinstance(related, type)
        if related is Organization:
            return org
        if related is get_user_model():
            return get_user_model().objects.get_or_create(username="row-owner")[0]
        return build_row(related, org)
    if field.choices:
        return field.choices[0][0]
    if isinstance(field, models.FileField):
        return f"admin-tenancy/{model._meta.model_name}.bin"
    if isinstance(field, models.DateTimeField):
        return timezone.now()
    if isinstance(field, models.DateField):
        return timezone.now().date()
    if isinstance(field, models.BooleanField):
        return False
    if isinstance(field, models.IntegerField):
        return 1
    if isinstance(field, models.FloatField | models.DecimalField):
        return 0.5  # inside every [0, 1] and "> 0" constraint
    if isinstance(field, models.JSONField):
        return {}
    if isinstance(field, models.CharField | models.TextField):
        text = f"{model._meta.model_name}-{org.slug}-{next(_sequence)}"
        return text[-field.max_length :] if field.max_length else text
    raise AssertionError(f"No generic value for {model._meta.label}.{field.name}: add one to FIELD_VALUES.")


def build_row(model: type[models.Model], org: Organization) -> models.Model:
    """A row of `model` owned by `org`, with a plain value in every required field."""
    if model is Organization:
        return org
    values = {
        field.name: _required_value(model, field, org)
        for field in model._meta.concrete_fields
        if (model._meta.label, field.name) in FIELD_VALUES or _is_required(field) or _is_owner(field)
    }
    return model._default_manager.create(**values)


def _is_owner(field: models.Field[Any, Any]) -> bool:
    # Set even where nullable (an audit event may be the platform's): the row must have an owner.
    return field.is_relation and field.related_model is Organization


def _is_required(field: models.Field[Any, Any]) -> bool:
    filled_by_django = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    return not (field.primary_key or field.null or field.has_default() or filled_by_django)


def admin_url(model: type[models.Model], view: str, *args: Any) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def staff_of(make_member: Callable[..., Any]) -> Callable[..., Client]:
    """A logged-in client of a staff org admin of `org` who may view `model` in the admin."""

    def make(org: Organization, model: type[models.Model]) -> Client:
        user = make_member(org, "org_admin", username=f"staff-{org.slug}")
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        content_type = ContentType.objects.get_for_model(model)
        user.user_permissions.set(Permission.objects.filter(content_type=content_type, codename__startswith="view_"))
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def rows_of(org: Organization, other_org: Organization) -> Callable[..., tuple[models.Model, models.Model]]:
    """One row of `model` in each organization: (acme's, globex's)."""

    def make(model: type[models.Model]) -> tuple[models.Model, models.Model]:
        return build_row(model, org), build_row(model, other_org)

    return make


def test_every_registered_admin_is_organization_scoped() -> None:
    # given: every admin of a model that belongs to an organization
    unscoped = []
    for model in tenant_models():
        model_admin = admin.site._registry[model]
        # then: it narrows rows with the core mixin, along a path that ends at Organization
        if not isinstance(model_admin, OrganizationScopedAdminMixin):
            unscoped.append(model._meta.label)
            continue
        path = model_admin.organization_field
        if model is Organization:
            assert path == "pk"
        else:
            target = get_fields_from_path(model, path)[-1]
            assert target.related_model is Organization, f"{model._meta.label}: {path} is not an Organization"
    assert unscoped == [], f"admins without OrganizationScopedAdminMixin: {unscoped}"


def test_the_exemptions_are_superuser_only_and_not_organization_owned() -> None:
    # given / then: an exemption that no longer fits must be removed, not kept as a loophole
    labels = {model._meta.label: model for model in registered_models()}
    for label in NOT_ORGANIZATION_OWNED:
        assert label in labels, label
        assert all(field.name != "organization" for field in labels[label]._meta.get_fields())
        assert isinstance(admin.site._registry[labels[label]], SuperuserOnlyAdminMixin), label


@pytest.mark.parametrize("label", sorted(NOT_ORGANIZATION_OWNED))
def test_staff_with_every_permission_cannot_open_platform_models(
    label: str, org: Organization, make_member: Callable[..., Any]
) -> None:
    # given: an org admin on staff holding every permission of the model (add, change, ...)
    model = next(model for model in registered_models() if model._meta.label == label)
    user = make_member(org, "org_admin", username="staff-acme")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.set(Permission.objects.filter(content_type=ContentType.objects.get_for_model(model)))
    client = Client()
    client.force_login(user)
    row = user if model is get_user_model() else model._default_manager.create(name="operators")
    # when / then
    assert client.get(admin_url(model, "changelist")).status_code == 403
    assert client.get(admin_url(model, "change", row.pk)).status_code == 403
    assert client.get(admin_url(model, "add")).status_code == 403
    assert model._meta.app_label not in [app["app_label"] for app in client.get("/admin/").context["app_list"]]


def test_the_registry_covers_every_platform_and_domain_app() -> None:
    # then: the generated tests below really walk core, ml and each domain's admin
    apps = {model._meta.app_label for model in tenant_models()}
    assert apps >= {"core", "ml", "finance", "traffic"}
    assert settings.AUTH_USER_MODEL in NOT_ORGANIZATION_OWNED


@pytest.mark.parametrize("model", tenant_models(), ids=lambda model: model._meta.label)
def test_staff_never_see_another_organizations_row(
    model: type[models.Model], org: Organization, staff_of: Callable[..., Client], rows_of: Callable[..., Any]
) -> None:
    # given: one row in each organization, and an org admin of the first who may view the model
    own, foreign = rows_of(model)
    client = staff_of(org, model)
    # when
    changelist = client.get(admin_url(model, "changelist"))
    # then: their row is listed, the other organization's is not, and its pages are not found
    assert changelist.status_code == 200
    listed = {row.pk for row in changelist.context["cl"].queryset}
    assert own.pk in listed
    assert foreign.pk not in listed
    assert client.get(admin_url(model, "change", own.pk)).status_code == 200
    assert client.get(admin_url(model, "change", foreign.pk)).status_code == 404
    assert client.get(admin_url(model, "history", foreign.pk)).status_code == 404
    assert client.get(admin_url(model, "delete", foreign.pk)).status_code == 404
