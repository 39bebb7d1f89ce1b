"""A de-identified export on real parts: PostgreSQL, Redis and a real prefork Celery worker.

Studies are stored by STOW-RS here (the web process), the worker de-identifies every instance
(live progress per instance, visible through the jobs API), and the zip it wrote to storage
downloads here with the de-identified copies.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pydicom
import pytest

from tests.integration.test_domain_jobs_real_worker import _poll_job
from tests.medical.conftest import CT, MR, MULTIFRAME, dicom_path, stow_body, stow_content_type
from tests.realservices import RealWorker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SLICES = 60


def _ct_slice(number: int) -> bytes:
    """pydicom's CT as slice `number` of a second series of the same study (new series and SOP UIDs)."""
    dataset = pydicom.dcmread(dicom_path(CT))
    dataset.SeriesInstanceUID = f"{dataset.StudyInstanceUID}.9"
    dataset.SOPInstanceUID = f"{dataset.StudyInstanceUID}.9.{number}"
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.InstanceNumber = number
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.timeout(180)
def test_an_export_job_runs_on_the_worker_and_the_zip_downloads(real_worker: RealWorker, api: Any) -> None:
    # given: the CT, MR and multi-frame MR, and a series of 60 more slices of the CT (its real
    # pixels under new SOP Instance UIDs) so the job runs long enough to be seen in progress
    slices = [_ct_slice(number) for number in range(1, SLICES + 1)]
    stored = api.generic(
        "POST",
        "/api/v1/medical/dicomweb/studies",
        stow_body([CT, MR, MULTIFRAME, *slices]),
        content_type=stow_content_type(),
    )
    assert stored.status_code == 200, stored.content
    sources = {str(pydicom.dcmread(dicom_path(name)).SOPInstanceUID): name for name in (CT, MR, MULTIFRAME)}
    studies = [str(pydicom.dcmread(dicom_path(name)).StudyInstanceUID) for name in (CT, MR, MULTIFRAME)]

    # when: the export is started and the worker runs it
    started = api.post("/api/v1/medical/exports/", {"studies": studies}, format="json")
    assert started.status_code == 202, started.content
    job, seen = _poll_job(api, started.json()["job"]["url"], real_worker, timeout=120)

    # then: it succeeded with its result, after progress reported per instance
    assert job["status"] == "succeeded", (job, real_worker.logs()[-6000:])
    assert job["domain"] == "medical" and job["kind"] == "medical.deid_export"
    assert job["result"]["exported_instances"] == 3 + SLICES
    assert any(0.0 < progress < 1.0 for progress in seen), f"no live progress from the worker: {seen}"
    assert seen == sorted(seen) and seen[-1] == 1.0
    export = api.get(f"/api/v1/medical/exports/{started.json()['id']}/").json()
    assert (export["exported_instances"], export["quarantined"]) == (3 + SLICES, [])

    # and: the zip downloads with three de-identified copies whose pixels are the originals'
    download = api.get(export["download_url"])
    assert download.status_code == 200
    body = b"".join(download.streaming_content) if download.streaming else download.content
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        copies = [pydicom.dcmread(io.BytesIO(archive.read(name))) for name in archive.namelist()]
    assert len(copies) == 3 + SLICES
    originals = [pydicom.dcmread(dicom_path(name)) for name in (CT, MR, MULTIFRAME)]
    originals += [pydicom.dcmread(io.BytesIO(data)) for data in slices]
    assert sorted(copy.PixelData for copy in copies) == sorted(original.PixelData for original in originals)
    # the CT's slices are one de-identified series of the CT's de-identified study
    ct_copies = [copy for copy in copies if copy.Modality == "CT"]
    assert len({copy.StudyInstanceUID for copy in ct_copies}) == 1
    for copy in copies:
        assert copy.PatientIdentityRemoved == "YES"
        assert str(copy.SOPInstanceUID) not in sources
