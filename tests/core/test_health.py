"""`/healthz`: 200 when database, broker and storage work; 503 naming the failing check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core import health
from core.celery import app

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker_folder(tmp_path: Path) -> Iterator[Path]:
    """The filesystem broker (the embedded default) pointed at this test's own folder."""
    folder = tmp_path / "broker"
    for name in ("queue", "control"):
        (folder / name).mkdir(parents=True)
    saved = {"broker_url": app.conf.broker_url, "broker_transport_options": app.conf.broker_transport_options}
    app.conf.update(
        broker_url="filesystem://",
        broker_transport_options={
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
        },
    )
    yield folder
    app.conf.update(saved)


def test_healthy(client: Any, broker_folder: Path) -> None:
    # when
    response = client.get("/healthz")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok",
        "broker": "ok",
        "storage": "ok",
    }
    assert "no-cache" in response["Cache-Control"]


def test_failing_database_is_503_and_named(client: Any, broker_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    def database_down() -> None:
        raise ConnectionError("could not connect to server")

    monkeypatch.setitem(health.CHECKS, "database", database_down)
    # when
    response = client.get("/healthz")
    # then
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"]["database"] == {"status": "error", "error": "ConnectionError: could not connect to server"}
    assert body["checks"]["broker"]["status"] == "ok"
    assert body["checks"]["storage"]["status"] == "ok"


def test_missing_filesystem_broker_folder_is_503(client: Any, broker_folder: Path) -> None:
    # given: the folder the web process and the worker exchange messages through is gone
    (broker_folder / "queue").rmdir()
    # when
    response = client.get("/healthz")
    # then
    assert response.status_code == 503
    check = response.json()["checks"]["broker"]
    assert check["status"] == "error"
    assert "queue" in check["error"]


def test_unwritable_storage_is_503(client: Any, broker_folder: Path, settings: Any, tmp_path: Path) -> None:
    # given: the artifact storage points at a path below a regular file
    from django.core.files.storage import storages

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": blocker / "artifacts"},
        },
    }
    storages._storages = {}  # type: ignore[attr-defined]  # storages' private per-process cache, reset so the test's STORAGES apply
    storages.backends = settings.STORAGES
    # when
    response = client.get("/healthz")
    # then
    assert response.status_code == 503
    assert response.json()["checks"]["storage"]["status"] == "error"


def test_healthz_only_answers_get(client: Any) -> None:
    assert client.post("/healthz").status_code == 405
