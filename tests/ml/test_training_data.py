"""The training seam: the domain's loader materialises a run's data; `ml` hands the kind that data
and, for a warm start, the loaded parent version; kinds never see the ORM or storage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from core.tenancy.actors import Actor
from ml.kinds import Reporter, Trained, TrainingRequest, register_kind, training_data_register, unregister_kind
from ml.services import model_version_import
from ml.training import training_run_create
from tests.ml.tiny_kind import TinyLogReg, state_dict_bytes

pytestmark = pytest.mark.django_db

KIND = "tests.seam_logreg"


class RecordingKind(TinyLogReg):
    """TinyLogReg that records what `train` was handed."""

    name = KIND

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    def train(self, *, data: Any, params: dict[str, Any], report: Reporter, parent: Any = None) -> Trained:
        scratch_file = data.get("scratch_file")
        self.received.append(
            {
                "data": dict(data),
                "scratch_file_exists": bool(scratch_file and Path(scratch_file).exists()),
                "parent_weight": None if parent is None else float(parent.weight[0, 0].detach()),
            }
        )
        return super().train(data=data, params=params, report=report, parent=parent)


@pytest.fixture
def kind() -> Iterator[RecordingKind]:
    recording = RecordingKind()
    register_kind(recording)
    yield recording
    unregister_kind(KIND)


def _run(org: Any, capture: Any, **kwargs: Any) -> Any:
    with capture(execute=True):
        run = training_run_create(
            actor=Actor.system(org),
            model_name="seam",
            kind=KIND,
            data={"dataset_id": 7},
            params={"epochs": 1, "steps_per_epoch": 5},
            **kwargs,
        )
    run.refresh_from_db()
    run.job.refresh_from_db()
    return run


def test_the_domains_loader_materialises_the_data_in_a_scratch_folder(org, kind, django_capture_on_commit_callbacks):
    # given: a loader that resolves the reference and writes a file into its scratch folder
    seen: list[TrainingRequest] = []

    def loader(request: TrainingRequest) -> dict[str, Any]:
        seen.append(request)
        materialised = request.scratch / "points.bin"
        materialised.write_bytes(b"x" * 10)
        return {"n": 40, "seed": int(request.data["dataset_id"]), "scratch_file": str(materialised)}

    training_data_register(kind=KIND, loader=loader)
    # when
    run = _run(org, django_capture_on_commit_callbacks)
    # then: the kind got the materialised data while the scratch file existed, and it is gone now
    assert run.job.status == "succeeded", run.job.error
    assert seen[0].organization == org
    assert seen[0].data == {"dataset_id": 7}
    assert kind.received[0]["data"]["n"] == 40
    assert kind.received[0]["scratch_file_exists"] is True
    assert not Path(kind.received[0]["data"]["scratch_file"]).exists()
    assert not seen[0].scratch.exists()


def test_a_warm_start_hands_the_kind_the_loaded_parent(org, kind, django_capture_on_commit_callbacks):
    # given: version 1 imported with weight 2.5
    upload = SimpleUploadedFile("weights.pt", state_dict_bytes((2.5, 2.5), 0.0))
    parent = model_version_import(actor=Actor.system(org), name="seam", kind=KIND, upload=upload)
    # when
    run = _run(org, django_capture_on_commit_callbacks, parent_version=parent)
    # then
    assert run.job.status == "succeeded", run.job.error
    assert kind.received[0]["parent_weight"] == 2.5
    assert run.version.parent_id == parent.pk


def test_without_a_parent_the_kind_gets_none(org, kind, django_capture_on_commit_callbacks):
    # when
    run = _run(org, django_capture_on_commit_callbacks)
    # then
    assert run.job.status == "succeeded", run.job.error
    assert kind.received[0]["parent_weight"] is None
