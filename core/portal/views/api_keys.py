"""Org-admin pages for the organization's API keys: list, create (key shown once), revoke."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from core.errors import DomainError
from core.portal.access import not_found_as_404, org_admin_required, portal_actor
from core.portal.forms import ApiKeyCreateForm, add_domain_error
from core.tenancy.selectors import api_key_get, api_key_list
from core.tenancy.services import api_key_create, api_key_revoke


@org_admin_required
def api_key_list_view(request: HttpRequest) -> HttpResponse:
    keys = api_key_list(org=portal_actor(request).organization).select_related("created_by")
    return render(request, "portal/api_keys/list.html", {"api_keys": keys})


@never_cache
@org_admin_required
def api_key_create_view(request: HttpRequest) -> HttpResponse:
    """GET: the form. POST: create the key and answer with the page that shows it, once.

    The raw key is rendered straight into the POST response (marked no-store) instead of being
    parked in the session for a redirect: that way it is never written anywhere on the server.
    """
    form = ApiKeyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            new_key = api_key_create(
                actor=portal_actor(request),
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_at=form.expires_at(),
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            api_base = request.build_absolute_uri("/api/v1/")
            return render(request, "portal/api_keys/created.html", {"new_key": new_key, "api_base": api_base})
    status = 400 if request.method == "POST" else 200
    return render(request, "portal/api_keys/create.html", {"form": form}, status=status)


@require_POST
@org_admin_required
def api_key_revoke_view(request: HttpRequest, key_id: int) -> HttpResponse:
    actor = portal_actor(request)
    with not_found_as_404():
        api_key = api_key_get(org=actor.organization, key_id=key_id)
    api_key_revoke(actor=actor, api_key=api_key)
    messages.success(request, f"API key “{api_key.name}” ({api_key.prefix}…) revoked.")
    return redirect("portal:api-key-list")
