"""Back office for the platform core: organizations, members, API keys, the audit trail and jobs.

Who sees what:
- superusers see every row;
- other staff see only the rows of organizations where they are `org_admin`
  (`OrganizationScopedAdminMixin`, reusable by every app's admin). Django's model permissions
  (groups) still decide *what* they may do; the mixin only narrows *which rows*. A row of
  another organization answers 404 on its change/delete/history pages, like the API.

Writes go through the same services as the portal and the API (`api_key_create`,
`api_key_revoke`, `membership_set`, ...), so every change is audited in its own transaction.
The audit trail and jobs are read-only here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.html import format_html

from core.audit.models import AuditEvent
from core.jobs.models import Job
from core.tenancy.actors import Actor
from core.tenancy.choices import ROLE_SCOPES, Role, Scope
from core.tenancy.models import ApiKey, Membership, Organization
from core.tenancy.services import (
    api_key_create,
    api_key_revoke,
    membership_delete,
    membership_set,
    organization_create,
    organization_update,
)

if TYPE_CHECKING:
    _ModelAdminBase = admin.ModelAdmin[Any]
else:
    _ModelAdminBase = object

_ORG_IDS_ATTR = "_tessera_admin_org_ids"
_RAW_KEY_ATTR = "_tessera_new_raw_api_key"


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
    """The audit actor for a change made in the admin: the staff user, inside `organization`."""
    user: Any = request.user
    membership = Membership.objects.filter(organization=organization, user_id=user.pk).first()
    role = membership.role if membership is not None else None
    return Actor(
        organization=organization,
        user=user,
        role=role,
        scopes=ROLE_SCOPES.get(role, frozenset()) if role else frozenset(),
    )


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
    - foreign-key choices to `Organization`, or to models with an `organization` field, only
      offer their organizations' rows;
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
        scoped = _scoped_choices(db_field.related_model, admin_organization_ids(request))
        if scoped is not None and "queryset" not in kwargs:
            kwargs["queryset"] = scoped
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        scoped = _scoped_choices(db_field.related_model, admin_organization_ids(request))
        if scoped is not None and "queryset" not in kwargs:
            kwargs["queryset"] = scoped
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_list_filter(self, request: HttpRequest) -> Any:
        list_filter = super().get_list_filter(request)
        if admin_organization_ids(request) is None:
            return list_filter
        # A plain relation filter lists every row of the related table (every organization's
        # name); "related only" lists the values present in the rows this user can see.
        return [_related_only(self.model, entry) for entry in list_filter]


def _scoped_choices(related_model: type[models.Model], org_ids: frozenset[int] | None) -> QuerySet[Any] | None:
    if org_ids is None:
        return None
    if related_model is Organization:
        return Organization.objects.filter(pk__in=org_ids)
    if any(field.name == "organization" for field in related_model._meta.get_fields()):
        return related_model._default_manager.filter(organization__in=org_ids)
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


def _copy_saved_row(target: models.Model, saved: models.Model) -> None:
    """Make the admin's unsaved form instance the row a service just created."""
    for field in saved._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False
    target._state.db = saved._state.db


# --- Organizations and members ----------------------------------------------------------------


@admin.register(Organization)
class OrganizationAdmin(OrganizationScopedAdminMixin, admin.ModelAdmin):
    organization_field = "pk"
    list_display = ("slug", "name", "created_at")
    search_fields = ("slug", "name")
    ordering = ("slug",)

    def get_readonly_fields(self, request: HttpRequest, obj: Organization | None = None) -> tuple[str, ...]:
        return ("slug", "created_at", "updated_at") if obj is not None else ()

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        # New tenants are a platform operation, not an org admin's.
        return bool(request.user.is_superuser) and super().has_add_permission(request, *args)

    def has_delete_permission(self, request: HttpRequest, obj: Organization | None = None) -> bool:
        # The audit trail references organizations (PROTECT): a tenant is never deleted from here.
        return False

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        if change:
            current = Organization.objects.get(pk=obj.pk)
            organization_update(actor=admin_actor(request, current), org=current, name=obj.name)
            _copy_saved_row(obj, current)
        else:
            created, _ = organization_create(slug=obj.slug, name=obj.name)
            _copy_saved_row(obj, created)


