"""The duplicates policy (keep / overwrite / reject, the same bytes twice a no-op), the study and
series counts through stores, overwrites and deletions, and storage consistency when a deletion
fails halfway (rows and files both kept) or after its commit (rows gone, files orphaned, no
error to the caller)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.core.files.storage import default_storage, storages
from django.db.models.query import QuerySet

from apps.medical import services
from apps.medical.choices import DuplicatePolicy
from apps.medical.dicom_files import DUPLICATE_SOP_INSTANCE, WARNING_ELEMENTS_DISCARDED
from apps.medical.models import Instance, Patient, Series, Study
from core.audit.models import AuditEvent
from core.errors import ValidationFailed
from core.tenancy.actors import Actor
from tests.medical.conftest import CT, MR, dicom_path
from tests.medical.test_stow import (
    FAILED_SOP_SEQUENCE,
    WARNING_REASON,
    failed,
    item_code,
    item_uid,
    media_files,
    referenced,
    sop_uid,
    store_audits,
)

pytestmark = pytest.mark.django_db

Stow = Callable[..., Any]


def _set_policy(org: Any, policy: str) -> None:
    services.archive_settings_update(actor=Actor.system(org), duplicate_policy=policy)


def _changed_copy(tmp_path: Path, name: str = CT, **changes: Any) -> Path:
    """The same instance (same SOP Instance UID) with different bytes."""
    dataset = pydicom.dcmread(dicom_path(name))
    for keyword, value in {"StudyDescription": "second copy", **changes}.items():
        setattr(dataset, keyword, value)
    path = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}.dcm"
    dataset.save_as(path, enforce_file_format=True)
    return path


def _stored_bytes(sop_instance_uid: str) -> bytes:
    with default_storage.open(Instance.objects.get(sop_instance_uid=sop_instance_uid).file, "rb") as handle:
        return handle.read()


def _counts(study_uid: str) -> tuple[int, int, str, list[int]]:
    study = Study.objects.get(study_instance_uid=study_uid)
    series = [s.number_of_instances for s in Series.objects.filter(study=study).order_by("series_instance_uid")]
    return study.number_of_series, study.number_of_instances, study.modalities_in_study, series


def _rows() -> tuple[int, int, int, int]:
    return Study.objects.count(), Series.objects.count(), Instance.objects.count(), Patient.objects.count()


def _study_uid(name: str | Path) -> str:
    path = name if isinstance(name, Path) else dicom_path(name)
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


# --- the policy --------------------------------------------------------------------------------------


def test_keep_is_the_default_and_answers_a_warning(stow: Stow, org: Any, tmp_path: Path) -> None:
    # given
    assert stow([CT]).status_code == 200
    copy = _changed_copy(tmp_path)

    # when
    response = stow([copy])

    # then: 202, the item referenced with WarningReason 0xB006, a Warning header; the first bytes stay
    assert response.status_code == 202, response.content
    (item,) = referenced(response)
    assert item_uid(item) == sop_uid(CT)
    assert item_code(item, WARNING_REASON) == WARNING_ELEMENTS_DISCARDED
    assert FAILED_SOP_SEQUENCE not in response.json()
    assert response["Warning"].startswith("299 ")
    assert _stored_bytes(sop_uid(CT)) == dicom_path(CT).read_bytes()
    assert len(media_files()) == 1
    assert [event.action for event in store_audits(org)] == ["medical.instance.store"]
    assert _counts(_study_uid(CT)) == (1, 1, "CT", [1])


def test_the_same_bytes_twice_is_a_200_no_op(stow: Stow, org: Any) -> None:
    # given
    assert stow([CT]).status_code == 200
    before = Instance.objects.get()

    # when: again, under every policy
    for policy in (DuplicatePolicy.KEEP, DuplicatePolicy.OVERWRITE, DuplicatePolicy.REJECT):
        _set_policy(org, policy)
        response = stow([CT])

        # then
        assert response.status_code == 200, (policy, response.content)
        assert WARNING_REASON not in referenced(response)[0]
        assert "Warning" not in response
    after = Instance.objects.get()
    assert (after.pk, after.file, after.updated_at) == (before.pk, before.file, before.updated_at)
    assert len(media_files()) == 1 and len(store_audits(org)) == 1
    assert _counts(_study_uid(CT)) == (1, 1, "CT", [1])


def test_the_same_instance_twice_in_one_body(stow: Stow, org: Any, tmp_path: Path) -> None:
    # when: identical bytes twice, then a changed copy, in one request (policy keep)
    response = stow([CT, CT, _changed_copy(tmp_path)])

    # then: stored once; the identical copy a no-op, the changed one kept with a warning
    assert response.status_code == 202, response.content
    items = referenced(response)
    assert [item_uid(item) for item in items] == [sop_uid(CT)] * 3
    assert [WARNING_REASON in item for item in items] == [False, False, True]
    assert Instance.objects.count() == 1 and len(media_files()) == 1
    assert _stored_bytes(sop_uid(CT)) == dicom_path(CT).read_bytes()
    assert _counts(_study_uid(CT)) == (1, 1, "CT", [1])


def test_overwrite_stores_the_new_bytes_and_deletes_the_old_file_after_commit(
    stow: Stow, org: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    assert stow([CT, MR]).status_code == 200
    old = Instance.objects.get(sop_instance_uid=sop_uid(CT))
    _set_policy(org, DuplicatePolicy.OVERWRITE)
    copy = _changed_copy(tmp_path)

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = stow([copy])

    # then: 200; the new bytes are served, the old file is gone, the counts unchanged, audited
    assert response.status_code == 200, response.content
    assert callbacks, "the old file is deleted by an on_commit callback"
    assert _stored_bytes(sop_uid(CT)) == copy.read_bytes()
    assert not default_storage.exists(old.file)
    new = Instance.objects.get(sop_instance_uid=sop_uid(CT))
    assert new.pk == old.pk and new.sha256 != old.sha256
    assert len(media_files()) == 2  # the new CT and the MR
    assert _counts(_study_uid(CT)) == (1, 1, "CT", [1])
    assert Study.objects.get(study_instance_uid=_study_uid(CT)).study_description != "second copy"  # study row kept
    assert [event.action for event in store_audits(org)].count("medical.instance.overwrite") == 1


def test_overwrite_into_another_series_moves_the_counts(
    stow: Stow, org: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    # given: the CT stored; then a copy whose SeriesInstanceUID changed (a corrected resend)
    assert stow([CT]).status_code == 200
    _set_policy(org, DuplicatePolicy.OVERWRITE)
    copy = _changed_copy(tmp_path, SeriesInstanceUID="1.2.826.0.1.3680043.8.498.1", Modality="OT")

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = stow([copy])

    # then: the instance is in the new series; the old series, left empty, is gone
    assert response.status_code == 200, response.content
    assert Instance.objects.get().series.series_instance_uid == "1.2.826.0.1.3680043.8.498.1"
    assert _counts(_study_uid(CT)) == (1, 1, "OT", [1])
    assert Series.objects.count() == 1
    assert len(media_files()) == 1


def test_overwrite_into_another_study_recounts_and_removes_what_it_left_empty(
    stow: Stow, org: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    # given: two CT instances of one series; then one of them resent with another study and series
    paths = _two_series_study(tmp_path)[:2]
    assert stow(paths).status_code == 200
    old_study = _study_uid(paths[0])
    _set_policy(org, DuplicatePolicy.OVERWRITE)
    moved = pydicom.dcmread(paths[0])
    moved.StudyInstanceUID, moved.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.900", "1.2.826.0.1.3680043.8.498.901"
    moved_path = tmp_path / "moved.dcm"
    moved.save_as(moved_path, enforce_file_format=True)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        assert stow([moved_path]).status_code == 200

    # then: both studies' counts are right
    assert _counts(old_study) == (1, 1, "CT", [1])
    assert _counts("1.2.826.0.1.3680043.8.498.900") == (1, 1, "CT", [1])

    # when: the other instance moves too
    other = pydicom.dcmread(paths[1])
    other.StudyInstanceUID, other.SeriesInstanceUID = moved.StudyInstanceUID, moved.SeriesInstanceUID
    other_path = tmp_path / "other.dcm"
    other.save_as(other_path, enforce_file_format=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert stow([other_path]).status_code == 200

    # then: the old study, left empty, is gone; the new one has both
    assert not Study.objects.filter(study_instance_uid=old_study).exists()
    assert _counts("1.2.826.0.1.3680043.8.498.900") == (1, 2, "CT", [2])
    assert (Series.objects.count(), Patient.objects.count(), len(media_files())) == (1, 1, 2)


def test_reject_refuses_a_changed_copy_with_0x0111(stow: Stow, org: Any, tmp_path: Path) -> None:
    # given
    assert stow([CT]).status_code == 200
    _set_policy(org, DuplicatePolicy.REJECT)

    # when: only the changed copy, then the changed copy beside a new instance
    alone = stow([_changed_copy(tmp_path)])
    mixed = stow([_changed_copy(tmp_path), MR])

    # then: 409 when it was the only one, 202 beside a stored one; the first bytes stay
    assert alone.status_code == 409, alone.content
    assert [(item_uid(item), item_code(item)) for item in failed(alone)] == [(sop_uid(CT), DUPLICATE_SOP_INSTANCE)]
    assert mixed.status_code == 202, mixed.content
    assert [item_code(item) for item in failed(mixed)] == [DUPLICATE_SOP_INSTANCE]
    assert [item_uid(item) for item in referenced(mixed)] == [sop_uid(MR)]
    assert _stored_bytes(sop_uid(CT)) == dicom_path(CT).read_bytes()
    assert len(media_files()) == 2
    assert [event.action for event in store_audits(org)] == ["medical.instance.store"] * 2


def test_the_policy_is_per_organization(stow: Stow, other_api: Any, org: Any, other_org: Any, tmp_path: Path) -> None:
    # given: acme rejects, globex keeps (default); both hold the CT
    _set_policy(org, DuplicatePolicy.REJECT)
    copy = _changed_copy(tmp_path)
    assert stow([CT]).status_code == 200
    assert stow([CT], client=other_api).status_code == 200

    # when / then
    assert stow([copy]).status_code == 409
    kept = stow([copy], client=other_api)
    assert kept.status_code == 202 and item_code(referenced(kept)[0], WARNING_REASON) == WARNING_ELEMENTS_DISCARDED


def test_an_unknown_policy_is_refused(org: Any) -> None:
    with pytest.raises(ValidationFailed):
        services.archive_settings_update(actor=Actor.system(org), duplicate_policy="merge")


# --- counts through stores and deletions ---------------------------------------------------------


def _two_series_study(tmp_path: Path) -> list[Path]:
    """One study of 3 instances in 2 series (CT, CT, then an MR series), from the real CT file."""
    base = pydicom.dcmread(dicom_path(CT))
    paths = []
    for index, (series, modality) in enumerate(
        [("1.2.826.0.1.3680043.8.498.11", "CT")] * 2 + [("1.2.826.0.1.3680043.8.498.12", "MR")]
    ):
        dataset = base.copy()
        dataset.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.100.{index}"
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.SeriesInstanceUID = series
        dataset.Modality = modality
        path = tmp_path / f"i{index}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def test_counts_through_stores_and_deletions(
    stow: Stow, org: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    # given: the study's instances in two requests
    paths = _two_series_study(tmp_path)
    study_uid = _study_uid(paths[0])
    assert stow(paths[:1]).status_code == 200
    assert _counts(study_uid) == (1, 1, "CT", [1])
    assert stow(paths[1:]).status_code == 200
    assert _counts(study_uid) == (2, 3, "CT\\MR", [2, 1])
    assert stow([MR]).status_code == 200  # another study, untouched below
    actor = Actor.system(org)

    # when: the MR series is deleted
    with django_capture_on_commit_callbacks(execute=True):
        services.series_delete(
            actor=actor,
            series=Series.objects.get(modality="MR", study__study_instance_uid=study_uid),
            reason="wrong patient",
        )

    # then
    assert _counts(study_uid) == (1, 2, "CT", [2])
    assert Instance.objects.filter(series__study__study_instance_uid=study_uid).count() == 2
    assert len(media_files()) == 3  # two CTs of the study, the other study's MR
    assert AuditEvent.objects.filter(action="medical.series.delete", details__reason="wrong patient").count() == 1

    # when: the study is deleted
    with django_capture_on_commit_callbacks(execute=True):
        services.study_delete(actor=actor, study=Study.objects.get(study_instance_uid=study_uid), reason="duplicate")

    # then: its rows and files are gone, its patient too (no other study); the other study untouched
    assert not Study.objects.filter(study_instance_uid=study_uid).exists()
    assert [instance.sop_instance_uid for instance in Instance.objects.all()] == [sop_uid(MR)]
    assert len(media_files()) == 1
    assert Patient.objects.count() == 1
    assert _counts(_study_uid(MR)) == (1, 1, "MR", [1])

    # and: the study can be stored again
    assert stow(paths).status_code == 200
    assert _counts(study_uid) == (2, 3, "CT\\MR", [2, 1])


def test_a_deletion_needs_a_reason_and_an_admin(stow: Stow, org: Any, make_member: Callable[..., Any]) -> None:
    # given
    assert stow([CT]).status_code == 200
    study = Study.objects.get()
    clinician = Actor.for_user(organization=org, user=make_member(org, role="clinician"), role="clinician")

    # when / then
    with pytest.raises(ValidationFailed):
        services.study_delete(actor=Actor.system(org), study=study, reason="  ")
    from core.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.study_delete(actor=clinician, study=study, reason="x")
    assert Instance.objects.count() == 1 and len(media_files()) == 1


# --- a deletion that fails ----------------------------------------------------------------------------


def test_a_study_deletion_failing_inside_its_transaction_keeps_every_row_and_file(
    stow: Stow, org: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    # given: a study of three instances; deleting its patient (after the study's rows) fails
    paths = _two_series_study(tmp_path)
    assert stow(paths).status_code == 200
    files_before = media_files()
    original_delete = QuerySet.delete

    def failing_delete(self: QuerySet[Any]) -> Any:
        if self.model is Patient:
            raise RuntimeError("the database went away")
        return original_delete(self)

    monkeypatch.setattr(QuerySet, "delete", failing_delete)

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError):
        services.study_delete(actor=Actor.system(org), study=Study.objects.get(), reason="cleanup")

    # then: nothing happened: every row, file, count; no delete audit row; no file callback ran
    assert callbacks == []
    assert (Study.objects.count(), Series.objects.count(), Instance.objects.count(), Patient.objects.count()) == (
        1,
        2,
        3,
        1,
    )
    assert media_files() == files_before
    assert _counts(_study_uid(paths[0])) == (2, 3, "CT\\MR", [2, 1])
    assert not AuditEvent.objects.filter(action="medical.study.delete").exists()


def test_a_file_deletion_failing_after_commit_leaves_orphans_and_no_error(
    stow: Stow, org: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    # given
    paths = _two_series_study(tmp_path)
    assert stow(paths).status_code == 200
    files_before = media_files()
    storage_type = type(storages["default"])  # the configured FileSystemStorage

    def failing(self: Any, name: str) -> None:
        raise OSError("read-only file system")

    monkeypatch.setattr(storage_type, "delete", failing)

    # when: the rows go; deleting the files after the commit fails
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.study_delete(actor=Actor.system(org), study=Study.objects.get(), reason="cleanup")

    # then: no error to the caller, the rows are gone (audited), the files stay as orphans
    assert len(callbacks) == 1
    assert (Study.objects.count(), Series.objects.count(), Instance.objects.count(), Patient.objects.count()) == (
        0,
        0,
        0,
        0,
    )
    assert media_files() == files_before
    assert AuditEvent.objects.filter(action="medical.study.delete").count() == 1


def test_deleting_a_study_in_one_org_keeps_the_same_bytes_of_another_org(
    stow: Stow, other_api: Any, org: Any, other_org: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given: the same CT in both organizations (one file each: the organization is in the path)
    assert stow([CT]).status_code == 200
    assert stow([CT], client=other_api).status_code == 200
    mine, theirs = (Instance.objects.get(organization=o) for o in (org, other_org))

    # when
    with django_capture_on_commit_callbacks(execute=True):
        services.study_delete(actor=Actor.system(org), study=mine.series.study, reason="x")

    # then
    assert not default_storage.exists(mine.file)
    assert default_storage.exists(theirs.file)
    assert Study.objects.get().organization_id == other_org.pk
