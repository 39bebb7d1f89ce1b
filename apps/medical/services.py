"""Writes of the imaging archive: store an instance (STOW-RS, C-STORE and portal upload all come
here), delete a study or series, change the archive policy, and record PHI access.

Storing follows `core.storage`'s rule: the file is saved first (content-addressed by its sha256),
the rows are written in one transaction with the audit event, and any failure deletes the file
again, so a refused or failed instance leaves no row, no file and no audit event behind.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F

from apps.medical.choices import DOMAIN, AccessKind, DuplicatePolicy
from apps.medical.dicom_files import (
    DATA_SET_DOES_NOT_MATCH,
    DUPLICATE_SOP_INSTANCE,
    WARNING_ELEMENTS_DISCARDED,
    InspectedInstance,
    InstanceRefused,
    instance_inspect,
)
from apps.medical.dicom_json import dataset_attributes, index_attributes
from apps.medical.models import (
    ArchiveSettings,
    DicomNode,
    Instance,
    Patient,
    PhiAccess,
    PhiAccessStudy,
    Series,
    Study,
)
from apps.medical.qido_query import level_attributes
from apps.medical.selectors import archive_settings_get
from core.audit.context import client_ip_var, request_id_var
from core.audit.services import audit_record, audit_records
from core.errors import Conflict, ValidationFailed
from core.storage import StoredFiles, storage_delete
from core.tenancy.actors import Actor
from core.tenancy.models import Organization

logger = logging.getLogger(__name__)


class StoreStatus:
    STORED = "stored"
    UNCHANGED = "unchanged"  # the same bytes were already stored: a no-op
    KEPT = "kept"  # duplicates policy "keep": the stored copy stays, the new one is discarded
    OVERWRITTEN = "overwritten"


@dataclass(frozen=True)
class StoreOutcome:
    """What happened to one received instance that the archive did not refuse."""

    status: str
    instance: Instance
    warning_reason: int | None = None

    @property
    def warning(self) -> str:
        if self.status == StoreStatus.KEPT:
            return "An instance with this SOP Instance UID is already stored; the stored copy was kept."
        return ""


def instance_file_name(*, org_id: int, sha256: str) -> str:
    """Content-addressed: the same bytes in one organization are one file."""
    return f"medical/org-{org_id}/instances/{sha256[:2]}/{sha256[2:4]}/{sha256}.dcm"


@dataclass
class StoreCache:
    """The Patient, Study and Series rows one receiving request has already found or made.

    A STOW-RS body or an association is mostly one series: without this, every instance would
    look its three parents up again. Cleared when a store fails (a cached row may be stale).
    """

    patients: dict[tuple[str, str], Patient] = field(default_factory=dict)
    studies: dict[str, Study] = field(default_factory=dict)
    series: dict[str, Series] = field(default_factory=dict)

    def clear(self) -> None:
        self.patients.clear()
        self.studies.clear()
        self.series.clear()


def instance_store(
    *,
    actor: Actor,
    path: Path,
    sha256: str,
    size: int,
    received_via: str,
    expected_study_uid: str = "",
    archive_settings: ArchiveSettings | None = None,
    cache: StoreCache | None = None,
) -> StoreOutcome:
    """Validate the file at `path` and store it in `actor`'s archive, by the duplicates policy.

    Args:
        path: the received file (a scratch file; it is moved or copied into storage).
        sha256, size: of the file's bytes, computed while it was received.
        received_via: a `ReceivedVia` value.
        expected_study_uid: STOW-RS `POST /studies/{study}`: instances of any other study are refused.
        archive_settings: the organization's policy, when the caller stores many instances.
        cache: parent rows already looked up by the same request (see StoreCache).

    Raises:
        InstanceRefused: with the PS3.18 failure reason; nothing of the instance is kept.
    """
    org = actor.organization
    policy = archive_settings or archive_settings_get(org=org)
    cache = cache if cache is not None else StoreCache()
    inspected = instance_inspect(path)
    if expected_study_uid and inspected.study_instance_uid != expected_study_uid:
        raise InstanceRefused(
            DATA_SET_DOES_NOT_MATCH,
            f"The instance belongs to study {inspected.study_instance_uid}, not to {expected_study_uid}.",
            sop_class_uid=inspected.sop_class_uid,
            sop_instance_uid=inspected.sop_instance_uid,
        )
    if policy.deidentify_on_receipt:
        # A research archive stores only the de-identified copy, validated and stored like any
        # other file (the same duplicates policy); see apps.medical.exports.receipt_deidentify.
        from apps.medical.exports import receipt_deidentify  # exports builds on this module

        with receipt_deidentify(policy=policy, inspected=inspected) as copy:
            return instance_store(
                actor=actor,
                path=copy.path,
                sha256=copy.sha256,
                size=copy.size,
                received_via=received_via,
                archive_settings=copy.archive_settings,
                cache=cache,
            )
    for attempt in range(3):
        # the common case (a new instance) costs one index lookup; the full row only for a duplicate
        stored = (
            Instance.objects.filter(organization=org, sop_instance_uid=inspected.sop_instance_uid)
            .values_list("pk", flat=True)
            .first()
        )
        existing = (
            None
            if stored is None
            else Instance.objects.select_related("series__study")
            .defer("attributes", "series__attributes", "series__study__attributes")
            .get(pk=stored)
        )
        if existing is not None:
            if existing.sha256 == sha256:
                return StoreOutcome(StoreStatus.UNCHANGED, existing)
            if policy.duplicate_policy == DuplicatePolicy.KEEP:
                return StoreOutcome(StoreStatus.KEPT, existing, WARNING_ELEMENTS_DISCARDED)
            if policy.duplicate_policy == DuplicatePolicy.REJECT:
                raise InstanceRefused(
                    DUPLICATE_SOP_INSTANCE,
                    "An instance with this SOP Instance UID is already stored (duplicates policy: reject).",
                    sop_class_uid=inspected.sop_class_uid,
                    sop_instance_uid=inspected.sop_instance_uid,
                )
        try:
            return _store(
                actor=actor,
                inspected=inspected,
                path=path,
                sha256=sha256,
                size=size,
                received_via=received_via,
                overwrite=existing is not None,
                cache=cache,
            )
        except InstanceRefused:
            # refused inside the transaction (a series of another study): the patient or study it
            # made was rolled back, so the cache may hold rows that do not exist
            cache.clear()
            raise
        except IntegrityError:
            # a concurrent store created the same patient, study, series or instance first: look again
            cache.clear()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _parents(
    *, org: Organization, inspected: InspectedInstance, index: Any, attributes: dict[str, Any], cache: StoreCache
) -> tuple[Study, Series, bool]:
    """The instance's study and series rows (made on first sight); True if the series is new."""
    patient_key = (index.patient["patient_id"], index.patient["issuer_of_patient_id"])
    patient = cache.patients.get(patient_key)
    if patient is None:
        patient, _ = Patient.objects.get_or_create(
            organization=org,
            patient_id=patient_key[0],
            issuer_of_patient_id=patient_key[1],
            defaults=index.patient,
        )
        cache.patients[patient_key] = patient
    study = cache.studies.get(inspected.study_instance_uid)
    if study is None:
        study, _ = Study.objects.defer("attributes").get_or_create(
            organization=org,
            study_instance_uid=inspected.study_instance_uid,
            defaults={**index.study, "patient": patient, "attributes": level_attributes(attributes, "study")},
        )
        cache.studies[inspected.study_instance_uid] = study
    series = cache.series.get(inspected.series_instance_uid)
    series_created = False
    if series is None:
        series, series_created = Series.objects.defer("attributes").get_or_create(
            organization=org,
            series_instance_uid=inspected.series_instance_uid,
            defaults={**index.series, "study": study, "attributes": level_attributes(attributes, "series")},
        )
        cache.series[inspected.series_instance_uid] = series
    if series.study_id != study.pk:
        raise InstanceRefused(
            DATA_SET_DOES_NOT_MATCH,
            f"Series {series.series_instance_uid} is stored in another study.",
            sop_class_uid=inspected.sop_class_uid,
            sop_instance_uid=inspected.sop_instance_uid,
        )
    series.study = study
    return study, series, series_created


