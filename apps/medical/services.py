"""Writes of the imaging archive: store an instance (STOW-RS, C-STORE and portal upload all come
here), delete a study or series, change the archive policy, and record PHI access.

Storing follows `core.storage`'s rule: the file is saved first (content-addressed by its sha256),
the rows are written in one transaction with the audit event, and any failure deletes the file
again, so a refused or failed instance leaves no row, no file and no audit event behind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

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
from apps.medical.models import ArchiveSettings, Instance, Patient, PhiAccess, PhiAccessStudy, Series, Study
from apps.medical.selectors import archive_settings_get
from core.audit.context import client_ip_var, request_id_var
from core.audit.services import audit_record
from core.errors import ValidationFailed
from core.storage import storage_delete, stored_files
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


def instance_store(
    *,
    actor: Actor,
    path: Path,
    sha256: str,
    size: int,
    received_via: str,
    expected_study_uid: str = "",
    archive_settings: ArchiveSettings | None = None,
) -> StoreOutcome:
    """Validate the file at `path` and store it in `actor`'s archive, by the duplicates policy.

    Args:
        path: the received file (a scratch file; it is moved or copied into storage).
        sha256, size: of the file's bytes, computed while it was received.
        received_via: a `ReceivedVia` value.
        expected_study_uid: STOW-RS `POST /studies/{study}`: instances of any other study are refused.
        archive_settings: the organization's policy, when the caller stores many instances.

    Raises:
        InstanceRefused: with the PS3.18 failure reason; nothing of the instance is kept.
    """
    org = actor.organization
    policy = archive_settings or archive_settings_get(org=org)
    inspected = instance_inspect(path)
    if expected_study_uid and inspected.study_instance_uid != expected_study_uid:
        raise InstanceRefused(
            DATA_SET_DOES_NOT_MATCH,
            f"The instance belongs to study {inspected.study_instance_uid}, not to {expected_study_uid}.",
            sop_class_uid=inspected.sop_class_uid,
            sop_instance_uid=inspected.sop_instance_uid,
        )
    existing = Instance.objects.filter(organization=org, sop_instance_uid=inspected.sop_instance_uid).first()
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
    for attempt in range(3):
        try:
            return _store(
                actor=actor, inspected=inspected, path=path, sha256=sha256, size=size, received_via=received_via
            )
        except IntegrityError:
            # a concurrent store created the same patient, study, series or instance first
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _store(
    *, actor: Actor, inspected: InspectedInstance, path: Path, sha256: str, size: int, received_via: str
) -> StoreOutcome:
    org = actor.organization
    name = instance_file_name(org_id=org.pk, sha256=sha256)
    index = index_attributes(inspected.dataset)
    attributes = dataset_attributes(inspected.dataset)
    with stored_files() as files:
        if default_storage.exists(name):
            stored_name = name  # the same bytes are already on disk (an earlier copy of this instance)
        else:
            with path.open("rb") as handle:
                stored_name = files.save(name, _LocalFile(handle, path))
        with transaction.atomic():
            patient, _ = Patient.objects.get_or_create(
                organization=org,
                patient_id=index.patient["patient_id"],
                issuer_of_patient_id=index.patient["issuer_of_patient_id"],
                defaults=index.patient,
            )
            study, _ = Study.objects.select_for_update().get_or_create(
                organization=org,
                study_instance_uid=inspected.study_instance_uid,
                defaults={**index.study, "patient": patient, "attributes": attributes},
            )
            series, _ = Series.objects.get_or_create(
                organization=org,
                series_instance_uid=inspected.series_instance_uid,
                defaults={**index.series, "study": study, "attributes": attributes},
            )
            if series.study_id != study.pk:
                raise InstanceRefused(
                    DATA_SET_DOES_NOT_MATCH,
                    f"Series {series.series_instance_uid} is stored in another study.",
                    sop_class_uid=inspected.sop_class_uid,
                    sop_instance_uid=inspected.sop_instance_uid,
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
            previous = (
                Instance.objects.select_for_update()
                .filter(organization=org, sop_instance_uid=inspected.sop_instance_uid)
                .first()
            )
            if previous is None:
                instance = Instance.objects.create(
                    organization=org, sop_instance_uid=inspected.sop_instance_uid, **instance_fields
                )
                status = StoreStatus.STORED
            else:
                old_file, old_series_id = previous.file, previous.series_id
                for name_, value in instance_fields.items():
                    setattr(previous, name_, value)
                previous.save()
                instance = previous
                status = StoreStatus.OVERWRITTEN
                if old_file != stored_name:
                    transaction.on_commit(lambda: _delete_unreferenced(org, [old_file]))
                if old_series_id != series.pk:
                    _recount_series(old_series_id)
            _count(study=study, series=series)
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


class _LocalFile(File):
    """A scratch file FileSystemStorage may move into place instead of copying (`temporary_file_path`)."""

    def __init__(self, handle: Any, path: Path) -> None:
        super().__init__(handle, name=path.name)
        self._path = path

    def temporary_file_path(self) -> str:
        return str(self._path)


def _count(*, study: Study, series: Series) -> None:
    """Keep the study and series counts and ModalitiesInStudy true after one store.

    Recounted rather than incremented, so an overwrite, a retried store or a concurrent store
    of the same instance can never make them drift (both are index-only counts).
    """
    _recount_series(series.pk)
    study_series = Series.objects.filter(study_id=study.pk)
    modalities = sorted({modality for modality in study_series.values_list("modality", flat=True) if modality})
    Study.objects.filter(pk=study.pk).update(
        number_of_series=study_series.count(),
        number_of_instances=Instance.objects.filter(series__study_id=study.pk).count(),
        modalities_in_study="\\".join(modalities),
    )


def _recount_series(series_id: int) -> None:
    Series.objects.filter(pk=series_id).update(number_of_instances=Instance.objects.filter(series_id=series_id).count())


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
        remaining = Series.objects.filter(study_id=study.pk)
        modalities = sorted({modality for modality in remaining.values_list("modality", flat=True) if modality})
        Study.objects.filter(pk=study.pk).update(
            number_of_series=remaining.count(),
            number_of_instances=Instance.objects.filter(series__study_id=study.pk).count(),
            modalities_in_study="\\".join(modalities),
        )
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
