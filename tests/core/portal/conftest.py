"""Fixtures for the portal view tests: signed-in clients per role and a tiny real model kind."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

TINY_KIND = "tests.portal_tiny"


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


@pytest.fixture
def tiny_kind() -> Iterator[str]:
    """A minimal real ModelKind: a threshold classifier stored as JSON."""
    from ml.kinds import ModelKind, Trained, register_kind, unregister_kind

    class TinyThreshold(ModelKind):
        name = TINY_KIND
        artifact_format = "json"

        def save(self, trained: Trained, directory: Path) -> None:
            (directory / "model.json").write_text(json.dumps(trained.model))

        def load(self, directory: Path, *, device: str, half: bool = False) -> Any:
            return json.loads((directory / "model.json").read_text())

        def predict(self, loaded: Any, inputs: Sequence[Any], **options: Any) -> list[Any]:
            return [int(x >= loaded["threshold"]) for x in inputs]

    register_kind(TinyThreshold())
    yield TINY_KIND
    unregister_kind(TINY_KIND)


@pytest.fixture
def make_model_version(tiny_kind: str, tmp_path: Path) -> Callable[..., Any]:
    """`make_model_version(org, name, threshold, metrics)` → a new stored version of model `name`."""
    from core.tenancy.actors import Actor
    from ml.choices import VersionSource
    from ml.kinds import Trained, get_kind
    from ml.services import model_version_create, registered_model_ensure

    def make(org: Any, name: str = "tiny", threshold: float = 0.5, metrics: dict[str, Any] | None = None) -> Any:
        actor = Actor.system(org)
        model = registered_model_ensure(actor=actor, name=name, kind=tiny_kind)
        directory = Path(tempfile.mkdtemp(dir=tmp_path))
        get_kind(tiny_kind).save(Trained(model={"threshold": threshold}), directory)
        return model_version_create(
            actor=actor,
            registered_model=model,
            directory=directory,
            source=VersionSource.TRAINED,
            metrics=metrics or {"accuracy": 0.9},
            params={"threshold": threshold},
        )

    return make
