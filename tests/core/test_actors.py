"""`Actor.require_org_admin`: the one gate for admin-only actions, for portal users and API keys."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from core.errors import PermissionDenied
from core.tenancy.actors import Actor
from core.tenancy.choices import Role


def _user_actor(role: str) -> Actor:
    return Actor(organization=SimpleNamespace(pk=1), user=SimpleNamespace(), role=role)  # type: ignore[arg-type]  # a stand-in: the gate reads no model field


def _key_actor(*scopes: str) -> Actor:
    return Actor(organization=SimpleNamespace(pk=1), api_key=SimpleNamespace(), scopes=frozenset(scopes))  # type: ignore[arg-type]  # a stand-in: the gate reads no model field


@pytest.mark.parametrize("role", [r for r in Role.values if r != Role.ORG_ADMIN])
def test_members_other_than_org_admins_are_refused(role):
    with pytest.raises(PermissionDenied, match="Only organization admins may promote models"):
        _user_actor(role).require_org_admin("promote models")


def test_org_admins_pass():
    _user_actor(Role.ORG_ADMIN).require_org_admin("promote models")


def test_api_keys_need_the_admin_scope():
    with pytest.raises(PermissionDenied, match="'ml' scope"):
        _key_actor("finance").require_org_admin("promote models")
    _key_actor("finance", "ml").require_org_admin("promote models")
    _key_actor("finance").require_org_admin("train", key_scope="finance")
