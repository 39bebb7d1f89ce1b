"""Fixtures for the portal view tests: signed-in clients per role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client


@pytest.fixture
def client_for(make_member: Callable[..., Any]) -> Callable[..., Client]:
    """`client_for(org, role)` → a Django test client signed in as a new member with `role`."""

    def make(org: Any, role: str = "org_admin") -> Client:
        client = Client()
        client.force_login(make_member(org, role=role))
        return client

    return make


@pytest.fixture
def admin_client_acme(client_for: Callable[..., Client], org: Any) -> Client:
    return client_for(org, "org_admin")
