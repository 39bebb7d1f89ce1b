"""The back office's building blocks, shared by every app's admin: tenancy, actors, read-only.

Django autodiscovers `<app>/admin.py`; core's registers its packages' admins (tenancy, audit,
jobs), which live beside those packages and, like ml's and the domains', build on this module.

Who sees what:
- superusers see every row;
- other staff see only the rows of organizations where they are `org_admin`
  (`OrganizationScopedAdminMixin`). Django's model permissions (groups) still decide *what*
  they may do; the mixin only narrows *which rows*. A row of another organization answers 404
  on its change/delete/history pages, like the API;
- rows no organization owns (Django's users and groups) are for superusers only
  (`SuperuserOnlyAdminMixin`).

Writes made in the admin go through the same services as the portal and the API, with
`admin_actor` as the audit actor (`save_model` calls the service, then `copy_saved_row`).
Rows written only by services are shown through `ReadOnlyAdminMixin`.

An app's admin needs nothing else from core:

    @admin.register(Widget)
    class WidgetAdmin(OrganizationScopedAdminMixin, admin.ModelAdmin):
        organization_field = "organization"  # the default; a path for rows owned through another row

Every admin registered for a model of core, ml or a domain app must use the mixin, and the
admins of rows no organization owns (users, groups) `SuperuserOnlyAdminMixin`:
`tests/core/test_admin_tenancy.py` walks `admin.site._registry` and checks each one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from core.tenancy.actors import Actor
from core.tenancy.choices import ROLE_SCOPES, Role
from core.tenancy.models import Membership, Organization

if TYPE_CHECKING:
    _ModelAdminBase = admin.ModelAdmin[Any]
    _AnyAdminBase = admin.options.BaseModelAdmin[Any]
else:
    _ModelAdminBase = object
    _AnyAdminBase = object

_ORG_IDS_ATTR = "_tessera_admin_org_ids"


def admin_organization_ids(request: HttpRequest) -> frozenset[int] | None:
    """Organizations whose rows `request.user` may see in the admin; None means all (superuser).

    Computed once per request. Inactive or non-staff users get no organization at all.
    """
    user = request.user
    if user.is_active and user.is_superuser:
        return None
    cached: frozenset[int] | None = getattr(request, _ORG_IDS_ATTR, None)
    if cached is None:
        cached = frozenset()
        if user.is_active and user.is_staff:
            cached = frozenset(
                Membership.objects.filter(user_id=user.pk, role=Role.ORG_ADMIN).values_list(
                    "organization_id", flat=True
                )
            )
        setattr(request, _ORG_IDS_ATTR, cached)
    return cached


def admin_actor(request: HttpRequest, organization: Organization) -> Actor:
    """The audit actor for a change made (or a record read) in the admin: the staff user, inside `organization`."""
    user: Any = request.user
    membership = Membership.objects.filter(organization=organization, user_id=user.pk).first()
    role = membership.role if membership is not None else None
    return Actor(
        organization=organization,
        user=user,
        role=role,
        scopes=ROLE_SCOPES.get(role, frozenset()) if role else frozenset(),
    )


def copy_saved_row(target: models.Model, saved: models.Model) -> None:
    """Make the admin's unsaved form instance the row a service just created or updated.

    `save_model` hands its write to a service; Django then needs `target` (pk and values) for
    the change message, the log entry and the redirect.
    """
    for field in saved._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False
    target._state.db = saved._state.db


class OrganizationScopedAdminMixin(_ModelAdminBase):
    """Limit a ModelAdmin to the organizations where a non-superuser staff member is org admin.

    Put it before `admin.ModelAdmin`; set `organization_field` to the lookup path from the model
    to its Organization:

        @admin.register(ModelVersion)
        class ModelVersionAdmin(OrganizationScopedAdminMixin, admin.ModelAdmin):
            organization_field = "registered_model__organization"

    What it does for non-superusers:
    - `get_queryset` keeps only rows of their organizations (lists, actions, search, autocomplete);
    - change/delete/history pages of any other row answer 404 (existence is not disclosed);
    - foreign-key and many-to-many choices only offer their organizations' rows: `Organization`
      itself, models with an `organization` field, and models whose own registered admin uses
      this mixin (through that admin's `organization_field`, e.g. a `ModelVersion`);
    - relation list filters only list values present in the visible rows;
    - staff who are org admin nowhere get no access to the model at all.
    """

    organization_field: str = "organization"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        org_ids = admin_organization_ids(request)
        if org_ids is None:
            return queryset
        return queryset.filter(**{f"{self.organization_field}__in": org_ids})

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            # Django's default is a redirect with "doesn't exist"; a 404 discloses nothing either
            # way and matches the API's "another tenant's row is not found".
            raise Http404(f"{self.opts.verbose_name} not found.")
        return obj

    def _administers_any_organization(self, request: HttpRequest) -> bool:
        org_ids = admin_organization_ids(request)
        return org_ids is None or bool(org_ids)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._administers_any_organization(request) and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._administers_any_organization(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._administers_any_organization(request) and super().has_add_permission(request, *args)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._administers_any_organization(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._administers_any_organization(request) and super().has_delete_permission(request, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if "queryset" not in kwargs:
            scoped = self._scoped_choices(db_field.related_model, admin_organization_ids(request))
            if scoped is not None:
                kwargs["queryset"] = scoped
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if "queryset" not in kwargs:
            scoped = self._scoped_choices(db_field.related_model, admin_organization_ids(request))
            if scoped is not None:
                kwargs["queryset"] = scoped
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_list_filter(self, request: HttpRequest) -> Any:
        list_filter = super().get_list_filter(request)
        if admin_organization_ids(request) is None:
            return list_filter
        # A plain relation filter lists every row of the related table (every organization's
        # name); "related only" lists the values present in the rows this user can see.
        return [_related_only(self.model, entry) for entry in list_filter]

    def _scoped_choices(
        self, related_model: type[models.Model], org_ids: frozenset[int] | None
    ) -> QuerySet[Any] | None:
        if org_ids is None:
            return None
        path = _organization_path(related_model, self.admin_site)
        if path is None:
            return None  # not owned by an organization (users, ...): the admin decides
        return related_model._default_manager.filter(**{f"{path}__in": org_ids})


class ReadOnlyAdminMixin(_AnyAdminBase):
    """No add, change or delete, whatever the user's model permissions say.

    For rows written only by services (with their audit events), or immutable/append-only ones.
    Works on a ModelAdmin (put it beside `OrganizationScopedAdminMixin`) and on an inline.
    Unless the admin declares its own `readonly_fields`, the page shows every stored value,
    including the ones a model form leaves out (ids, timestamps, non-editable fields).
    """

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        declared = super().get_readonly_fields(request, obj)
        return declared or [field.name for field in self.opts.concrete_fields]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SuperuserOnlyAdminMixin(_ModelAdminBase):
    """For rows no organization owns (Django's users and groups): superusers only.

    Other staff, org admins included, get 403 whatever their model permissions say: the user
    list is every tenant's people, and `change_user` could grant its holder superuser status.
    """

    def _is_superuser(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._is_superuser(request) and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_superuser(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._is_superuser(request) and super().has_add_permission(request, *args)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_superuser(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_superuser(request) and super().has_delete_permission(request, obj)


def _organization_path(model: type[models.Model], admin_site: admin.AdminSite) -> str | None:
    """The lookup from `model` to its Organization, or None when its rows belong to no organization."""
    if model is Organization:
        return "pk"
    model_admin = admin_site._registry.get(model)
    if isinstance(model_admin, OrganizationScopedAdminMixin):
        return model_admin.organization_field
    if any(field.name == "organization" for field in model._meta.get_fields()):
        return "organization"
    return None


def _related_only(model: type[models.Model], entry: Any) -> Any:
    if not isinstance(entry, str):
        return entry
    try:
        field = get_fields_from_path(model, entry)[-1]
    except FieldDoesNotExist:
        return entry
    if getattr(field, "is_relation", False):
        return (entry, admin.RelatedOnlyFieldListFilter)
    return entry
