"""Fixtures of the model registry tests: the tiny real kind, training it, importing it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.ml.tiny_kind import TINY_KIND, TinyLogReg, state_dict_bytes


@pytest.fixture
def tiny_kind() -> Iterator[TinyLogReg]:
    """`tests.tiny_logreg`, registered for one test."""
    from ml.kinds import register_kind, unregister_kind

    kind = TinyLogReg()
    register_kind(kind)
    yield kind
    unregister_kind(TINY_KIND)


@pytest.fixture
def ml_admin(org: Any, make_member: Callable[..., Any]) -> Any:
    """An org admin of `acme` (the user training runs are created by)."""
    return make_member(org, "org_admin", username="ml-admin")


@pytest.fixture
def train(tiny_kind: TinyLogReg, django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """`train(org, user=None, name="tiny", promote=False, seed=0)` → the finished TrainingRun.

    The run's job is sent on commit and runs inline (eager Celery), as a worker would run it.
    """
    from core.tenancy.actors import Actor
    from core.tenancy.choices import Role
    from ml.training import training_run_create

    def run(org: Any, *, user: Any = None, name: str = "tiny", promote: bool = False, seed: int = 0) -> Any:
        actor = Actor.for_user(organization=org, user=user, role=Role.ORG_ADMIN) if user else Actor.system(org)
        with django_capture_on_commit_callbacks(execute=True):
            training_run = training_run_create(
                actor=actor,
                model_name=name,
                kind=TINY_KIND,
                data={"n": 200, "seed": seed},
                params={"epochs": 4, "steps_per_epoch": 50},
                promote=promote,
            )
        training_run.refresh_from_db()
        training_run.job.refresh_from_db()
        assert training_run.job.status == "succeeded", training_run.job.error
        return training_run

    return run


@pytest.fixture
def import_version(tiny_kind: TinyLogReg) -> Callable[..., Any]:
    """`import_version(org, name="tiny", weight=(1, 1), bias=0)` → a ModelVersion (via the service)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from core.tenancy.actors import Actor
    from ml.services import model_version_import

    def make(org: Any, *, name: str = "tiny", weight: tuple[float, float] = (1.0, 1.0), bias: float = 0.0) -> Any:
        upload = SimpleUploadedFile("weights.pt", state_dict_bytes(weight, bias))
        actor = Actor.system(org)
        return model_version_import(actor=actor, name=name, kind=TINY_KIND, upload=upload)

    return make
