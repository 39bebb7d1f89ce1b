"""Writes for organizations, memberships and API keys."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from core.audit.services import audit_record
from core.errors import ValidationFailed
from core.tenancy.actors import Actor
from core.tenancy.choices import Role, Scope
from core.tenancy.models import ApiKey, Membership, Organization

API_KEY_PREFIX = "tsk"


def api_key_hash(raw_key: str) -> str:
    """SHA-256 of the whole key. Keys are 32 random bytes, so a fast hash is enough."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


@transaction.atomic
def organization_create(*, slug: str, name: str) -> tuple[Organization, bool]:
    """Create the organization, or return the existing one with that slug (idempotent)."""
    org, created = Organization.objects.get_or_create(slug=slug, defaults={"name": name})
    if created:
        audit_record(actor=Actor.system(org), action="core.organization.create", obj=org)
    return org, created


@transaction.atomic
def user_create(
    *, org: Organization, username: str, role: str, password: str | None = None, email: str = ""
) -> tuple[User, Membership]:
    """Create (or update) a user and their membership with `role` in `org`."""
    if role not in Role.values:
        raise ValidationFailed(f"Unknown role {role!r}.", fields={"role": [f"Choose one of {', '.join(Role.values)}."]})
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username, defaults={"email": email})
    if password:
        user.set_password(password)
        user.save(update_fields=["password"])
    elif created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    membership, _ = Membership.objects.update_or_create(organization=org, user=user, defaults={"role": role})
    audit_record(
        actor=Actor.system(org),
        action="core.membership.set",
        obj=membership,
        details={"username": username, "role": role},
    )
    return user, membership


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: `raw_key` exists only here and is shown to the user once."""

    api_key: ApiKey
    raw_key: str


@transaction.atomic
def api_key_create(
    *,
    actor: Actor,
    name: str,
    scopes: Iterable[str],
    expires_at: datetime | None = None,
) -> NewApiKey:
    scopes = sorted(set(scopes))
    unknown = [scope for scope in scopes if scope not in Scope.values]
    if unknown or not scopes:
        raise ValidationFailed(
            "Invalid scopes.",
            fields={"scopes": [f"Choose from {', '.join(Scope.values)}; got {', '.join(unknown) or 'none'}."]},
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed("Expiry must be in the future.", fields={"expires_at": ["Must be in the future."]})
    prefix = secrets.token_hex(6)
    raw_key = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        organization=actor.organization,
        name=name or "API key",
        prefix=prefix,
        key_hash=api_key_hash(raw_key),
        scopes=scopes,
        expires_at=expires_at,
        created_by=actor.user,
    )
    audit_record(
        actor=actor, action="core.api_key.create", obj=api_key, details={"scopes": scopes, "name": api_key.name}
    )
    return NewApiKey(api_key=api_key, raw_key=raw_key)


@transaction.atomic
def api_key_revoke(*, actor: Actor, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at", "updated_at"])
        audit_record(actor=actor, action="core.api_key.revoke", obj=api_key)
    return api_key


def api_key_touch(*, api_key: ApiKey, min_interval_seconds: int = 60) -> None:
    """Record `last_used_at`, at most once a minute per key so hot paths do not write each request."""
    now = timezone.now()
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() >= min_interval_seconds:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


@transaction.atomic
def organization_update(*, actor: Actor, org: Organization, name: str) -> Organization:
    """Rename `org` (its slug is permanent: URLs and CLI scripts use it)."""
    if org.name != name:
        previous = org.name
        org.name = name
        org.save(update_fields=["name", "updated_at"])
        audit_record(actor=actor, action="core.organization.update", obj=org, details={"from": previous, "to": name})
    return org


@transaction.atomic
def membership_set(*, actor: Actor, user: User, role: str) -> Membership:
    """Give `user` `role` in the actor's organization (creating the membership if needed)."""
    if role not in Role.values:
        raise ValidationFailed(f"Unknown role {role!r}.", fields={"role": [f"Choose one of {', '.join(Role.values)}."]})
    membership, _ = Membership.objects.update_or_create(
        organization=actor.organization, user=user, defaults={"role": role}
    )
    audit_record(
        actor=actor,
        action="core.membership.set",
        obj=membership,
        details={"username": user.get_username(), "role": role},
    )
    return membership


@transaction.atomic
def membership_delete(*, actor: Actor, membership: Membership) -> None:
    """Remove `user` from the organization; the audit row keeps who it was."""
    if membership.organization_id != actor.organization.pk:
        raise ValidationFailed("Membership belongs to another organization.")
    details = {"username": membership.user.get_username(), "role": membership.role}
    object_id = membership.pk
    membership.delete()
    audit_record(
        actor=actor,
        action="core.membership.delete",
        object_type="core.membership",
        object_id=object_id,
        details=details,
    )
