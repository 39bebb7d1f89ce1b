"""`manage.py medical_storage_check`: orphaned archive files are found and removed; rows are never touched."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command

from apps.medical.models import Instance
from apps.medical.services import study_delete
from core.tenancy.actors import Actor
from tests.medical.conftest import CT, MR

pytestmark = pytest.mark.django_db


def _check(*args: str) -> str:
    out = io.StringIO()
    call_command("medical_storage_check", *args, stdout=out)
    return out.getvalue()


def test_files_left_by_a_deletion_that_failed_after_commit_are_found_and_removed(
    stow: Any, org: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: two studies stored, and one deleted while deleting its files fails
    assert stow([CT, MR]).status_code == 200
    ct = Instance.objects.get(sop_instance_uid__endswith="12322")
    kept = Instance.objects.exclude(pk=ct.pk).get()
    monkeypatch.setattr("apps.medical.services.storage_delete", lambda names, storage=None: None)
    study_delete(actor=Actor.system(org), study=ct.series.study, reason="wrong patient")
    orphan = Path(settings.MEDIA_ROOT) / ct.file
    assert orphan.exists()

    # when
    report = _check()
    # then: the orphan is listed, nothing removed yet
    assert f"orphan  {ct.file}" in report and "1 orphaned file(s) found" in report
    assert orphan.exists()

    # when
    report = _check("--delete")
    # then: the orphan is gone, the other study's file and row are untouched
    assert "1 orphaned file(s) deleted" in report
    assert not orphan.exists()
    assert (Path(settings.MEDIA_ROOT) / kept.file).exists()
    assert Instance.objects.filter(pk=kept.pk).exists()
    assert "0 orphaned file(s) found" in _check()


def test_an_instance_whose_file_is_missing_is_reported_as_an_error(stow: Any) -> None:
    # given
    assert stow([CT]).status_code == 200
    instance = Instance.objects.get()
    (Path(settings.MEDIA_ROOT) / instance.file).unlink()
    # when / then
    with pytest.raises(SystemExit):
        _check()