@admin.register(Membership)
class MembershipAdmin(OrganizationScopedAdminMixin, admin.ModelAdmin):
    list_display = ("user", "organization", "role", "created_at")
    list_filter = ("role", ("organization", admin.RelatedOnlyFieldListFilter))
    search_fields = ("user__username", "user__email", "organization__slug")
    list_select_related = ("user", "organization")
    fields = ("organization", "user", "role")

    def get_readonly_fields(self, request: HttpRequest, obj: Membership | None = None) -> tuple[str, ...]:
        return ("organization", "user") if obj is not None else ()

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        org_ids = admin_organization_ids(request)
        if db_field.name == "user" and org_ids is not None:
            # Org admins choose among their organizations' people; other tenants' usernames
            # are not listed. New users are created with `manage.py create_user` or by a superuser.
            kwargs["queryset"] = get_user_model().objects.filter(memberships__organization__in=org_ids).distinct()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        saved = membership_set(actor=admin_actor(request, obj.organization), user=obj.user, role=obj.role)
        _copy_saved_row(obj, saved)

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        membership_delete(actor=admin_actor(request, obj.organization), membership=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        for membership in queryset.select_related("organization", "user"):
            membership_delete(actor=admin_actor(request, membership.organization), membership=membership)


# --- API keys ----------------------------------------------------------------------------------


class ApiKeyAddForm(forms.ModelForm):  # type: ignore[type-arg]
    """Creating a key: organization, name, scopes, optional expiry. The secret is generated."""

    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="The API areas this key may call. Grant only what the client needs.",
    )

    class Meta:
        model = ApiKey
        fields = ("organization", "name", "scopes", "expires_at")

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("Must be in the future.")
        return expires_at


@admin.register(ApiKey)
class ApiKeyAdmin(OrganizationScopedAdminMixin, admin.ModelAdmin):
    """API keys: create (the key is shown once), list, revoke. The hash is never shown or set."""

    add_form = ApiKeyAddForm
    add_fields = ("organization", "name", "scopes", "expires_at")
    detail_fields = (
        "organization",
        "name",
        "prefix",
        "scope_list",
        "created_by",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    )
    list_display = (
        "name",
        "organization",
        "prefix",
        "scope_list",
        "expires_at",
        "is_revoked",
        "last_used_at",
        "created_at",
    )
    list_filter = (("organization", admin.RelatedOnlyFieldListFilter), ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix", "organization__slug")
    list_select_related = ("organization",)
    actions = ("revoke",)

    @admin.display(description="scopes")
    def scope_list(self, api_key: ApiKey) -> str:
        return ", ".join(api_key.scopes)

    @admin.display(description="revoked", boolean=True)
    def is_revoked(self, api_key: ApiKey) -> bool:
        return api_key.revoked_at is not None

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        return self.add_fields if obj is None else self.detail_fields

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        # An existing key is immutable here: to change scopes, create a new key and revoke this one.
        return () if obj is None else self.detail_fields

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False  # revoke instead: the row stays for the audit trail and `last_used_at`

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            return  # nothing is editable on an existing key
        new_key = api_key_create(
            actor=admin_actor(request, obj.organization),
            name=obj.name,
            scopes=obj.scopes,
            expires_at=obj.expires_at,
        )
        _copy_saved_row(obj, new_key.api_key)
        setattr(request, _RAW_KEY_ATTR, new_key.raw_key)

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None) -> HttpResponse:
        raw_key: str | None = request.__dict__.pop(_RAW_KEY_ATTR, None)
        if raw_key is None:
            return super().response_add(request, obj, post_url_continue)
        # The message is rendered by this very response (not after a redirect), so the raw key
        # is never parked in the message cookie or the session; `no-store` keeps it out of caches.
        messages.warning(
            request,
            format_html(
                "API key “{}” created. Copy it now, it is shown only this once: <code>{}</code>", obj.name, raw_key
            ),
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "opts": self.opts,
            "api_key": obj,
            "changelist_url": reverse("admin:core_apikey_changelist", current_app=self.admin_site.name),
        }
        response = TemplateResponse(request, "admin/core/apikey/created.html", context)
        add_never_cache_headers(response)
        patch_cache_control(response, no_store=True)
        return response

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for api_key in queryset.select_related("organization"):
            if api_key.revoked_at is None:
                api_key_revoke(actor=admin_actor(request, api_key.organization), api_key=api_key)
                revoked += 1
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)


# --- Read-only: audit trail and jobs --------------------------------------------------------------


class ReadOnlyAdminMixin(_ModelAdminBase):
    """No add, change or delete, whatever the user's model permissions say."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, OrganizationScopedAdminMixin, admin.ModelAdmin):
    """The append-only audit trail (see `core.audit.models.AuditEvent`)."""

    list_display = (
        "created_at",
        "organization",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "outcome",
        "request_id",
    )
    list_filter = ("action", "outcome", ("organization", admin.RelatedOnlyFieldListFilter))
    search_fields = ("action", "actor_label", "object_type", "object_id", "request_id")
    list_select_related = ("organization",)
    date_hierarchy = "created_at"


@admin.register(Job)
class JobAdmin(ReadOnlyAdminMixin, OrganizationScopedAdminMixin, admin.ModelAdmin):
    """Background jobs, read-only (cancel from the portal or `POST /api/v1/jobs/{id}/cancel/`)."""

    list_display = ("id", "kind", "organization", "status", "progress_percent", "queue", "attempts", "created_at")
    list_filter = ("status", "kind", "queue", ("organization", admin.RelatedOnlyFieldListFilter))
    search_fields = ("kind", "message", "error", "celery_task_id")
    list_select_related = ("organization",)
    date_hierarchy = "created_at"

    @admin.display(description="progress", ordering="progress")
    def progress_percent(self, job: Job) -> str:
        return f"{job.progress:.0%}"
