"""Training image classifiers on the archive's labelled images: the service and label CSV parsing.

`classifier_training_start` validates everything a run needs before anything is stored — the
parameters (`apps.medical.ml.classifier_params`), the labels and classes, every UID against the
organization's archive, enough patients per class for a split by patient, the model name's kind
and the base version for fine-tuning — then creates the registry's `TrainingRun` (a Job on the
`training` queue, enqueued on commit) with the audit row. The job materialises the images with
`apps.medical.training_data.classifier_training_data` and trains the `medical.image_classifier`
kind.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from apps.medical.dicom_files import is_valid_uid
from apps.medical.ml import MAX_CLASSES, MODEL_KIND, classifier_params
from apps.medical.training_data import label_resolution, resolution_check
from core.audit.services import audit_record
from core.errors import Conflict, PayloadTooLarge, ValidationFailed
from core.tenancy.actors import Actor
from core.tenancy.choices import Scope
from ml.models import ModelVersion, RegisteredModel, TrainingRun
from ml.training import training_run_create

MAX_LABELS = 100_000
MAX_LABEL_LENGTH = 100
MAX_LABELS_FILE_BYTES = 20 << 20
# parameters a fine-tuning run takes from its parent unless the request sets them
INHERITED_FROM_PARENT = ("input_size", "window_center", "window_width", "normalise")


def labels_csv_parse(upload: UploadedFile) -> list[dict[str, str]]:
    """`[{"uid", "label"}]` from a CSV with the header `uid,label` (UTF-8, a BOM allowed).

    Raises:
        PayloadTooLarge: the file is over 20 MiB.
        ValidationFailed: not UTF-8, a missing header, a row without both values (naming the line).
    """
    if (upload.size or 0) > MAX_LABELS_FILE_BYTES:
        raise PayloadTooLarge("The labels file is larger than 20 MiB.", fields={"labels_file": ["Too large."]})
    raw = upload.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed("The labels file is not UTF-8 text.", fields={"labels_file": ["Not UTF-8."]}) from exc
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    columns = [column.strip().lower() for column in header or []]
    if "uid" not in columns or "label" not in columns:
        raise ValidationFailed(
            "The labels file needs a header row with the columns uid and label.",
            fields={"labels_file": ["Missing the header uid,label."]},
        )
    uid_at, label_at = columns.index("uid"), columns.index("label")
    labels, errors = [], []
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(uid_at, label_at) or not row[uid_at].strip() or not row[label_at].strip():
            errors.append(f"Line {line}: needs a uid and a label.")
            continue
        labels.append({"uid": row[uid_at].strip(), "label": row[label_at].strip()})
    if errors:
        raise ValidationFailed("The labels file has bad rows.", fields={"labels_file": errors[:50]})
    return labels


def _labels_check(labels: Sequence[Mapping[str, Any]], classes: Sequence[str] | None) -> list[str]:
    """The classes in output order; `ValidationFailed` for malformed labels or classes."""
    if not labels:
        raise ValidationFailed("Give at least one label.", fields={"labels": ["Empty."]})
    if len(labels) > MAX_LABELS:
        raise ValidationFailed(f"At most {MAX_LABELS} labels per run.", fields={"labels": ["Too many labels."]})
    errors = []
    for position, item in enumerate(labels):
        uid, label = item.get("uid"), item.get("label")
        if not isinstance(uid, str) or not is_valid_uid(uid):
            errors.append(f"Item {position}: {uid!r} is not a DICOM UID.")
        if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL_LENGTH:
            errors.append(f"Item {position}: the label must be 1 to {MAX_LABEL_LENGTH} characters.")
    if errors:
        raise ValidationFailed("Malformed labels.", fields={"labels": errors[:50]})
    used = sorted({str(item["label"]) for item in labels})
    if classes is None:
        ordered = used
    else:
        ordered = [str(name) for name in classes]
        if len(set(ordered)) != len(ordered):
            raise ValidationFailed("Classes must be distinct.", fields={"classes": ["Duplicate class names."]})
        outside = [name for name in used if name not in ordered]
        if outside:
            raise ValidationFailed(
                "Some labels are not among the classes.",
                code="label_not_in_classes",
                fields={"labels": [f"Label {name!r} is not one of the classes." for name in outside]},
            )
    if len(ordered) < 2:
        raise ValidationFailed(
            "A classifier needs at least two classes.", code="too_few_classes", fields={"classes": ["At least two."]}
        )
    if len(ordered) > MAX_CLASSES:
        raise ValidationFailed(f"At most {MAX_CLASSES} classes.", fields={"classes": ["Too many classes."]})
    return ordered


def _parent_version(*, actor: Actor, model_name: str, number: int) -> ModelVersion:
    version = (
        ModelVersion.objects.select_related("registered_model")
        .filter(registered_model__organization=actor.organization, registered_model__name=model_name, number=number)
        .first()
    )
    if version is None:
        raise ValidationFailed(
            f"Model {model_name!r} has no version {number} to fine-tune from.",
            code="unknown_base_version",
            fields={"base_version": [f"No version {number} of {model_name!r}."]},
        )
    if version.kind != MODEL_KIND:
        raise ValidationFailed(
            "Fine-tuning starts from an image classifier version.", fields={"base_version": ["Another kind."]}
        )
    return version


@transaction.atomic
def classifier_training_start(
    *,
    actor: Actor,
    model_name: str,
    labels: Sequence[Mapping[str, Any]],
    classes: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    promote: bool = False,
    base_version: int | None = None,
) -> TrainingRun:
    """Validate a classifier training request and enqueue it (see the module docstring).

    Portal users must be org admins; API keys need the `medical` scope (and `ml` to promote on
    creation, like every promotion).

    Raises:
        ValidationFailed: bad parameters, labels, classes, UIDs, too few patients, a bad base version.
        Conflict: `model_name` is a model of another kind.
    """
    actor.require_org_admin("train classifiers", key_scope=Scope.MEDICAL)
    if promote:
        actor.require_org_admin("promote a model on creation")
    ordered = _labels_check(labels, classes)
    existing = RegisteredModel.objects.filter(organization=actor.organization, name=model_name).first()
    if existing is not None and existing.kind != MODEL_KIND:
        raise Conflict(
            f"Model {model_name!r} is of kind {existing.kind}, not {MODEL_KIND}.",
            code="kind_mismatch",
            fields={"model": ["Kind differs."]},
        )
    requested = dict(params or {})
    parent = None
    if base_version is not None:
        parent = _parent_version(actor=actor, model_name=model_name, number=base_version)
        schema = parent.input_schema or {}
        if list(schema.get("classes") or []) != ordered:
            raise ValidationFailed(
                "Fine-tuning keeps the base version's classes, in order.",
                code="classes_differ",
                fields={"classes": [f"Version {base_version} has the classes {schema.get('classes')}."]},
            )
        if requested.get("architecture") not in (None, schema.get("architecture")):
            raise ValidationFailed(
                "Fine-tuning keeps the base version's architecture.",
                fields={"architecture": [f"Version {base_version} is a {schema.get('architecture')}."]},
            )
        requested["architecture"] = schema.get("architecture")
        for name in INHERITED_FROM_PARENT:
            requested.setdefault(name, (schema.get("preprocessing") or {}).get(name))
        if requested.get("window_center") is None and requested.get("window_width") is None:
            requested.pop("window_center", None)
            requested.pop("window_width", None)
        requested["base_version_id"] = parent.pk
    resolved = classifier_params(requested)
    clean_labels = [{"uid": str(item["uid"]), "label": str(item["label"])} for item in labels]
    resolution = label_resolution(org=actor.organization, labels=clean_labels)
    resolution_check(resolution, ordered)
    run_params = resolved.as_dict()
    if parent is not None:
        run_params["base_version_id"] = parent.pk
    run = training_run_create(
        actor=actor,
        model_name=model_name,
        kind=MODEL_KIND,
        data={"labels": clean_labels, "classes": ordered},
        params=run_params,
        promote=promote,
        parent_version=parent,
    )
    audit_record(
        actor=actor,
        action="medical.training.start",
        obj=run,
        details={
            "model": model_name,
            "classes": ordered,
            "labels": len(clean_labels),
            "instances": len(resolution.instances),
            "base_version": base_version,
            "promote": promote,
        },
    )
    return run