def _store(
    *,
    actor: Actor,
    inspected: InspectedInstance,
    path: Path,
    sha256: str,
    size: int,
    received_via: str,
    overwrite: bool,
    cache: StoreCache,
) -> StoreOutcome:
    org = actor.organization
    name = instance_file_name(org_id=org.pk, sha256=sha256)
    index = index_attributes(inspected.dataset)
    attributes = dataset_attributes(inspected.dataset)
    with _instance_files(org) as files:
        if default_storage.exists(name):
            stored_name = name  # the same bytes are already on disk (an earlier copy of this instance)
        else:
            with path.open("rb") as handle:
                stored_name = files.save(name, _LocalFile(handle, path))
        with transaction.atomic():
            study, series, series_created = _parents(
                org=org, inspected=inspected, index=index, attributes=attributes, cache=cache
            )
            instance_fields: dict[str, Any] = {
                **index.instance,
                "series": series,
                "sop_class_uid": inspected.sop_class_uid,
                "transfer_syntax_uid": inspected.transfer_syntax_uid,
                "file": stored_name,
                "sha256": sha256,
                "size_bytes": size,
                "received_via": received_via,
                "attributes": attributes,
            }
            if not overwrite:
                instance = Instance.objects.create(
                    organization=org, sop_instance_uid=inspected.sop_instance_uid, **instance_fields
                )
                status = StoreStatus.STORED
                _count_many([instance], {series.pk} if series_created else set())
            else:
                previous = Instance.objects.select_for_update().get(
                    organization=org, sop_instance_uid=inspected.sop_instance_uid
                )
                old_file, old_series_id = previous.file, previous.series_id
                for name_, value in instance_fields.items():
                    setattr(previous, name_, value)
                previous.save()
                instance = previous
                status = StoreStatus.OVERWRITTEN
                if old_file != stored_name:
                    transaction.on_commit(lambda: _delete_unreferenced(org, [old_file]))
                _recount_series(series.pk)
                if old_series_id != series.pk:
                    _series_left(old_series_id, cache=cache)
                _recount_study(study.pk)
            audit_record(
                actor=actor,
                action="medical.instance.store" if status == StoreStatus.STORED else "medical.instance.overwrite",
                obj=instance,
                details={
                    "study": inspected.study_instance_uid,
                    "series": inspected.series_instance_uid,
                    "received_via": received_via,
                    "sha256": sha256,
                },
            )
    return StoreOutcome(status, instance)


