"""De-identified copies of stored instances: the export job (a zip to download, or a copy into
another organization's archive for research) and the organization policy "de-identify on receipt".

Both de-identify with `apps.medical.deidentify` (PS3.15 Annex E) and the source organization's
database-backed UID map and date shifts (`apps.medical.deid_store`), so the same source study
always becomes the same de-identified study, export after export. Pixel data is never changed:
an instance whose pixels may carry burned-in text (`DeidResult.needs_review`) is quarantined
(listed with its reason, never exported) by the export, and refused by de-identify on receipt
(a research archive promises to hold no identifiable pixels; see `receipt_deidentify`).

Idempotency of the job (a re-run after a worker crash): the zip is rebuilt from scratch and saved
under one name per export, replacing any earlier copy, so exactly one zip exists; into another
organization, the de-identified bytes are the same on every run (same UIDs, same shift, same
dummies), so `services.instance_store` answers "unchanged" for what the first run stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydicom
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import QuerySet

from apps.medical.choices import DOMAIN, AccessKind, ExportDestination, ReceivedVia
from apps.medical.deid_store import date_shift_for_organization, uid_for_organization
from apps.medical.deidentify import DeidOptions, DeidResult, deidentify
from apps.medical.dicom_files import PROCESSING_FAILURE, InspectedInstance, InstanceRefused
from apps.medical.models import ArchiveSettings, Export, Instance, Study
from apps.medical.services import instance_store, phi_access_record
from core.audit.services import audit_record
from core.errors import NotFound, PermissionDenied, ValidationFailed
from core.jobs.runner import job_enqueue, job_params_set
from core.storage import HASH_CHUNK_BYTES, scratch_directory, storage_delete, stored_files
from core.tenancy.actors import Actor
from core.tenancy.choices import Role
from core.tenancy.models import Membership, Organization

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

EXPORT_JOB_KIND = "medical.deid_export"
MAX_EXPORT_STUDIES = 1000


# --- de-identifying one dataset --------------------------------------------------------------------


@dataclass(frozen=True)
class OrganizationDeidentifier:
    """`deidentify` with one organization's UID map and date shifts (the source archive's).

    One per job: its lookups are remembered across instances, so the study's and series' UIDs
    and the patient's shift are read from the database once, not once per instance.
    """

    options: DeidOptions
    uid_for: Callable[[str], str]
    date_shift_days: Callable[[str], int]

    @classmethod
    def for_organization(cls, organization: Organization, options: DeidOptions) -> OrganizationDeidentifier:
        return cls(
            options=options,
            uid_for=uid_for_organization(organization),
            date_shift_days=date_shift_for_organization(organization),
        )

    def __call__(self, dataset: Dataset) -> DeidResult:
        return deidentify(dataset, options=self.options, uid_for=self.uid_for, date_shift_days=self.date_shift_days)


def dataset_write(dataset: Dataset, path: Path) -> tuple[str, int]:
    """Write `dataset` as a DICOM Part 10 file; returns its sha256 and size."""
    pydicom.dcmwrite(path, dataset, enforce_file_format=True)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest(), path.stat().st_size


@dataclass(frozen=True)
class DeidentifiedFile:
    """A de-identified copy on local disk, and the policy to store it under."""

    path: Path
    sha256: str
    size: int
    archive_settings: ArchiveSettings


@contextlib.contextmanager
def receipt_deidentify(*, policy: ArchiveSettings, inspected: InspectedInstance) -> Iterator[DeidentifiedFile]:
    """De-identify a received instance for an archive with "de-identify on receipt" (a scratch file).

    The copy is stored instead of what was received (`services.instance_store` stores it under
    `archive_settings`: the same duplicates policy, without de-identifying again, and validates
    the new file as strictly as any other).

    An instance that may carry burned-in text is refused (FailureReason 0110, processing failure):
    holding it for review would put identifiable pixels into an archive whose policy promises
    none; the sender sees the reason in the STOW-RS answer (or the C-STORE status) and can send it
    again once reviewed, with Burned In Annotation set to NO.
    """
    options = DeidOptions.from_dict(policy.deidentify_options or {})
    result = OrganizationDeidentifier.for_organization(policy.organization, options)(inspected.dataset)
    if result.needs_review:
        raise InstanceRefused(
            PROCESSING_FAILURE,
            f"Refused by the archive's de-identify-on-receipt policy: {result.review_reason}; "
            "its pixels may carry burned-in identification (review it, set BurnedInAnnotation to NO, and send again).",
            sop_class_uid=inspected.sop_class_uid,
            sop_instance_uid=inspected.sop_instance_uid,
        )
    after = ArchiveSettings(
        organization=policy.organization,
        duplicate_policy=policy.duplicate_policy,
        deidentify_on_receipt=False,
        deidentify_options=policy.deidentify_options,
    )
    with scratch_directory(prefix="deid-") as folder:
        path = folder / "deidentified.dcm"
        sha256, size = dataset_write(result.dataset, path)
        yield DeidentifiedFile(path=path, sha256=sha256, size=size, archive_settings=after)


# --- reads -----------------------------------------------------------------------------------------


def export_list(*, org: Organization) -> QuerySet[Export]:
    return Export.objects.filter(organization=org).select_related("job", "target_organization")


def export_get(*, org: Organization, export_id: int) -> Export:
    export = export_list(org=org).filter(pk=export_id).first()
    if export is None:
        raise NotFound(f"Export {export_id} not found.")
    return export


# --- the export ------------------------------------------------------------------------------------


def _target_for(*, actor: Actor, slug: str) -> Organization:
    """The organization a research copy goes to: one where the caller's user is org admin too."""
    if not slug:
        raise ValidationFailed(
            "Name the organization to export into.",
            fields={"target_organization": ["Required when destination is 'organization'."]},
        )
    if actor.api_key is not None:
        raise PermissionDenied(
            "An API key acts inside its own organization only; export into another organization from the portal.",
            code="permission_denied",
        )
    membership = (
        Membership.objects.select_related("organization")
        .filter(user=actor.user, role=Role.ORG_ADMIN, organization__slug=slug)
        .first()
    )
    if membership is None:
        # The same answer whether the organization exists or not: its existence is not disclosed.
        raise PermissionDenied(f"You are not an organization admin of '{slug}'.")
    if membership.organization_id == actor.organization.pk:
        raise ValidationFailed(
            "The target must be another organization.",
            fields={"target_organization": ["Must differ from your own organization."]},
        )
    return membership.organization


