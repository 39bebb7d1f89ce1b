"""Resolve the signed-in portal user's current organization (one at a time, kept in the session)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from core.tenancy.actors import Actor
from core.tenancy.selectors import memberships_for_user

SESSION_ORG_KEY = "tessera_org_id"


class OrganizationMiddleware:
    """Sets `request.actor` (or None) for session users from their membership."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.actor = session_actor(request)  # type: ignore[attr-defined]  # our attribute on the request; HttpRequest's stubs cannot know it
        return self.get_response(request)


def session_actor(request: HttpRequest) -> Actor | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    memberships = list(memberships_for_user(user=user))
    if not memberships:
        return None
    wanted = request.session.get(SESSION_ORG_KEY)
    membership = next((m for m in memberships if m.organization_id == wanted), memberships[0])
    return Actor.for_user(organization=membership.organization, user=user, role=membership.role)