@dataclass(frozen=True)
class ReceivedFile:
    """A received file on local disk, with the sha256 and size computed while it arrived."""

    path: Path
    sha256: str
    size: int


class _BatchFallback(Exception):
    pass


def instances_store_batch(
    *,
    actor: Actor,
    files: Sequence[ReceivedFile],
    received_via: str,
    expected_study_uid: str = "",
    archive_settings: ArchiveSettings | None = None,
    cache: StoreCache | None = None,
) -> list[StoreOutcome | InstanceRefused]:
    """Store many received files with the same rules as `instance_store`, in one transaction.

    New instances (the common case: a STOW-RS body, an association) are written together: their
    files, then one transaction with every row, count and audit event, so a body of 300 slices
    costs a handful of statements instead of 300 transactions. Duplicates, overwrites and any
    conflict with a concurrent writer fall back to `instance_store`, one file at a time.

    Returns, per file in order, its outcome or its refusal.
    """
    org = actor.organization
    policy = archive_settings or archive_settings_get(org=org)
    cache = cache if cache is not None else StoreCache()
    results: list[StoreOutcome | InstanceRefused | None] = [None] * len(files)
    inspected: dict[int, InspectedInstance] = {}
    for position, received in enumerate(files):
        try:
            candidate = instance_inspect(received.path)
        except InstanceRefused as refusal:
            results[position] = refusal
            continue
        if expected_study_uid and candidate.study_instance_uid != expected_study_uid:
            results[position] = InstanceRefused(
                DATA_SET_DOES_NOT_MATCH,
                f"The instance belongs to study {candidate.study_instance_uid}, not to {expected_study_uid}.",
                sop_class_uid=candidate.sop_class_uid,
                sop_instance_uid=candidate.sop_instance_uid,
            )
            continue
        inspected[position] = candidate
    stored_uids = set(
        Instance.objects.filter(
            organization=org, sop_instance_uid__in=[item.sop_instance_uid for item in inspected.values()]
        ).values_list("sop_instance_uid", flat=True)
    )
    fresh: list[int] = []
    one_by_one: list[int] = []
    for position, candidate in inspected.items():
        if candidate.sop_instance_uid in stored_uids:
            one_by_one.append(position)
        else:
            stored_uids.add(candidate.sop_instance_uid)  # a second copy in the same body is a duplicate
            fresh.append(position)
    if policy.deidentify_on_receipt:
        # each file's de-identified copy is stored by instance_store (apps.medical.exports.receipt_deidentify)
        one_by_one, fresh = one_by_one + fresh, []
    if fresh:
        try:
            stored = _store_new(
                actor=actor,
                items=[(inspected[position], files[position]) for position in fresh],
                received_via=received_via,
                cache=cache,
            )
            for position, outcome in zip(fresh, stored, strict=True):
                results[position] = outcome
        except (IntegrityError, _BatchFallback):
            cache.clear()
            one_by_one.extend(fresh)
    for position in sorted(one_by_one):
        received = files[position]
        try:
            results[position] = instance_store(
                actor=actor,
                path=received.path,
                sha256=received.sha256,
                size=received.size,
                received_via=received_via,
                expected_study_uid=expected_study_uid,
                archive_settings=policy,
                cache=cache,
            )
        except InstanceRefused as refusal:
            results[position] = refusal
    return [result for result in results if result is not None]


