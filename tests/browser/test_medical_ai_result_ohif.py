"""Browser: an AI result SR stored into a study shows in OHIF (part 1's viewer) as the study's SR series.

The SR is the one `apps.medical.structured_reports.ai_result_sr` writes, stored through STOW-RS
like any instance; OHIF finds it through Tessera's QIDO-RS/WADO-RS and lists it in its study
browser with modality SR and the series description that says it is an AI result.
"""

from __future__ import annotations

import io
from typing import Any

import pydicom
import pytest
from pydicom.uid import generate_uid

from apps.medical.ohif import ohif_dist
from apps.medical.structured_reports import AI_SERIES_DESCRIPTION, AiFinding, Algorithm, ai_result_sr
from tests.browser.conftest import _in_ci, login
from tests.browser.test_medical_portal import _console_errors
from tests.medical.conftest import CT, dicom_path, stow_body, stow_content_type

OHIF_TIMEOUT_MS = 60_000


def _sr_bytes(source: pydicom.Dataset) -> bytes:
    sr = ai_result_sr(
        study=source,
        finding=AiFinding(
            label="nodule", probability=0.7, probabilities={"nodule": 0.7, "no nodule": 0.3}, source_instances=[source]
        ),
        algorithm=Algorithm(name="ct-nodule-classifier", version="1", artifact_sha256="ab" * 32),
        series_instance_uid=generate_uid(),
        sop_instance_uid=generate_uid(),
        series_number=9001,
    )
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, sr, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_ohif_lists_the_ai_result_sr_of_a_study(
    browser_page: Any, live_server: Any, make_member: Any, org: Any, api: Any
) -> None:
    if not (ohif_dist() / "index.html").is_file():
        reason = f"OHIF is not installed in {ohif_dist()} (make ohif)"
        if _in_ci():
            pytest.fail(f"CI=true and this test needs OHIF: {reason}", pytrace=False)
        pytest.skip(reason)
    # given a stored CT study with an AI result SR stored into it, and a clinician
    source = pydicom.dcmread(dicom_path(CT))
    response = api.generic(
        "POST", "/api/v1/medical/dicomweb/studies", stow_body([CT, _sr_bytes(source)]), content_type=stow_content_type()
    )
    assert response.status_code == 200, response.content[:500]
    make_member(org, role="clinician", username="cleo", password="pass-1234")
    page = browser_page
    errors = _console_errors(page)
    login(page, live_server, "cleo", "pass-1234")

    # when the clinician opens the study in OHIF
    page.goto(f"{live_server.url}/portal/medical/ohif/viewer?StudyInstanceUIDs={source.StudyInstanceUID}")

    # then its study browser lists the SR series, modality SR, next to the CT
    sr_thumbnail = page.locator("[data-cy=study-browser-thumbnail-no-image]", has_text=AI_SERIES_DESCRIPTION)
    sr_thumbnail.wait_for(state="visible", timeout=OHIF_TIMEOUT_MS)
    assert sr_thumbnail.locator("[data-cy=series-modality-label]").inner_text().strip() == "SR"
    assert sr_thumbnail.locator("[data-cy=series-description-label]").inner_text().strip() == AI_SERIES_DESCRIPTION
    modalities = page.locator("[data-cy=study-browser-thumbnail] [data-cy=series-modality-label]").all_inner_texts()
    assert [text.strip() for text in modalities] == ["CT"]
    # and the study row's modalities include the SR
    assert "CT\\SR" in page.inner_text("[data-cy=studyBrowser-panel]")
    assert errors == [], errors
    # OHIF keeps prefetching; leave it before the live server's database is flushed under it
    page.goto("about:blank")
