"""Who is acting: a portal user in one organization, an API key, or the system (a worker)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.errors import PermissionDenied
from core.tenancy.choices import ROLE_SCOPES, Role, Scope

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from core.tenancy.models import ApiKey, Organization


@dataclass(frozen=True)
class Actor:
    """The principal behind a request or a job, always inside one organization."""

    organization: Organization
    user: User | None = None
    api_key: ApiKey | None = None
    role: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    # a system outside Tessera acting for the organization (a modality sending over DICOM):
    # neither user nor key; its label is what audit rows record as the actor
    external_label: str = ""

    @classmethod
    def for_user(cls, *, organization: Organization, user: User, role: str) -> Actor:
        return cls(organization=organization, user=user, role=role, scopes=ROLE_SCOPES.get(role, frozenset()))

    @classmethod
    def for_api_key(cls, api_key: ApiKey) -> Actor:
        return cls(organization=api_key.organization, api_key=api_key, scopes=frozenset(api_key.scopes))

    @classmethod
    def system(cls, organization: Organization, user: User | None = None) -> Actor:
        """A worker acting on behalf of whoever created the job."""
        return cls(organization=organization, user=user, role=Role.ORG_ADMIN, scopes=frozenset())

    @classmethod
    def for_external_system(cls, *, organization: Organization, label: str, scopes: frozenset[str]) -> Actor:
        """A registered external system (e.g. a DICOM node: `dicom-node:7:CT_ROOM3@10.0.0.5`)
        sending data into `organization`: no user, no API key, no role (never an org admin), only
        `scopes`. Audit rows name it by `label` (at most 150 characters)."""
        if not label:
            raise ValueError("An external system actor needs a label")
        return cls(organization=organization, scopes=frozenset(scopes), external_label=label[:150])

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def is_org_admin(self) -> bool:
        return self.role == Role.ORG_ADMIN

    def require_org_admin(self, action: str = "do this", *, key_scope: str = Scope.ML) -> None:
        """The one gate for admin-only actions (promotions, imports, training, policy changes).

        Portal users must be org admins; API keys (which have no role) must carry `key_scope`,
        the registry's `ml` scope by default. Raises PermissionDenied (403) otherwise.

        Args:
            action: what was refused, for the message ("promote models", "import weights").
            key_scope: the scope that stands for admin rights on an API key.
        """
        if self.api_key is not None:
            if not self.has_scope(key_scope):
                raise PermissionDenied(f"An API key needs the '{key_scope}' scope to {action}.")
        elif not self.is_org_admin:
            raise PermissionDenied(f"Only organization admins may {action}.")

    @property
    def label(self) -> str:
        if self.api_key is not None:
            return f"api-key:{self.api_key.prefix}"
        if self.user is not None:
            return self.user.get_username()
        if self.external_label:
            return self.external_label
        return "system"
