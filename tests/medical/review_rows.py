"""Rows for the clinician review tests: studies stored through the archive's services, and an AI
analysis with its findings and saliency PNG written as the analysis job would leave them.

The analyses are real rows (a registered `medical.image_classifier` model, a version, a Job that
succeeded) so the reports and the worklist are tested without waiting for a trained classifier;
the classifier itself is tested in tests/medical/test_classifier*.py.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from apps.medical import services
from apps.medical.choices import FindingLevel, ReceivedVia
from apps.medical.models import Analysis, AnalysisFinding, Instance, Study
from apps.medical.saliency import overlay_png
from core.jobs.choices import JobStatus
from core.jobs.models import Job
from core.tenancy.actors import Actor
from ml.models import ModelVersion, RegisteredModel

CLASSES = ("AbdomenCT", "BreastMRI", "ChestCT", "CXR", "Hand", "HeadCT")


def store_files(org: Any, paths: Sequence[Path], *, tmp: Path) -> list[Instance]:
    """Store DICOM files into `org`'s archive (as a portal upload would); returns the instances."""
    received = []
    for number, path in enumerate(paths):
        copy = tmp / f"upload-{number}-{path.name}"
        shutil.copyfile(path, copy)
        data = copy.read_bytes()
        received.append(services.ReceivedFile(path=copy, sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    outcomes = services.instances_store_batch(actor=Actor.system(org), files=received, received_via=ReceivedVia.UPLOAD)
    instances = []
    for outcome in outcomes:
        assert isinstance(outcome, services.StoreOutcome), outcome
        assert outcome.instance is not None
        instances.append(outcome.instance)
    return instances


def model_version_make(org: Any, *, name: str = "mednist", classes: Sequence[str] = CLASSES) -> ModelVersion:
    model, _ = RegisteredModel.objects.get_or_create(
        organization=org, name=name, defaults={"kind": "medical.image_classifier"}
    )
    number = model.versions.count() + 1
    return ModelVersion.objects.create(
        registered_model=model,
        number=number,
        kind=model.kind,
        artifact_format="torch-state-dict",
        artifact_path=f"{org.pk}/{name}/{number}",
        artifact_sha256=hashlib.sha256(f"{name}-{number}".encode()).hexdigest(),
        input_schema={"classes": list(classes)},
        source="trained",
    )


def analysis_make(
    org: Any,
    study: Study,
    *,
    label: str = "ChestCT",
    probabilities: Mapping[str, float] | None = None,
    status: str = JobStatus.SUCCEEDED,
    version: ModelVersion | None = None,
    saliency: bool = True,
    instance: Instance | None = None,
) -> Analysis:
    """An analysis of `study` as the job leaves it: study-level outcome, a series finding and an
    instance finding (with a saliency PNG at the image's size) for `instance` (default: the first)."""
    version = version or model_version_make(org)
    probabilities = dict(probabilities or {label: 0.82, **{c: 0.18 / 5 for c in CLASSES if c != label}})
    job = Job.objects.create(
        organization=org,
        kind="medical.analysis",
        domain="medical",
        queue="inference",
        status=status,
        progress=1.0 if status == JobStatus.SUCCEEDED else 0.0,
        finished_at=timezone.now() if status == JobStatus.SUCCEEDED else None,
    )
    done = status == JobStatus.SUCCEEDED
    analysis = Analysis.objects.create(
        organization=org,
        study=study,
        job=job,
        model_version=version,
        alias="production",
        suggested_label=label if done else "",
        probability=probabilities[label] if done else None,
        probabilities=probabilities if done else {},
        completed_at=timezone.now() if done else None,
    )
    if not done:
        return analysis
    instance = instance or Instance.objects.filter(series__study=study).order_by("series_id", "instance_number").first()
    assert instance is not None
    AnalysisFinding.objects.create(
        organization=org,
        analysis=analysis,
        level=FindingLevel.SERIES,
        series=instance.series,
        suggested_label=label,
        probability=probabilities[label],
        probabilities=probabilities,
    )
    saliency_name = ""
    if saliency:
        rows, columns = instance.rows or 64, instance.columns or 64
        yy, xx = np.mgrid[0:rows, 0:columns]
        heat = np.exp(-(((yy - rows / 3) ** 2) + ((xx - columns / 2) ** 2)) / (2 * (min(rows, columns) / 6) ** 2))
        saliency_name = default_storage.save(
            f"medical/saliency/{org.pk}/{analysis.pk}/{instance.sop_instance_uid}.png",
            ContentFile(overlay_png(heat.astype(np.float32))),
        )
    AnalysisFinding.objects.create(
        organization=org,
        analysis=analysis,
        level=FindingLevel.INSTANCE,
        series=instance.series,
        instance=instance,
        frame_number=1 if (instance.number_of_frames or 1) > 1 else None,
        suggested_label=label,
        probability=probabilities[label],
        probabilities=probabilities,
        saliency_file=saliency_name,
    )
    return analysis
