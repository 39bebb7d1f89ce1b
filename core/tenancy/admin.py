"""Back office for tenancy: organizations, members, API keys, and Django's users and groups.

Writes go through the same services as the portal and the API (`organization_create`,
`membership_set`, `api_key_create`, `api_key_revoke`, ...), so every change is audited in its
own transaction. Tenancy of the rows themselves comes from `core.adminkit`. Users and groups
keep Django's own admins, for superusers only (people are added with `manage.py create_user`,
the portal or a superuser; org admins manage memberships).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.html import format_html

from core.adminkit import (
    OrganizationScopedAdminMixin,
    SuperuserOnlyAdminMixin,
    admin_actor,
    admin_organization_ids,
    copy_saved_row,
)
from core.tenancy.choices import Scope
from core.tenancy.models import ApiKey, Membership, Organization
from core.tenancy.services import (
    api_key_create,
    api_key_revoke,
    membership_delete,
    membership_set,
    organization_create,
    organization_update,
)

_RAW_KEY_ATTR = "_tessera_new_raw_api_key"


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
            copy_saved_row(obj, current)
        else:
            created, _ = organization_create(slug=obj.slug, name=obj.name)
            copy_saved_row(obj, created)


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
        copy_saved_row(obj, saved)

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        membership_delete(actor=admin_actor(request, obj.organization), membership=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        for membership in queryset.select_related("organization", "user"):
            membership_delete(actor=admin_actor(request, membership.organization), membership=membership)


# --- API keys ----------------------------------------------------------------------------------


class ApiKeyAddForm(forms.ModelForm):
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
        copy_saved_row(obj, new_key.api_key)
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


# --- Users and groups: Django's admins, superusers only -------------------------------------------


class UserAdmin(SuperuserOnlyAdminMixin, auth_admin.UserAdmin):
    """Django's user admin, for superusers only (see `SuperuserOnlyAdminMixin`)."""


class GroupAdmin(SuperuserOnlyAdminMixin, auth_admin.GroupAdmin):
    """Django's group admin, for superusers only (see `SuperuserOnlyAdminMixin`)."""


# `django.contrib.auth.admin` registered its own when imported above; replace them.
admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), UserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, GroupAdmin)
