"""Who may call what. Every API view is organization-scoped; domain views also need a scope."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from core.tenancy.actors import Actor
from core.tenancy.models import ApiKey


def request_actor(request: Request) -> Actor | None:
    """The acting principal of an API request: its API key, or the session user's membership."""
    if isinstance(request.auth, ApiKey):
        return Actor.for_api_key(request.auth)
    return getattr(request._request, "actor", None)


class IsOrganizationMember(BasePermission):
    """An API key of the organization, or a signed-in member; also checks the view's scope.

    A view declares `required_scope = "finance"` (API keys need that scope, users a role that
    grants it). `None` means any member of the organization may call it (e.g. jobs).
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        actor = request_actor(request)
        if actor is None:
            if request.user and request.user.is_authenticated:
                raise exceptions.PermissionDenied("Your account is not a member of any organization.")
            raise exceptions.NotAuthenticated("Authentication required: send 'Authorization: Bearer <api key>'.")
        request.actor = actor  # type: ignore[attr-defined]  # our attribute on the request; Request's stubs cannot know it
        scope = getattr(view, "required_scope", None)
        if scope and not actor.has_scope(scope):
            raise exceptions.PermissionDenied(f"This endpoint needs the '{scope}' scope.")
        return True