@transaction.atomic
def export_start(
    *,
    actor: Actor,
    study_uids: Sequence[str],
    options: object,
    destination: str = ExportDestination.ZIP,
    target_slug: str = "",
) -> Export:
    """Start a de-identified export of studies of `actor`'s archive (org admins or `medical` keys).

    Raises:
        PermissionDenied: not an org admin; an API key exporting into another organization;
            a target organization the caller does not administer.
        ValidationFailed: unknown options or study UIDs (`fields["studies"]` lists them).
    """
    actor.require_org_admin("export studies", key_scope=DOMAIN)
    deid_options = DeidOptions.from_dict(options)
    if destination not in ExportDestination.values:
        raise ValidationFailed(
            "Unknown destination.", fields={"destination": [f"One of: {', '.join(ExportDestination.values)}."]}
        )
    target = _target_for(actor=actor, slug=target_slug) if destination == ExportDestination.ORGANIZATION else None
    uids = list(dict.fromkeys(study_uids))
    if not uids:
        raise ValidationFailed("Name at least one study.", fields={"studies": ["This list may not be empty."]})
    studies = list(
        Study.objects.select_related("patient").filter(organization=actor.organization, study_instance_uid__in=uids)
    )
    unknown = sorted(set(uids) - {study.study_instance_uid for study in studies})
    if unknown:
        raise ValidationFailed(
            f"{len(unknown)} of the studies are not in this archive.",
            code="unknown_studies",
            fields={"studies": [f"Not found: {uid}" for uid in unknown]},
        )
    job = job_enqueue(actor=actor, kind=EXPORT_JOB_KIND)
    export = Export.objects.create(
        organization=actor.organization,
        job=job,
        study_uids=uids,
        options=deid_options.to_dict(),
        destination=destination,
        target_organization=target,
        created_by=actor.user,
    )
    job_params_set(job=job, params={"export_id": export.pk})
    audit_record(
        actor=actor,
        action="medical.export.start",
        obj=export,
        details={
            "studies": uids,
            "options": deid_options.to_dict(),
            "destination": destination,
            "target_organization": target.slug if target else "",
        },
    )
    # The export reads every instance of these studies (PHI) on the requester's behalf: one row, now.
    phi_access_record(
        actor=actor,
        kind=AccessKind.EXPORT,
        studies=[(study.study_instance_uid, study.patient.patient_id) for study in studies],
        path=f"/api/v1/medical/exports/{export.pk}/",
    )
    return export


