"""The classifier's training data: labelled UIDs of the archive → preprocessed images split by patient.

A training run's `data` is `{"labels": [{"uid", "label"}], "classes": [names in output order]}`
where each uid is a study, series or SOP instance UID of the organization's archive; a study or
series label applies to every image instance in it. `label_resolution` resolves the labels
(the training service validates with it before anything is stored, and the loader resolves
them again when the job runs: the archive may have changed meanwhile), and
`classifier_training_data` — the loader registered for `medical.image_classifier` — reads each
instance through Django storage, turns its frames into network inputs with the run's
`imaging.Preprocessing`, and splits them by patient.

The patient of an image is the instance's own Patient ID (DICOM JSON `00100020` in
`Instance.attributes`), falling back to the study's patient: one study may hold images sent
under different Patient IDs, and the archive's Study row keeps only the first. The split puts
every image of a patient on one side (no patient in both training and validation), stratified
by each patient's majority class and seeded.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydicom
from django.core.files.storage import default_storage

from apps.medical.imaging import ImageUnreadable, Preprocessing, dataset_inputs
from apps.medical.models import Instance, Series, Study
from core.errors import ValidationFailed
from core.tenancy.models import Organization
from ml.kinds import TrainingRequest

PATIENT_ID_TAG = "00100020"
MAX_TRAINING_BYTES = 4 << 30  # the materialised float32 inputs, all in memory
MAX_REPORTED_SKIPS = 20
MAX_LISTED_UIDS = 50


@dataclass
class ImageSet:
    """Preprocessed images of one side of the split."""

    inputs: np.ndarray  # (N, 1, S, S) float32
    labels: np.ndarray  # (N,) int64 class indices
    patients: list[str]
    sop_instance_uids: list[str]


@dataclass
class ClassifierTrainingData:
    """What `ImageClassifier.train` receives."""

    classes: list[str]
    preprocessing: Preprocessing
    train: ImageSet
    validation: ImageSet
    fingerprint: str
    summary: dict[str, Any]
    split: dict[str, Any]


@dataclass
class LabelledInstance:
    instance: Instance
    label: str
    patient: str


@dataclass
class LabelResolution:
    """Labels resolved against the archive."""

    instances: list[LabelledInstance] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    conflicts: dict[str, list[str]] = field(default_factory=dict)  # sop uid → labels

    def patients_per_class(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for item in self.instances:
            out[item.label].add(item.patient)
        return out


def _patient_of(instance: Instance) -> str:
    element = (instance.attributes or {}).get(PATIENT_ID_TAG) or {}
    values = element.get("Value") or []
    if values and str(values[0]).strip():
        return str(values[0]).strip()
    patient = instance.series.study.patient
    return patient.patient_id.strip() or f"patient-record-{patient.pk}"


def _is_image(instance: Instance) -> bool:
    # the index records Rows/Columns only for instances with pixel data; SRs and PRs have none
    return bool(instance.rows and instance.columns)


def label_resolution(*, org: Organization, labels: Sequence[Mapping[str, str]]) -> LabelResolution:
    """Resolve `[{"uid", "label"}]` to the organization's image instances.

    Another organization's UIDs are unknown here, like UIDs nobody stored. An instance labelled
    twice with the same label is one item; with different labels (say its study says A and the
    instance itself says B) it is a conflict.
    """
    by_uid: dict[str, set[str]] = defaultdict(set)
    for item in labels:
        by_uid[item["uid"]].add(item["label"])
    uids = list(by_uid)
    instances = Instance.objects.select_related("series__study__patient").filter(organization=org)
    study_uids = set(
        Study.objects.filter(organization=org, study_instance_uid__in=uids).values_list("study_instance_uid", flat=True)
    )
    series_uids = set(
        Series.objects.filter(organization=org, series_instance_uid__in=uids).values_list(
            "series_instance_uid", flat=True
        )
    )
    sop_uids = set(instances.filter(sop_instance_uid__in=uids).values_list("sop_instance_uid", flat=True))
    resolution = LabelResolution(unknown=[uid for uid in uids if uid not in study_uids | series_uids | sop_uids])
    found: dict[int, tuple[Instance, set[str]]] = {}

    def add(rows: Iterable[Instance], uid_of: Any) -> None:
        for instance in rows:
            if not _is_image(instance):
                continue
            entry = found.setdefault(instance.pk, (instance, set()))
            entry[1].update(by_uid[uid_of(instance)])

    if study_uids:
        add(
            instances.filter(series__study__study_instance_uid__in=study_uids),
            lambda i: i.series.study.study_instance_uid,
        )
    if series_uids:
        add(instances.filter(series__series_instance_uid__in=series_uids), lambda i: i.series.series_instance_uid)
    if sop_uids:
        add(instances.filter(sop_instance_uid__in=sop_uids), lambda i: i.sop_instance_uid)
    for instance, names in sorted(found.values(), key=lambda entry: entry[0].sop_instance_uid):
        if len(names) > 1:
            resolution.conflicts[instance.sop_instance_uid] = sorted(names)
            continue
        resolution.instances.append(
            LabelledInstance(instance=instance, label=next(iter(names)), patient=_patient_of(instance))
        )
    return resolution


def resolution_check(resolution: LabelResolution, classes: Sequence[str]) -> None:
    """`ValidationFailed` unless the resolved labels can train and validate a classifier.

    Needs: every UID known, no instance with two labels, at least two classes, and every class
    with image instances of at least two patients (so both sides of the split can hold it).
    """
    if resolution.unknown:
        listed = resolution.unknown[:MAX_LISTED_UIDS]
        raise ValidationFailed(
            f"{len(resolution.unknown)} UID(s) are not in this organization's archive.",
            code="unknown_uids",
            fields={"labels": [f"Unknown UID: {uid}" for uid in listed]},
        )
    if resolution.conflicts:
        raise ValidationFailed(
            f"{len(resolution.conflicts)} instance(s) have conflicting labels.",
            code="conflicting_labels",
            fields={
                "labels": [
                    f"{uid}: {', '.join(names)}" for uid, names in list(resolution.conflicts.items())[:MAX_LISTED_UIDS]
                ]
            },
        )
    if len(classes) < 2:
        raise ValidationFailed(
            "A classifier needs at least two classes.", code="too_few_classes", fields={"classes": ["At least two."]}
        )
    patients = resolution.patients_per_class()
    empty = [name for name in classes if not patients.get(name)]
    if empty:
        raise ValidationFailed(
            f"No image instances for class(es) {', '.join(empty)}.",
            code="empty_class",
            fields={"labels": [f"Class {name!r} has no image instances." for name in empty]},
        )
    thin = [name for name in classes if len(patients[name]) < 2]
    if thin:
        raise ValidationFailed(
            "Every class needs images of at least two patients: the split is by patient.",
            code="too_few_patients",
            fields={"labels": [f"Class {name!r} has images of {len(patients[name])} patient." for name in thin]},
        )


def patient_split(
    patients: Sequence[str], labels: Sequence[int], *, validation_fraction: float, seed: int
) -> tuple[set[str], set[str]]:
    """(training patients, validation patients): stratified by each patient's majority class.

    Per class, `round(fraction x patients)` of its patients (at least one when it has two or
    more, never all of them) go to validation, drawn with a generator seeded by `seed`.
    """
    votes: dict[str, Counter[int]] = defaultdict(Counter)
    for patient, label in zip(patients, labels, strict=True):
        votes[patient][label] += 1
    by_class: dict[int, list[str]] = defaultdict(list)
    for patient in sorted(votes):
        majority = sorted(votes[patient].items(), key=lambda item: (-item[1], item[0]))[0][0]
        by_class[majority].append(patient)
    rng = np.random.default_rng(seed)
    validation: set[str] = set()
    for label in sorted(by_class):
        members = by_class[label]
        if len(members) < 2:
            continue
        count = min(len(members) - 1, max(1, round(validation_fraction * len(members))))
        order = rng.permutation(len(members))
        validation.update(members[index] for index in order[:count])
    return set(votes) - validation, validation


def _read_dataset(instance: Instance) -> pydicom.Dataset:
    with default_storage.open(instance.file, "rb") as handle:
        return pydicom.dcmread(handle)


def _image_set(rows: list[tuple[np.ndarray, int, str, str]], size: int) -> ImageSet:
    inputs = np.stack([row[0] for row in rows]).astype(np.float32) if rows else np.zeros((0, 1, size, size), np.float32)
    return ImageSet(
        inputs=inputs,
        labels=np.asarray([row[1] for row in rows], dtype=np.int64),
        patients=[row[2] for row in rows],
        sop_instance_uids=[row[3] for row in rows],
    )


def classifier_training_data(request: TrainingRequest) -> ClassifierTrainingData:
    """The loader of `medical.image_classifier` runs (see the module docstring)."""
    from apps.medical.ml import classifier_params

    params = classifier_params(request.params)
    preprocessing = params.preprocessing
    classes = [str(name) for name in request.data["classes"]]
    resolution = label_resolution(org=request.organization, labels=request.data["labels"])
    resolution_check(resolution, classes)
    index_of = {name: position for position, name in enumerate(classes)}
    rows: list[tuple[np.ndarray, int, str, str]] = []
    skipped: list[dict[str, str]] = []
    skipped_count = 0
    modalities: Counter[str] = Counter()
    digest = hashlib.sha256(json.dumps({"classes": classes, "preprocessing": preprocessing.to_json()}).encode())
    frame_bytes = 4 * preprocessing.input_size**2
    for item in sorted(resolution.instances, key=lambda entry: entry.instance.sop_instance_uid):
        instance = item.instance
        try:
            frames = dataset_inputs(_read_dataset(instance), preprocessing)
        except (ImageUnreadable, pydicom.errors.InvalidDicomError, OSError) as exc:
            skipped_count += 1
            if len(skipped) < MAX_REPORTED_SKIPS:
                skipped.append({"sop_instance_uid": instance.sop_instance_uid, "error": str(exc)})
            continue
        if (len(rows) + len(frames)) * frame_bytes > MAX_TRAINING_BYTES:
            raise ValidationFailed(
                "Too many images for one training run at this input size; label fewer or use a smaller input_size.",
                code="too_many_images",
                fields={"labels": ["Too many images."]},
            )
        modalities[instance.series.modality or "unknown"] += 1
        digest.update(f"{instance.sop_instance_uid}:{instance.sha256}:{item.label}\n".encode())
        rows.extend((frame, index_of[item.label], item.patient, instance.sop_instance_uid) for frame in frames)
    if not rows:
        raise ValidationFailed("None of the labelled instances could be read as an image.", code="no_readable_images")
    train_patients, validation_patients = patient_split(
        [row[2] for row in rows],
        [row[1] for row in rows],
        validation_fraction=params.validation_fraction,
        seed=params.seed,
    )
    train_rows = [row for row in rows if row[2] in train_patients]
    validation_rows = [row for row in rows if row[2] in validation_patients]
    missing = [name for name in classes if index_of[name] not in {row[1] for row in train_rows}]
    if missing or not validation_rows:
        raise ValidationFailed(
            "The readable images cannot be split by patient with every class in training and some validation images.",
            code="unsplittable",
            fields={
                "labels": [f"Class {name!r} has no training images after the split." for name in missing]
                or ["No validation images."]
            },
        )
    size = preprocessing.input_size
    train, validation = _image_set(train_rows, size), _image_set(validation_rows, size)

    def side(images: ImageSet, patients: set[str]) -> dict[str, Any]:
        counts = Counter(int(label) for label in images.labels)
        return {
            "patients": len(patients),
            "images": len(images.labels),
            "images_per_class": {name: counts.get(index, 0) for index, name in enumerate(classes)},
        }

    split = {
        "method": "split by patient",
        "validation_fraction": params.validation_fraction,
        "seed": params.seed,
        "stratified": "by each patient's majority class",
        "train": side(train, train_patients),
        "validation": side(validation, validation_patients),
        "patients_in_both": len(train_patients & validation_patients),
    }
    all_counts = Counter(row[1] for row in rows)
    summary = {
        "classes": classes,
        "images": len(rows),
        "instances": len({row[3] for row in rows}),
        "patients": len(train_patients | validation_patients),
        "images_per_class": {name: all_counts.get(index, 0) for index, name in enumerate(classes)},
        "modalities": dict(sorted(modalities.items())),
        "unreadable_instances": skipped_count,
        "unreadable_examples": skipped,
    }
    return ClassifierTrainingData(
        classes=classes,
        preprocessing=preprocessing,
        train=train,
        validation=validation,
        fingerprint=digest.hexdigest(),
        summary=summary,
        split=split,
    )
