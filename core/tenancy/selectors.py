"""Reads for tenancy objects. Org-scoped: another organization's row is 'not found'."""

from __future__ import annotations

import hmac
from typing import Any

from django.db.models import QuerySet

from core.errors import NotFound
from core.tenancy.models import ApiKey, Membership, Organization
from core.tenancy.services import api_key_hash


def organization_get_by_slug(*, slug: str) -> Organization:
    try:
        return Organization.objects.get(slug=slug)
    except Organization.DoesNotExist as exc:
        raise NotFound(f"Organization {slug!r} not found.") from exc


def memberships_for_user(*, user: Any) -> QuerySet[Membership]:
    return Membership.objects.filter(user_id=user.pk).select_related("organization").order_by("organization__slug")


def api_key_list(*, org: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=org)


def api_key_get(*, org: Organization, key_id: int) -> ApiKey:
    try:
        return ApiKey.objects.get(organization=org, pk=key_id)
    except ApiKey.DoesNotExist as exc:
        raise NotFound("API key not found.") from exc


def api_key_from_raw(*, raw_key: str) -> ApiKey | None:
    """The key row matching `raw_key` (active or not), or None when it matches nothing."""
    parts = raw_key.split("_", 2)  # the secret itself may contain "_"
    if len(parts) != 3 or parts[0] != "tsk" or not parts[1] or not parts[2]:
        return None
    api_key = ApiKey.objects.select_related("organization").filter(prefix=parts[1]).first()
    if api_key is None:
        return None
    if not hmac.compare_digest(api_key.key_hash, api_key_hash(raw_key)):
        return None
    return api_key
