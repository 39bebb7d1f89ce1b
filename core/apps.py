"""The platform app, and the base class domain apps use to plug into it."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from django.apps import AppConfig, apps

if TYPE_CHECKING:
    from core.tenancy.models import Organization


class CoreConfig(AppConfig):
    default = True
    name = "core"
    label = "core"
    verbose_name = "Tessera platform"

    def ready(self) -> None:
        from core.jobs import demo, signals  # noqa: F401  (job functions, worker start hooks)


class DomainAppConfig(AppConfig):
    """What a domain app (finance, traffic, ...) declares to plug into the platform.

    `core` never imports a domain app: URLs, portal navigation and demo seeding are found by
    iterating over the installed configs that subclass this one.

    Attributes:
        domain: the API-key scope and URL segment (`/api/v1/<domain>/`, `/portal/<domain>/`).
        roles: membership roles (besides org_admin) that see this domain in the portal.
        nav_label: the portal navigation entry; empty hides the domain from navigation.
        api_urls / portal_urls: dotted URL modules, or "" when the app has none yet.
    """

    default = False  # subclasses say `default = True`; this base is never an app of its own
    domain: ClassVar[str] = ""
    roles: ClassVar[tuple[str, ...]] = ()
    nav_label: ClassVar[str] = ""
    api_urls: ClassVar[str] = ""
    portal_urls: ClassVar[str] = ""

    def seed_demo(self, *, org: Organization, stdout: object) -> None:
        """Create demo data/models for `org`; must be idempotent. Default: nothing."""


def domain_app_configs() -> list[DomainAppConfig]:
    return [config for config in apps.get_app_configs() if isinstance(config, DomainAppConfig)]
