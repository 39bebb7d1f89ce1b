"""Template context for the portal shell: the acting member and the navigation for their role.

Apps appear in the navigation once their `core.apps.PortalAppConfig` sets `nav_label` and
`portal_urls`: domains (under `/portal/<domain>/`) for the roles they list, `ml`'s model
registry (`/models/`) for org admins. Org admins see every entry plus the platform's own
admin pages (API keys, Audit), which come last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import SimpleLazyObject

from core.apps import portal_app_configs
from core.tenancy.actors import Actor
from core.tenancy.choices import Role
from core.tenancy.selectors import memberships_for_user


@dataclass(frozen=True)
class NavItem:
    """One entry of the portal navigation."""

    key: str
    label: str
    url: str
    active: bool = False


def portal_nav(actor: Actor | None, *, path: str = "") -> list[NavItem]:
    """The navigation `actor` sees, in display order; empty for anonymous visitors."""
    if actor is None:
        return []
    entries: list[tuple[str, str, str]] = [("dashboard", "Dashboard", reverse("portal:dashboard"))]
    for config in portal_app_configs():
        if config.nav_visible_to(actor):
            entries.append((config.nav_entry_key(), config.nav_label, config.nav_url()))
    if actor.is_org_admin:
        entries += [
            ("api-keys", "API keys", reverse("portal:api-key-list")),
            ("audit", "Audit", reverse("portal:audit-list")),
        ]
    return [
        NavItem(key=key, label=label, url=url, active=_is_active(url, path, is_root=key == "dashboard"))
        for key, label, url in entries
    ]


def _is_active(url: str, path: str, *, is_root: bool) -> bool:
    return path == url if is_root else path.startswith(url)


def portal(request: HttpRequest) -> dict[str, Any]:
    actor: Actor | None = getattr(request, "actor", None)
    return {
        "actor": actor,
        "actor_role_label": Role(actor.role).label if actor is not None and actor.role in Role.values else "",
        "portal_nav": portal_nav(actor, path=request.path),
        # Lazy: the query runs only where the header renders the organization switcher.
        "portal_memberships": SimpleLazyObject(lambda: _memberships(actor)),
    }


def _memberships(actor: Actor | None) -> list[Any]:
    if actor is None or actor.user is None:
        return []
    return list(memberships_for_user(user=actor.user))
