"""Browser: a traffic operator uploads an image, sees the boxes, then the camera's counts chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import login
from tests.traffic.conftest import detector, import_detector, tiny_weights  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("detector")

ASSETS = Path(str(__import__("ultralytics").__file__)).parent / "assets"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_operator_flow(browser_page: Any, live_server: Any, make_member: Any, org: Any) -> None:
    # given an operator and an imported detector
    make_member(org, role="traffic_operator", username="otto", password="pass-1234")
    page = browser_page
    login(page, live_server, "otto", "pass-1234")

    # when registering a camera with a counting line
    page.goto(f"{live_server.url}/portal/traffic/")
    page.fill("#id_name", "Main St")
    page.click("[data-testid=camera-form] button[type=submit]")
    page.wait_for_selector("[data-testid=counts-chart] svg")

    # and uploading a real photo for that camera
    page.set_input_files("[data-testid=detect-form] input[type=file]", str(ASSETS / "bus.jpg"))
    page.fill("[data-testid=detect-form] #id_conf", "0.001")
    page.click("[data-testid=detect-form] button[type=submit]")

    # then the annotated image (boxes drawn) loads at the photo's size and the boxes are listed
    page.wait_for_selector("[data-testid=annotated-image]")
    page.wait_for_function("document.querySelector('[data-testid=annotated-image]').complete")
    assert page.eval_on_selector("[data-testid=annotated-image]", "img => img.naturalWidth") == 810  # bus.jpg
    boxes = page.query_selector_all("[data-testid=detections] tbody tr")
    assert boxes and "No boxes" not in boxes[0].inner_text()
    # and the counts per category are shown
    counts = {
        item.inner_text().split(":")[0]: int(item.inner_text().split(":")[1])
        for item in page.query_selector_all("[data-testid=detection-counts] li")
    }
    assert counts and set(counts) <= {"car", "person"}

    # and the camera page shows the frame with its line and the counts chart with those counts
    page.click("text=Main St")
    page.wait_for_selector("[data-testid=camera-overlay] line", state="attached")
    page.wait_for_function("document.querySelector('[data-testid=camera-frame] img').naturalWidth > 0")
    bars = page.query_selector_all("[data-testid=counts-chart] svg rect title")
    charted: dict[str, int] = {}
    for bar in bars:
        category, count = (bar.text_content() or "").split(": ")
        charted[category] = charted.get(category, 0) + int(count)
    assert charted == counts
    totals = page.inner_text("[data-testid=counts-totals]")
    assert all(f"{category} {count}" in totals for category, count in counts.items())