def _store_new(
    *, actor: Actor, items: list[tuple[InspectedInstance, ReceivedFile]], received_via: str, cache: StoreCache
) -> list[StoreOutcome]:
    """New instances (no stored copy of their SOP Instance UIDs): files, then one transaction."""
    org = actor.organization
    prepared = []
    with _instance_files(org) as files:
        for inspected, received in items:
            name = instance_file_name(org_id=org.pk, sha256=received.sha256)
            if default_storage.exists(name):
                stored_name = name
            else:
                with received.path.open("rb") as handle:
                    stored_name = files.save(name, _LocalFile(handle, received.path))
            prepared.append((inspected, received, stored_name, index_attributes(inspected.dataset)))
        with transaction.atomic():
            rows: list[Instance] = []
            new_series: set[int] = set()
            for inspected, received, stored_name, index in prepared:
                attributes = dataset_attributes(inspected.dataset)
                try:
                    _, series, series_created = _parents(
                        org=org, inspected=inspected, index=index, attributes=attributes, cache=cache
                    )
                except InstanceRefused:
                    raise _BatchFallback from None  # this instance is refused one by one, the others stored
                if series_created:
                    new_series.add(series.pk)
                rows.append(
                    Instance(
                        organization=org,
                        sop_instance_uid=inspected.sop_instance_uid,
                        series=series,
                        sop_class_uid=inspected.sop_class_uid,
                        transfer_syntax_uid=inspected.transfer_syntax_uid,
                        file=stored_name,
                        sha256=received.sha256,
                        size_bytes=received.size,
                        received_via=received_via,
                        attributes=attributes,
                        **index.instance,
                    )
                )
            Instance.objects.bulk_create(rows)
            _count_many(rows, new_series)
            audit_records(
                actor=actor,
                action="medical.instance.store",
                entries=[
                    (
                        row,
                        {
                            "study": row.series.study.study_instance_uid,
                            "series": row.series.series_instance_uid,
                            "received_via": received_via,
                            "sha256": row.sha256,
                        },
                    )
                    for row in rows
                ],
            )
    return [StoreOutcome(StoreStatus.STORED, row) for row in rows]


def _count_many(rows: list[Instance], new_series: set[int]) -> None:
    """The counts after a batch of new instances: one increment per series and per study."""
    per_series = Counter(row.series_id for row in rows)
    for series_id, added in per_series.items():
        Series.objects.filter(pk=series_id).update(number_of_instances=F("number_of_instances") + added)
    studies = {row.series.study_id: row.series.study for row in rows}
    for study_id, study in studies.items():
        added_instances = sum(1 for row in rows if row.series.study_id == study_id)
        study_series = {row.series for row in rows if row.series.study_id == study_id and row.series_id in new_series}
        update: dict[str, Any] = {"number_of_instances": F("number_of_instances") + added_instances}
        if study_series:
            update["number_of_series"] = F("number_of_series") + len(study_series)
            modalities = set(filter(None, study.modalities_in_study.split("\\")))
            modalities |= {series.modality for series in study_series if series.modality}
            update["modalities_in_study"] = study.modalities_in_study = "\\".join(sorted(modalities))
        Study.objects.filter(pk=study_id).update(**update)


