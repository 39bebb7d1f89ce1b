"""Routing and analysis on real parts: PostgreSQL, Redis and a real prefork Celery worker.

A routing rule is in place; a study arrives by STOW-RS (the web process), the rule enqueues an
analysis on the `inference` queue, the worker classifies the images (the classifier's artifact
is read from the shared artifact storage, as on any worker host), writes the SR and saliency
capture into the study, and the SR is then retrievable by WADO-RS here.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pydicom
import pytest

from tests.integration.conftest import wait_for
from tests.integration.test_domain_jobs_real_worker import _poll_job
from tests.medical.conftest import stow_body, stow_content_type
from tests.medical.diagnosis_fixtures import MODEL_NAME, classifier_version, mednist_files, requires_mednist
from tests.realservices import RealWorker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), requires_mednist]


@pytest.mark.timeout(300)
def test_a_stowed_study_is_analysed_by_the_worker_and_its_sr_is_retrievable(
    real_worker: RealWorker, api: Any, org: Any
) -> None:
    # given a classifier and a rule sending chest X-rays to it
    classifier_version(org)
    rule = api.generic(
        "POST",
        "/api/v1/medical/routing-rules/",
        json.dumps({"name": "chest", "model": MODEL_NAME, "series_description_pattern": "cxr"}),
        content_type="application/json",
    )
    assert rule.status_code == 201, rule.content
    files = mednist_files("CXR", count=4) + mednist_files("Hand", count=2)
    study_uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    analyses_url = f"/api/v1/medical/studies/{study_uid}/analyses/"

    # when the study arrives by STOW-RS
    started = time.monotonic()
    stored = api.generic("POST", "/api/v1/medical/dicomweb/studies", stow_body(files), content_type=stow_content_type())
    assert stored.status_code == 200, stored.content

    # then one analysis was enqueued by the rule, and the worker ran it
    listing = api.get(analyses_url).json()["results"]
    assert len(listing) == 1 and listing[0]["trigger"] == "routing"
    job, seen = _poll_job(api, listing[0]["job"]["url"], real_worker, timeout=240)
    assert job["status"] == "succeeded", (job, real_worker.logs()[-6000:])
    assert job["kind"] == "medical.analysis" and job["domain"] == "medical"
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert job["result"]["instances"] == 4  # the rule's series only
    detail = api.get(listing[0]["url"]).json()
    assert [series["series_description"] for series in detail["series"]] == ["CXR"]
    assert detail["suggested_label"] in {"CXR", "Hand"}

    # and the SR is in the study, retrievable like any instance
    def retrieved() -> bytes | None:
        response = api.get(detail["structured_report_url"], HTTP_ACCEPT='multipart/related; type="application/dicom"')
        if response.status_code != 200:
            return None
        return b"".join(response.streaming_content) if response.streaming else response.content

    body = wait_for(retrieved, timeout=30, interval=0.2, what="the SR to be retrievable", worker=real_worker)
    seconds = time.monotonic() - started
    assert detail["sr_sop_instance_uid"].encode() in body
    print(f"STOW of {len(files)} instances to a retrievable SR on a real worker: {seconds:.1f} s")
