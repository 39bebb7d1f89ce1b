"""Org-admin page: the organization's audit log, newest first, filterable by action."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import urlencode

from core.portal.access import org_admin_required, portal_actor
from core.portal.forms import AuditFilterForm
from core.portal.selectors import audit_action_list, audit_event_list

AUDIT_PAGE_SIZE = 50


@org_admin_required
def audit_list_view(request: HttpRequest) -> HttpResponse:
    org = portal_actor(request).organization
    form = AuditFilterForm(request.GET or None, actions=audit_action_list(org=org))
    action = form.cleaned_data["action"] if form.is_valid() else None
    page = Paginator(audit_event_list(org=org, action=action), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = urlencode({"action": action}) + "&" if action else ""
    return render(request, "portal/audit/list.html", {"form": form, "page": page, "filter_query": query})
