"""Shared fixtures: organizations, members per role, API keys, and API clients.

Fast unit/API tests run on SQLite with jobs executed inline (eager Celery); integration
tests (tests/integration) run on PostgreSQL with Redis and a real worker process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.servers.basehttp import WSGIServer
from django.test.testcases import LiveServerThread

os.environ.setdefault("DJANGO_ENV", "test")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Real-services fixtures (real_services, real_worker, real_worker_factory) for `integration` tests.
pytest_plugins = ["tests.realservices"]


class _SerialWSGIServer(WSGIServer):
    """Django's WSGI server without a thread per request (it answers `Connection: close`)."""

    def __init__(self, *args: Any, connections_override: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # the live server thread applies the overrides itself


@pytest.fixture(scope="session", autouse=True)
def _serial_live_server() -> Iterator[None]:
    """Every live server of the run answers one request at a time (the test database is SQLite
    in memory, one connection shared with the server thread; parallel requests of a browser
    writing on it fail with "table is locked" or "SQL statements in progress"). Here at the
    root, not in tests/browser: pytest-django's `live_server` lives for the whole session, and
    tests/api and tests/medical start it before the first browser test runs."""
    original = LiveServerThread.server_class
    LiveServerThread.server_class = _SerialWSGIServer  # type: ignore[assignment]  # a WSGIServer, as Django's LiveServerThread takes
    yield
    LiveServerThread.server_class = original


@pytest.fixture(autouse=True)
def _isolated_var(request: pytest.FixtureRequest, settings: Any, tmp_path: Path) -> Iterator[None]:
    """Every test gets its own media/artifact/cache folders and runs jobs inline.

    Tests marked `integration` publish jobs to the real broker instead (a real worker runs them).
    """
    from django.core.files.storage import storages

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.MODEL_CACHE_DIR = tmp_path / "model-cache"
    settings.SCRATCH_DIR = tmp_path / "scratch"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "media"},
        },
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "artifacts"},
        },
    }
    storages._storages = {}  # type: ignore[attr-defined]  # storages' private per-process cache, reset so each test's STORAGES apply
    storages.backends = settings.STORAGES
    from core.celery import app

    app.conf.task_always_eager = request.node.get_closest_marker("integration") is None
    app.conf.task_eager_propagates = True
    from apps.retail.selectors import popular_cache_clear, serving_settings_clear
    from ml.runtime import cache_clear

    for clear in (cache_clear, popular_cache_clear, serving_settings_clear):  # per-process caches keyed by pk
        clear()
    yield
    cache_clear()
    storages._storages = {}  # type: ignore[attr-defined]  # storages' private per-process cache, reset so each test's STORAGES apply


@pytest.fixture
def make_org(db: None) -> Callable[..., Any]:
    from core.tenancy.services import organization_create

    def make(slug: str = "acme", name: str | None = None) -> Any:
        return organization_create(slug=slug, name=name or slug.title())[0]

    return make


@pytest.fixture
def org(make_org: Callable[..., Any]) -> Any:
    return make_org("acme")


@pytest.fixture
def other_org(make_org: Callable[..., Any]) -> Any:
    return make_org("globex")


@pytest.fixture
def make_member(db: None) -> Callable[..., Any]:
    from core.tenancy.services import user_create

    def make(org: Any, role: str = "org_admin", username: str | None = None, password: str = "pass-1234") -> Any:
        user, _ = user_create(org=org, username=username or f"{org.slug}-{role}", role=role, password=password)
        return user

    return make


@pytest.fixture
def make_api_key(db: None) -> Callable[..., str]:
    """Returns the raw key string of a new key of `org` with `scopes`."""
    from core.tenancy.actors import Actor
    from core.tenancy.services import api_key_create

    def make(
        org: Any, scopes: tuple[str, ...] = ("medical", "finance", "retail", "traffic", "ml"), **kwargs: Any
    ) -> str:
        return api_key_create(actor=Actor.system(org), name="test", scopes=scopes, **kwargs).raw_key

    return make


@pytest.fixture
def api_client_for(make_api_key: Callable[..., str]) -> Callable[..., Any]:
    """`api_client_for(org, scopes=(...))` → a DRF APIClient sending that org's Bearer key."""
    from rest_framework.test import APIClient

    def make(org: Any, scopes: tuple[str, ...] = ("medical", "finance", "retail", "traffic", "ml")) -> Any:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(org, scopes)}")
        return client

    return make


@pytest.fixture
def api(api_client_for: Callable[..., Any], org: Any) -> Any:
    """An API client of organization `acme` with every scope."""
    return api_client_for(org)


@pytest.fixture
def client_for(make_member: Callable[..., Any]) -> Callable[..., Any]:
    """`client_for(org, role)` → a Django test client signed in as a new member with `role`."""
    from django.test import Client

    def make(org: Any, role: str = "org_admin") -> Client:
        client = Client()
        client.force_login(make_member(org, role=role))
        return client

    return make


@pytest.fixture
def admin_client_acme(client_for: Callable[..., Any], org: Any) -> Any:
    """An org admin of `acme`, signed in to the portal."""
    return client_for(org, "org_admin")


@pytest.fixture
def other_api(api_client_for: Callable[..., Any], other_org: Any) -> Any:
    """An API client of organization `globex` with every scope (for tenancy tests)."""
    return api_client_for(other_org)


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert the API error shape and status; returns the `error` object."""
    assert response.status_code == status, (response.status_code, getattr(response, "content", b"")[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "fields"} <= set(body["error"]), body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]
