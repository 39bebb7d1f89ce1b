"""Browser: a credit analyst uploads data, trains, sees the ROC curve and scores one applicant."""

from __future__ import annotations

import pytest

from fixtures.finance_synthetic import generate_credit_applications
from tests.browser.conftest import login


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_analyst_flow(browser_page, live_server, make_member, org, tmp_path):
    # given an analyst and a CSV of historical applications
    make_member(org, role="credit_analyst", username="ana", password="pass-1234")
    frame = generate_credit_applications(1_500, seed=11)
    path = tmp_path / "history.csv"
    frame.to_csv(path, index=False)
    page = browser_page
    login(page, live_server, "ana", "pass-1234")

    # when uploading it
    page.goto(f"{live_server.url}/portal/finance/datasets/new/")
    page.set_input_files("#id_file", str(path))
    page.fill("#id_target", "default")
    page.click("[data-testid=dataset-upload] button[type=submit]")
    # then the inferred schema is shown
    page.wait_for_selector("[data-testid=schema]")
    assert "application_id" in page.inner_text("[data-testid=schema]")

    # when training (small settings so the test stays fast; jobs run inline in the test server)
    page.fill("#id_n_estimators", "60")
    page.fill("#id_learning_rate", "0.2")
    page.click("[data-testid=train-form] button[type=submit]")
    page.wait_for_selector("[data-testid=version-link]", timeout=60_000)
    page.click("[data-testid=version-link]")
    # then the model page shows the ROC curve and the metrics vs the baseline
    page.wait_for_selector("[data-testid=roc-chart] svg")
    assert page.query_selector("[data-testid=calibration-chart] svg") is not None
    assert page.query_selector("[data-testid=importance-chart] svg") is not None
    assert "Intended use" in (page.text_content("[data-testid=model-card]") or "")
    # text_content, not inner_text: the table header is upper-cased by CSS
    assert "Logistic baseline" in (page.text_content("[data-testid=metrics]") or "")

    # when scoring one applicant through the form
    page.goto(f"{live_server.url}/portal/finance/score/")
    row = frame.iloc[0]
    page.fill("#id_application_id", "WEB-1")
    for name, value in row.drop(["application_id", "default"]).items():
        if value != value:  # missing
            continue
        selector = f"[name=f__{name}]"
        if page.eval_on_selector(selector, "e => e.tagName") == "SELECT":
            page.select_option(selector, str(value))
        else:
            page.fill(selector, str(value))
    page.check("#id_explain")  # reasons whatever the decision (review/decline always carry them)
    page.click("[data-testid=score-form] button[type=submit]")
    # then the decision, score and its principal reasons are shown
    page.wait_for_selector("[data-testid=score-result]")
    decision = page.inner_text("[data-testid=decision]")
    assert decision in ("approve", "review", "decline")
    assert int(page.inner_text("[data-testid=score]")) > 0
    reasons = page.query_selector_all("[data-testid=reasons] li")
    assert 1 <= len(reasons) <= 4
    assert "RC_" in reasons[0].inner_text()

    # when opening the decision record and replaying it
    page.click("[data-testid=score-result] a")
    page.click("text=Replay with the logged version")
    # then it reproduces exactly
    page.wait_for_selector("[data-testid=replay]")
    assert "Reproduced exactly" in page.inner_text("[data-testid=replay]")
