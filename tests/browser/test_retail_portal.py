"""Browser: a merchant opens a customer's recommendations with reasons, then the model's chart."""

from __future__ import annotations

import pytest

from tests.browser.conftest import login
from tests.retail.conftest import FAST_ALS, load, movielens_subset


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_merchant_flow(browser_page, live_server, make_member, org, api):
    # given a trained model (real MovieLens rows, ALS trained inline) and a merchant
    items, events = movielens_subset()
    load(api, items, events)
    response = api.post("/api/v1/retail/training-runs/", {"algorithm": "als", "params": FAST_ALS}, format="json")
    assert response.status_code == 202, response.content[:500]
    make_member(org, role="merchant", username="mia", password="pass-1234")
    customer = events[0]["customer"]
    page = browser_page
    login(page, live_server, "mia", "pass-1234")

    # when opening a customer with history
    page.goto(f"{live_server.url}/portal/retail/customers/{customer}/")
    page.wait_for_selector("[data-testid=recommendations]")
    # then the recommendations carry their source and the "because you …" reasons
    assert "model" in page.inner_text("[data-testid=recommendations]")
    assert "Because you" in page.inner_text("[data-testid=recommendations]")

    # when opening the model page, then the offline metrics chart is drawn
    page.goto(f"{live_server.url}/portal/retail/models/recommendations/")
    page.wait_for_selector("[data-testid=metrics-chart] svg")
    assert page.query_selector("[data-testid=metrics-table]") is not None
