"""Browser: the clinician's review. From the worklist to the study with its AI suggestion, into the
viewer with the saliency overlay toggled on over the slice it concerns, then the report written,
the suggestion accepted and the report signed (with the confirmation), and the worklist says
"Reported". No console errors.

The study is real MedNIST images (../shared/data/medical_mednist) stored through the archive's
services; the analysis is real rows with a saliency PNG generated here (tests/medical/review_rows.py),
so the flow does not wait for a trained classifier."""

from __future__ import annotations

from typing import Any

import pytest

from apps.medical.choices import ReportStatus
from apps.medical.models import Report
from tests.browser.conftest import _in_ci, login
from tests.browser.test_medical_portal import _console_errors
from tests.conftest import SHARED_DATA
from tests.medical.review_rows import analysis_make, store_files

MEDNIST = SHARED_DATA / "medical_mednist" / "dicom" / "ChestCT"


def _wait(page: Any, condition: str) -> None:
    """Wait for a condition, checked on a timer: animation frames are not what changes here (an
    image's load, a slider's input), and headless chromium may not run them while nothing paints."""
    page.wait_for_function(condition, polling=100)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_worklist_viewer_overlay_and_signing(browser_page, live_server, make_member, org, tmp_path):
    if not MEDNIST.is_dir():
        if _in_ci():
            pytest.fail(f"CI=true and this test needs {MEDNIST}", pytrace=False)
        pytest.skip(f"{MEDNIST} is not there")
    # given three chest CT slices of one study, an AI suggestion about the second, and a clinician
    instances = store_files(org, sorted(MEDNIST.glob("*.dcm"))[:3], tmp=tmp_path)
    study = instances[0].series.study
    ordered = sorted(instances, key=lambda i: (i.instance_number or 0, i.sop_instance_uid))
    analysis_make(org, study, label="ChestCT", instance=ordered[1])
    user = make_member(org, role="clinician", username="cleo", password="pass-1234")
    user.first_name, user.last_name = "Cleo", "Doe"
    user.save(update_fields=["first_name", "last_name"])
    page = browser_page
    errors = _console_errors(page)
    login(page, live_server, "cleo", "pass-1234")

    # when opening the worklist, then the study waits with its AI suggestion
    page.click("nav.portal-nav a[data-nav=medical]")
    page.click("[data-testid=nav-worklist]")
    row = page.locator(f"[data-testid=worklist] tr[data-study-uid='{study.study_instance_uid}']")
    assert row.locator("[data-testid=worklist-state]").inner_text() == "AI suggested"
    assert "ChestCT" in row.inner_text()

    # when opening the study, then the suggestion, its probabilities and the model show
    row.locator("a").first.click()
    page.wait_for_selector("[data-testid=ai-panel]")
    assert page.inner_text("[data-testid=ai-suggested-label]") == "ChestCT"
    assert page.locator("[data-testid=ai-probabilities] svg rect").count() >= 12
    assert "mednist" in page.inner_text("[data-testid=ai-model]")

    # when viewing where the model looked, then the viewer jumps to the slice of the finding
    page.click("[data-testid=ai-open-finding]")
    page.wait_for_selector("[data-testid=viewer-image]")
    _wait(page, "() => document.querySelector('[data-viewer-image]').dataset.loadedIndex === '1'")
    assert page.inner_text("[data-testid=slice-counter]").startswith("Slice 2 / 3")
    assert page.is_hidden("[data-testid=ai-overlay]")
    # and toggling the overlay lays the saliency PNG exactly over the slice
    page.check("[data-testid=ai-overlay-toggle]")
    _wait(
        page,
        "() => { const i = document.querySelector('[data-ai-overlay]'); return i.complete && i.naturalWidth > 0; }",
    )
    assert page.eval_on_selector("[data-testid=ai-overlay]", "i => i.naturalWidth") == 64
    assert page.is_visible("[data-testid=ai-overlay]")
    image_box = page.locator("[data-testid=viewer-image]").bounding_box()
    overlay_box = page.locator("[data-testid=ai-overlay]").bounding_box()
    assert image_box and overlay_box
    for key in ("x", "y", "width", "height"):
        assert abs(image_box[key] - overlay_box[key]) < 1.5, (key, image_box, overlay_box)
    # on another slice it hides, and comes back with the finding's slice
    page.click("[data-viewer-step='-1']")
    _wait(page, "() => document.querySelector('[data-viewer-image]').dataset.loadedIndex === '0'")
    assert page.is_hidden("[data-testid=ai-overlay]")
    page.click("[data-testid=ai-overlay-jump]")
    _wait(page, "() => !document.querySelector('[data-ai-overlay]').hidden")

    # when writing the report: accept the suggestion and sign (confirming)
    page.goto(f"{live_server.url}/portal/medical/studies/{study.study_instance_uid}/")
    page.click("[data-testid=start-report]")
    page.wait_for_selector("[data-testid=report-form]")
    page.fill("#id_findings", "Chest CT slice; lungs aerated.")
    page.fill("#id_impression", "Chest CT as suggested.")
    page.check("input[name=ai_decision][value=accepted]")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-testid=report-sign]")
    page.wait_for_selector("[data-testid=signed-report]")
    # then it is signed, by the clinician, with its hash
    assert page.inner_text("[data-testid=report-status]") == "Signed (verified)"
    assert "Cleo Doe" in page.inner_text("[data-testid=report-signed-by]")
    assert page.inner_text("[data-testid=report-final-label]") == "ChestCT"
    report = Report.objects.get(study=study)
    assert (
        report.status == ReportStatus.SIGNED and page.inner_text("[data-testid=report-hash]") == report.content_sha256
    )

    # and the worklist no longer lists it as waiting; asked for every state, it shows it reported
    page.click("[data-testid=nav-worklist]")
    row = page.locator(f"[data-testid=worklist] tr[data-study-uid='{study.study_instance_uid}']")
    assert row.count() == 0
    page.select_option("[data-testid=worklist-filters] select[name=state]", "any")
    page.click("[data-testid=worklist-filters] button[type=submit]")
    row = page.locator(f"[data-testid=worklist] tr[data-study-uid='{study.study_instance_uid}']")
    assert row.locator("[data-testid=worklist-state]").inner_text() == "Reported"
    assert errors == []
