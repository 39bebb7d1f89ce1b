"""The platform app, and the base classes other apps use to plug into it."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from django.apps import AppConfig, apps

if TYPE_CHECKING:
    from core.tenancy.actors import Actor
    from core.tenancy.models import Organization


class CoreConfig(AppConfig):
    default = True
    name = "core"
    label = "core"
    verbose_name = "Tessera platform"

    def ready(self) -> None:
        from core.jobs import demo, signals  # noqa: F401  (job functions, worker start hooks)
        from core.telemetry import signals as telemetry_signals  # noqa: F401  (flusher of worker processes)


class PortalAppConfig(AppConfig):
    """What an app declares to plug its portal pages, navigation entry and partner API into the platform.

    `core` never imports the apps that plug in (`ml`, the domains): `core.urls` mounts and
    `core.portal.context_processors` lists whatever installed config subclasses this one.

    Attributes:
        portal_urls: dotted URL module of the portal pages, or "" for none.
        portal_prefix: where they are mounted, relative to the site root ("models/").
        api_urls: dotted URL module of the partner API, or "" for none.
        api_prefix: where it is mounted ("api/v1/ml/").
        nav_key / nav_label: the navigation entry (`nav_key` names it in templates and tests);
            an empty label, or no portal pages, keeps the app out of the navigation.
        nav_roles: membership roles (besides org_admin) that see the entry.
        nav_admin_only: only org admins see the entry (then `nav_roles` is ignored).
        nav_order: entries sort by it, then by INSTALLED_APPS order. Domains use 100, the
            platform's admin pages (models 200, then API keys and Audit) come after.
    """

    default = False  # subclasses say `default = True`; this base is never an app of its own
    portal_urls: ClassVar[str] = ""
    portal_prefix: ClassVar[str] = ""
    api_urls: ClassVar[str] = ""
    api_prefix: ClassVar[str] = ""
    nav_key: ClassVar[str] = ""
    nav_label: ClassVar[str] = ""
    nav_roles: ClassVar[tuple[str, ...]] = ()
    nav_admin_only: ClassVar[bool] = False
    nav_order: ClassVar[int] = 100

    def portal_url_prefix(self) -> str:
        return self.portal_prefix

    def api_url_prefix(self) -> str:
        return self.api_prefix

    def nav_entry_key(self) -> str:
        return self.nav_key or self.label

    def nav_url(self) -> str:
        """The navigation link: the root of the app's portal pages."""
        return "/" + self.portal_url_prefix()

    def nav_roles_allowed(self) -> tuple[str, ...]:
        return self.nav_roles

    def nav_visible_to(self, actor: Actor) -> bool:
        """Whether `actor` sees this app's navigation entry (org admins see every entry)."""
        if not (self.nav_label and self.portal_urls):
            return False
        if actor.is_org_admin:
            return True
        return not self.nav_admin_only and actor.role in self.nav_roles_allowed()


class DomainAppConfig(PortalAppConfig):
    """What a domain app (finance, traffic, ...) declares to plug into the platform.

    A domain is a `PortalAppConfig` whose URLs follow from its name: portal pages under
    `/portal/<domain>/`, partner API under `/api/v1/<domain>/`; the navigation entry is
    keyed by the domain. Demo seeding also iterates over these configs.

    Attributes:
        domain: the API-key scope and URL segment (`/api/v1/<domain>/`, `/portal/<domain>/`).
        roles: membership roles (besides org_admin) that see this domain in the portal.
        nav_label: the portal navigation entry; empty hides the domain from navigation.
        api_urls / portal_urls: dotted URL modules, or "" when the app has none yet.
    """

    default = False
    domain: ClassVar[str] = ""
    roles: ClassVar[tuple[str, ...]] = ()

    def portal_url_prefix(self) -> str:
        return f"portal/{self.domain}/"

    def api_url_prefix(self) -> str:
        return f"api/v1/{self.domain}/"

    def nav_entry_key(self) -> str:
        return self.domain

    def nav_roles_allowed(self) -> tuple[str, ...]:
        return self.roles

    def seed_demo(self, *, org: Organization, stdout: object) -> None:
        """Create demo data/models for `org`; must be idempotent. Default: nothing."""


def portal_app_configs() -> list[PortalAppConfig]:
    """Every installed app that plugs into the portal/API, in navigation order."""
    configs = [config for config in apps.get_app_configs() if isinstance(config, PortalAppConfig)]
    return sorted(configs, key=lambda config: config.nav_order)  # stable: INSTALLED_APPS order within a rank


def domain_app_configs() -> list[DomainAppConfig]:
    return [config for config in apps.get_app_configs() if isinstance(config, DomainAppConfig)]
