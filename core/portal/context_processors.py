"""Template context for the portal shell: the actor and the navigation for their role."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from core.apps import domain_app_configs
from core.tenancy.choices import Role


def portal(request: HttpRequest) -> dict[str, Any]:
    actor = getattr(request, "actor", None)
    nav: list[dict[str, str]] = []
    if actor is not None:
        for config in domain_app_configs():
            if config.nav_label and config.portal_urls and (actor.role == Role.ORG_ADMIN or actor.role in config.roles):
                nav.append({"label": config.nav_label, "url": f"/portal/{config.domain}/", "domain": config.domain})
    return {"actor": actor, "portal_nav": nav}
