"""Who may open a portal page: signed-in members of an organization, and org admins for admin pages.

A signed-in user without any membership has nothing to see: they get a 403 page that says so,
never a page of some organization. Objects of another organization are 404 (the selectors
raise `NotFound`, and `not_found_as_404` turns that into Django's 404).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase

from core.errors import NotFound
from core.tenancy.actors import Actor

View = Callable[..., HttpResponseBase]


def portal_actor(request: HttpRequest) -> Actor:
    """The acting member (set by `OrganizationMiddleware`); only call behind `member_required`."""
    actor: Actor | None = getattr(request, "actor", None)
    if actor is None:
        raise PermissionDenied("Your account is not a member of any organization.")
    return actor


def member_required(view: View) -> View:
    """Signed in (else redirect to the login page) and a member of an organization (else 403)."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        portal_actor(request)
        return view(request, *args, **kwargs)

    return wrapped


def org_admin_required(view: View) -> View:
    """Like `member_required`, and the member's role must be `org_admin` (else 403)."""

    @member_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not portal_actor(request).is_org_admin:
            raise PermissionDenied("Only organization admins may open this page.")
        return view(request, *args, **kwargs)

    return wrapped


def role_required(*roles: str, message: str) -> Callable[[View], View]:
    """A domain portal's gate: members whose role is one of `roles`, and org admins (else 403).

    The view receives the acting member as its second argument, and a selector's `NotFound`
    (missing, or another organization's row) becomes a 404 page.
    """

    def decorator(view: View) -> View:
        @member_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            actor = portal_actor(request)
            if not (actor.is_org_admin or actor.role in roles):
                raise PermissionDenied(message)
            with not_found_as_404():
                return view(request, actor, *args, **kwargs)

        return wrapped

    return decorator


@contextmanager
def not_found_as_404() -> Iterator[None]:
    """Turn a selector's `NotFound` (missing, or another organization's row) into a 404 page."""
    try:
        yield
    except NotFound as exc:
        raise Http404(exc.message) from exc
