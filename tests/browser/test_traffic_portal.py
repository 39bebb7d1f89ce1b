"""Browser: a traffic operator uploads an image, sees the boxes, then the camera's counts chart."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import login
from tests.traffic.conftest import detector, import_detector, tiny_weights  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("detector")

ASSETS = Path(str(__import__("ultralytics").__file__)).parent / "assets"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_operator_flow(browser_page, live_server, make_member, org):
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

    # then the annotated image (boxes drawn) loads and the boxes are listed
    page.wait_for_selector("[data-testid=annotated-image]")
    assert page.eval_on_selector("[data-testid=annotated-image]", "img => img.complete && img.naturalWidth") > 0
    assert page.query_selector("[data-testid=detections] tbody tr") is not None

    # and the camera page shows the frame with its line and the counts chart
    page.click("text=Main St")
    page.wait_for_selector("[data-testid=camera-overlay] line", state="attached")
    assert page.query_selector("[data-testid=counts-chart] svg") is not None
