"""Helpers of the classifier tests: MedNIST's real images (DICOM) stored in an organization's archive.

MedNIST (`../shared/data/medical_mednist`): 600 real 64x64 images wrapped as DICOM, 100 per
class, one series per class, one Patient ID per file. Never copied into the repository; tests
that need it skip when it is absent.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest

from fixtures.mednist import mednist_pick
from tests.conftest import SHARED_DATA

MEDNIST = SHARED_DATA / "medical_mednist"


def mednist_files(per_class: int, classes: tuple[str, ...] | None = None) -> list[tuple[Path, str]]:
    """The first `per_class` files of each class (labels.csv order), as (path, class)."""
    if not (MEDNIST / "labels.csv").exists():
        pytest.skip("MedNIST (../shared/data/medical_mednist) is not present")
    return mednist_pick(MEDNIST, per_class, classes)


def archive_store(org: Any, paths: list[Path], scratch: Path) -> list[Any]:
    """Store DICOM files in `org`'s archive through the archive's own batch service; the Instances."""
    from apps.medical.choices import ReceivedVia
    from apps.medical.services import ReceivedFile, StoreOutcome, instances_store_batch
    from core.tenancy.actors import Actor

    scratch.mkdir(parents=True, exist_ok=True)
    received = []
    for position, path in enumerate(paths):
        copy = scratch / f"{position}.dcm"  # the store moves its input into storage
        shutil.copyfile(path, copy)
        data = copy.read_bytes()
        received.append(ReceivedFile(path=copy, sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    outcomes = instances_store_batch(actor=Actor.system(org), files=received, received_via=ReceivedVia.UPLOAD)
    instances = [outcome.instance for outcome in outcomes if isinstance(outcome, StoreOutcome)]
    assert len(instances) == len(paths), outcomes
    return instances


def series_labels(instances: list[Any], labels: list[str]) -> list[dict[str, str]]:
    """One label per series (MedNIST has one series per class)."""
    by_series = {instance.series.series_instance_uid: label for instance, label in zip(instances, labels, strict=True)}
    return [{"uid": uid, "label": label} for uid, label in sorted(by_series.items())]


def instance_labels(instances: list[Any], labels: list[str]) -> list[dict[str, str]]:
    return [{"uid": i.sop_instance_uid, "label": label} for i, label in zip(instances, labels, strict=True)]


def train_request(api: Any, body: dict[str, Any]) -> Any:
    return api.post("/api/v1/medical/training-runs/", body, format="json")


def run_detail(api: Any, run_id: int) -> dict[str, Any]:
    response = api.get(f"/api/v1/medical/training-runs/{run_id}/")
    assert response.status_code == 200, response.content
    return response.json()