def export_zip_name(export: Export) -> str:
    """One name per export: a re-run replaces the zip instead of adding a second one."""
    return f"{DOMAIN}/org-{export.organization_id}/exports/export-{export.pk}.zip"


def export_execute(*, export_id: int, report: Callable[..., None]) -> dict[str, Any]:
    """Run an export (the job): de-identify every instance of its studies, one progress step each."""
    export = Export.objects.select_related("organization", "target_organization", "created_by").get(pk=export_id)
    source = export.organization
    deidentifier = OrganizationDeidentifier.for_organization(source, DeidOptions.from_dict(export.options))
    instances = list(
        Instance.objects.select_related("series__study")
        .defer("attributes", "series__attributes", "series__study__attributes")  # the job reads the files
        .filter(organization=source, series__study__study_instance_uid__in=export.study_uids)
        .order_by(
            "series__study__study_instance_uid",
            "series__series_number",
            "series__series_instance_uid",
            "instance_number",
            "sop_instance_uid",
        )
    )
    quarantined: list[dict[str, str]] = []
    exported = 0
    total = max(len(instances), 1)
    target_actor = (
        Actor.system(export.target_organization, user=export.created_by)
        if export.destination == ExportDestination.ORGANIZATION and export.target_organization
        else None
    )
    if export.destination == ExportDestination.ORGANIZATION and target_actor is None:
        raise ValidationFailed("The export's target organization no longer exists.")
    with scratch_directory(prefix="export-") as folder:
        zip_path = folder / "export.zip"
        archive = (
            zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) if target_actor is None else None
        )
        try:
            for index, instance in enumerate(instances, start=1):
                held = _export_one(
                    instance=instance,
                    deidentifier=deidentifier,
                    folder=folder,
                    archive=archive,
                    target_actor=target_actor,
                )
                if held is None:
                    exported += 1
                else:
                    quarantined.append(held)
                report(progress=min(index / total, 0.99), message=f"{index}/{len(instances)} instances")
        finally:
            if archive is not None:
                archive.close()
        if archive is not None:
            name = export_zip_name(export)
            storage_delete([name])  # an earlier run's zip (a crash after saving it): replaced, not doubled
            with stored_files() as files, zip_path.open("rb") as handle:
                name = files.save(name, handle)
                Export.objects.filter(pk=export.pk).update(
                    file=name, exported_instances=exported, quarantined=quarantined
                )
        else:
            Export.objects.filter(pk=export.pk).update(exported_instances=exported, quarantined=quarantined)
    return {
        "export_id": export.pk,
        "destination": export.destination,
        "exported_instances": exported,
        "quarantined": len(quarantined),
        "missing_studies": sorted(
            set(export.study_uids) - {instance.series.study.study_instance_uid for instance in instances}
        ),
    }


def _export_one(
    *,
    instance: Instance,
    deidentifier: OrganizationDeidentifier,
    folder: Path,
    archive: zipfile.ZipFile | None,
    target_actor: Actor | None,
) -> dict[str, str] | None:
    """De-identify one stored instance into the zip or the target archive; the quarantine entry if held."""
    held = {
        "study": instance.series.study.study_instance_uid,
        "series": instance.series.series_instance_uid,
        "instance": instance.sop_instance_uid,
    }
    with default_storage.open(instance.file, "rb") as handle:
        dataset = pydicom.dcmread(handle)
    result = deidentifier(dataset)
    if result.needs_review:
        return {**held, "reason": result.review_reason}
    out = result.dataset
    path = folder / "instance.dcm"
    sha256, size = dataset_write(out, path)
    try:
        if archive is not None:
            archive.write(path, f"{out.StudyInstanceUID}/{out.SeriesInstanceUID}/{out.SOPInstanceUID}.dcm")
            return None
        assert target_actor is not None
        try:
            instance_store(actor=target_actor, path=path, sha256=sha256, size=size, received_via=ReceivedVia.EXPORT)
        except InstanceRefused as refusal:
            return {**held, "reason": f"Refused by the target archive: {refusal.message}"}
        return None
    finally:
        path.unlink(missing_ok=True)


def export_download_record(*, actor: Actor, export: Export) -> None:
    """Audit a download of an export's zip (de-identified, but derived from PHI)."""
    audit_record(actor=actor, action="medical.export.download", obj=export, details={"file": export.file})