class _LocalFile(File):
    """A scratch file FileSystemStorage may move into place instead of copying (`temporary_file_path`).

    What is moved is a hard link to the scratch file, never the scratch file itself: a store
    that fails after the move (a batch falling back to one-by-one, an IntegrityError retry)
    deletes the stored copy and must still find the received bytes at `path`.
    """

    def __init__(self, handle: Any, path: Path) -> None:
        super().__init__(handle, name=path.name)
        self._path = path

    def temporary_file_path(self) -> str:
        link = self._path.with_name(f"{self._path.name}.{uuid.uuid4().hex}.move")
        try:
            os.link(self._path, link)
        except OSError:  # a scratch file system without hard links: a copy
            shutil.copyfile(self._path, link)
        return str(link)


def _series_left(series_id: int, *, cache: StoreCache) -> None:
    """An overwrite moved an instance out of this series (a corrected resend with another series
    or study): recount it and its study, and delete the series, study and patient it left empty,
    so the index never lists a series or study without instances."""
    series = Series.objects.select_related("study").get(pk=series_id)
    study_id, patient_id = series.study_id, series.study.patient_id
    if Instance.objects.filter(series_id=series_id).exists():
        _recount_series(series_id)
    else:
        series.delete()
        cache.clear()  # it may hold the deleted rows
    if Series.objects.filter(study_id=study_id).exists():
        _recount_study(study_id)
        return
    Study.objects.filter(pk=study_id).delete()
    if not Study.objects.filter(patient_id=patient_id).exists():
        Patient.objects.filter(pk=patient_id).delete()


def _recount_series(series_id: int) -> None:
    Series.objects.filter(pk=series_id).update(number_of_instances=Instance.objects.filter(series_id=series_id).count())


def _recount_study(study_id: int) -> None:
    """Recount a study's series, instances and modalities (after an overwrite or a deletion)."""
    remaining = Series.objects.filter(study_id=study_id)
    modalities = sorted({modality for modality in remaining.values_list("modality", flat=True) if modality})
    Study.objects.filter(pk=study_id).update(
        number_of_series=remaining.count(),
        number_of_instances=Instance.objects.filter(series__study_id=study_id).count(),
        modalities_in_study="\\".join(modalities),
    )


@contextlib.contextmanager
def _instance_files(org: Organization) -> Iterator[StoredFiles]:
    """`core.storage.stored_files` for content-addressed instance files: on failure, a file saved
    in the block is deleted only if no instance row refers to it.

    Two requests storing the same new bytes at once both find the name free or taken; the one
    whose rows lose the race (its insert waits for the winner's commit, then fails) must not
    delete the file the winner's committed row now names.
    """
    files = StoredFiles(storage=default_storage)
    try:
        yield files
    except BaseException:
        try:
            _delete_unreferenced(org, files.names)
        except Exception:  # the database may be what failed: keep the files, never hide the error
            logger.exception("Could not check the files of a failed store; kept %s", files.names)
        raise


def _delete_unreferenced(org: Organization, names: Iterable[str]) -> None:
    """Delete stored files no instance row of `org` refers to any more."""
    still_used = set(Instance.objects.filter(organization=org, file__in=list(names)).values_list("file", flat=True))
    storage_delete([name for name in names if name not in still_used])


def study_delete(*, actor: Actor, study: Study, reason: str) -> None:
    """Delete a whole study (org admins; audited with the reason).

    The rows go in one transaction; the files only after it commits. A deletion that fails
    halfway therefore leaves every row and file in place; a crash after the commit can leave
    files without rows, which `medical_storage_check` finds and removes.
    """
    actor.require_org_admin("delete studies", key_scope=DOMAIN)
    if study.reports.exists():
        # a clinician's report (signed: an attestation) is part of the medical record
        raise Conflict("The study has clinical reports and cannot be deleted.", code="study_has_reports")
    if not reason.strip():
        raise ValidationFailed("A reason is required.", fields={"reason": ["This field is required."]})
    with transaction.atomic():
        files = list(Instance.objects.filter(series__study=study).values_list("file", flat=True))
        audit_record(
            actor=actor,
            action="medical.study.delete",
            obj=study,
            details={"study": study.study_instance_uid, "reason": reason, "instances": len(files)},
        )
        patient_id = study.patient_id
        study.delete()
        if not Study.objects.filter(patient_id=patient_id).exists():
            Patient.objects.filter(pk=patient_id).delete()
        transaction.on_commit(lambda: _delete_unreferenced(actor.organization, files))


