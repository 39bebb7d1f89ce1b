"""Training a traffic detector from an uploaded YOLO dataset zip (from scratch or fine-tuning).

The service validates and stores the zip and creates an `ml` training run whose `data` is the
stored zip's reference; the `ml.train` job materialises it with the traffic loader
(`apps.traffic.datasets.detector_training_data`) and hands the loaded parent version, when
fine-tuning, to `YoloDetector.train`.
"""

from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from apps.traffic.choices import DOMAIN, MODEL_KIND
from apps.traffic.datasets import dataset_validate
from core.audit.services import audit_record
from core.storage import media_name, scratch_file, stored_files
from core.tenancy.actors import Actor
from ml.models import TrainingRun
from ml.selectors import model_version_get, registered_model_get
from ml.training import training_run_create


def detector_training_start(
    *,
    actor: Actor,
    upload: UploadedFile,
    model_name: str,
    epochs: int,
    imgsz: int,
    batch: int,
    base_version: int | None = None,
    architecture: str | None = None,
    promote: bool = False,
) -> TrainingRun:
    """Validate a YOLO dataset zip, store it and enqueue training on the `training` queue.

    `base_version` (the API's field) fine-tunes that version of `model_name`: it becomes the
    run's `parent_version`, and is recorded in the run's params as before (`base_version`,
    `base_version_id`). A model of another domain is "not found".
    """
    actor.require_org_admin("train models")
    parent = None
    if base_version is not None:
        registered_model_get(org=actor.organization, name=model_name, domain=DOMAIN)
        parent = model_version_get(org=actor.organization, name=model_name, number=base_version)
    upload.seek(0)
    with scratch_file(upload.chunks(), suffix=".zip") as local:
        summary = dataset_validate(local)
        with stored_files() as files:
            with local.open("rb") as handle:
                dataset_name = files.save(
                    media_name(org_id=actor.organization.pk, domain=DOMAIN, folder="datasets", suffix=".zip"), handle
                )
            params: dict[str, Any] = {"epochs": epochs, "imgsz": imgsz, "batch": batch}
            if parent is not None:
                params["base_version_id"] = parent.pk
                params["base_version"] = parent.number
            else:
                params["architecture"] = architecture or "yolo11n"
            with transaction.atomic():
                run = training_run_create(
                    actor=actor,
                    model_name=model_name,
                    kind=MODEL_KIND,
                    data={"dataset": dataset_name, "sha256": summary.sha256, "summary": summary.as_json()},
                    params=params,
                    promote=promote,
                    parent_version=parent,
                )
                audit_record(
                    actor=actor,
                    action="traffic.dataset.upload",
                    obj=run,
                    details={"dataset": dataset_name, "sha256": summary.sha256, "images": summary.train_images},
                )
    return run