def series_delete(*, actor: Actor, series: Series, reason: str) -> None:
    """Delete one series of a study (org admins; audited with the reason); the study's counts follow."""
    actor.require_org_admin("delete series", key_scope=DOMAIN)
    if not reason.strip():
        raise ValidationFailed("A reason is required.", fields={"reason": ["This field is required."]})
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=series.study_id)
        files = list(series.instances.values_list("file", flat=True))
        audit_record(
            actor=actor,
            action="medical.series.delete",
            obj=series,
            details={
                "study": study.study_instance_uid,
                "series": series.series_instance_uid,
                "reason": reason,
                "instances": len(files),
            },
        )
        series.delete()
        _recount_study(study.pk)
        transaction.on_commit(lambda: _delete_unreferenced(actor.organization, files))


@transaction.atomic
def archive_settings_update(
    *,
    actor: Actor,
    duplicate_policy: str | None = None,
    deidentify_on_receipt: bool | None = None,
    deidentify_options: dict[str, Any] | None = None,
) -> ArchiveSettings:
    """Change the organization's archive policy (org admins; audited)."""
    actor.require_org_admin("change the archive settings", key_scope=DOMAIN)
    current, _ = ArchiveSettings.objects.select_for_update().get_or_create(organization=actor.organization)
    if duplicate_policy is not None:
        if duplicate_policy not in DuplicatePolicy.values:
            raise ValidationFailed(
                "Unknown duplicates policy.",
                fields={"duplicate_policy": [f"One of: {', '.join(DuplicatePolicy.values)}."]},
            )
        current.duplicate_policy = duplicate_policy
    if deidentify_on_receipt is not None:
        current.deidentify_on_receipt = deidentify_on_receipt
    if deidentify_options is not None:
        current.deidentify_options = deidentify_options
    current.save()
    audit_record(
        actor=actor,
        action="medical.settings.update",
        obj=current,
        details={
            "duplicate_policy": current.duplicate_policy,
            "deidentify_on_receipt": current.deidentify_on_receipt,
            "deidentify_options": current.deidentify_options,
        },
    )
    return current


def phi_access_record(
    *,
    actor: Actor,
    kind: str,
    studies: Iterable[tuple[str, str]],
    path: str = "",
    series_instance_uid: str = "",
    sop_instance_uid: str = "",
) -> PhiAccess | None:
    """Append one PHI access row for this request, with the studies it touched.

    Args:
        kind: an `AccessKind` value.
        studies: (Study Instance UID, Patient ID) of every study whose data the answer carried.
            A search that matched nothing still records the search (with no study).
    """
    if kind not in AccessKind.values:
        raise ValueError(f"Unknown access kind {kind!r}")
    touched = list(dict.fromkeys(studies))
    access = PhiAccess.objects.create(
        organization=actor.organization,
        actor_user=actor.user,
        actor_api_key=actor.api_key,
        actor_label=actor.label,
        kind=kind,
        path=path[:500],
        series_instance_uid=series_instance_uid,
        sop_instance_uid=sop_instance_uid,
        request_id=request_id_var.get() or "",
        ip_address=client_ip_var.get(),
    )
    PhiAccessStudy.objects.bulk_create(
        PhiAccessStudy(access=access, organization=actor.organization, study_instance_uid=uid, patient_id=patient_id)
        for uid, patient_id in touched
    )
    return access


__all__ = [
    "StoreOutcome",
    "StoreStatus",
    "archive_settings_update",
    "instance_store",
    "phi_access_record",
    "series_delete",
    "study_delete",
]


# --- DICOM nodes (the listener's calling AE titles) ------------------------------------------------

AE_TITLE_MAX_LENGTH = 16  # PS3.5 Table 6.2-1, VR AE
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
DICOM_NODE_FIELDS = ("ae_title", "description", "host", "active")
AE_TITLE_TAKEN = "This AE title is already in use by a DICOM node."


def ae_title_clean(value: str) -> str:
    """A calling AE title as stored: PS3.5's AE value with its non-significant spaces removed.

    PS3.5 Table 6.2-1: at most 16 characters of the default character repertoire (printable
    ASCII here) without backslash or control characters; leading and trailing spaces are not
    significant and a value of spaces only is not allowed. AE titles are case-sensitive, so the
    case is kept as given ("ct_scanner" and "CT_SCANNER" are two titles).

    Raises:
        ValidationFailed: with the problem on the `ae_title` field.
    """
    title = value.strip(" ")
    problem = ""
    if not title:
        problem = "An AE title needs at least one character other than a space."
    elif len(title) > AE_TITLE_MAX_LENGTH:
        problem = f"An AE title has at most {AE_TITLE_MAX_LENGTH} characters."
    elif "\\" in title:
        problem = "An AE title may not contain a backslash."
    elif not all(" " <= char <= "~" for char in title):
        problem = "An AE title holds printable ASCII characters only (no control characters)."
    if problem:
        raise ValidationFailed(problem, fields={"ae_title": [problem]})
    return title


def host_clean(value: str) -> str:
    """A node's expected peer: empty (any peer), an IPv4/IPv6 address, or a host name."""
    host = value.strip()
    if not host:
        return ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOST_NAME.match(host) or host.replace(".", "").isdigit():
        problem = "An IP address or a host name."
        raise ValidationFailed(f"Invalid host: {problem}", fields={"host": [problem]})
    return host.lower()


def _ae_title_taken(ae_title: str, *, exclude_pk: int | None = None) -> Conflict | None:
    # Unique across organizations (the title names the organization), so the message never says whose.
    nodes = DicomNode.objects.filter(ae_title=ae_title)
    if exclude_pk is not None:
        nodes = nodes.exclude(pk=exclude_pk)
    taken = nodes.exists()
    return Conflict(AE_TITLE_TAKEN, fields={"ae_title": [AE_TITLE_TAKEN]}) if taken else None


def _node_save(node: DicomNode, **kwargs: Any) -> None:
    """Save, turning the unique constraint's race (two creates of one title) into the 409."""
    try:
        with transaction.atomic():
            node.save(**kwargs)
    except IntegrityError:
        raise Conflict(AE_TITLE_TAKEN, fields={"ae_title": [AE_TITLE_TAKEN]}) from None


@transaction.atomic
def dicom_node_create(
    *, actor: Actor, ae_title: str, description: str = "", host: str = "", active: bool = True
) -> DicomNode:
    """Allow a modality or PACS to send to the listener under `ae_title` (org admins; audited).

    Raises:
        ValidationFailed: an invalid AE title or host.
        Conflict: the AE title is already used, by this or any other organization.
    """
    actor.require_org_admin("manage DICOM nodes", key_scope=DOMAIN)
    ae_title, host = ae_title_clean(ae_title), host_clean(host)
    taken = _ae_title_taken(ae_title)
    if taken is not None:
        raise taken
    node = DicomNode(
        organization=actor.organization, ae_title=ae_title, description=description, host=host, active=active
    )
    _node_save(node)
    audit_record(
        actor=actor,
        action="medical.dicom_node.create",
        obj=node,
        details={"ae_title": ae_title, "host": host, "active": active},
    )
    return node


@transaction.atomic
def dicom_node_update(*, actor: Actor, node: DicomNode, data: dict[str, Any]) -> DicomNode:
    """Change a node's fields (any of `DICOM_NODE_FIELDS` present in `data`; org admins; audited)."""
    actor.require_org_admin("manage DICOM nodes", key_scope=DOMAIN)
    node = DicomNode.objects.select_for_update().get(pk=node.pk, organization=actor.organization)
    cleaned = dict(data)
    if "ae_title" in cleaned:
        cleaned["ae_title"] = ae_title_clean(cleaned["ae_title"])
    if "host" in cleaned:
        cleaned["host"] = host_clean(cleaned["host"])
    changed = [key for key in DICOM_NODE_FIELDS if key in cleaned and getattr(node, key) != cleaned[key]]
    if "ae_title" in changed:
        taken = _ae_title_taken(cleaned["ae_title"], exclude_pk=node.pk)
        if taken is not None:
            raise taken
    before = {key: getattr(node, key) for key in changed}
    for key in changed:
        setattr(node, key, cleaned[key])
    if changed:
        _node_save(node, update_fields=[*changed, "updated_at"])
    audit_record(
        actor=actor,
        action="medical.dicom_node.update",
        obj=node,
        details={"changed": changed, "before": before, "ae_title": node.ae_title},
    )
    return node


@transaction.atomic
def dicom_node_delete(*, actor: Actor, node: DicomNode) -> None:
    """Remove a node: its AE title is refused at association from now on (org admins; audited)."""
    actor.require_org_admin("manage DICOM nodes", key_scope=DOMAIN)
    audit_record(
        actor=actor,
        action="medical.dicom_node.delete",
        obj=node,
        details={"ae_title": node.ae_title, "host": node.host},
    )
    node.delete()


__all__ += ["dicom_node_create", "dicom_node_delete", "dicom_node_update"]
