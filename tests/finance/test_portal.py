"""The analyst portal through Django's test client: every page renders; another org's rows are 404."""

from __future__ import annotations

import pytest

from tests.finance.conftest import applicant, csv_upload

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def analyst_client(client, make_member, org):
    make_member(org, role="credit_analyst", username="ana")
    client.login(username="ana", password="pass-1234")
    return client


def test_analyst_pages(api, analyst_client, trained_model, credit_frame):
    # given a decision and a batch
    decision = api.post(
        "/api/v1/finance/scores/", {"application_id": "P-1", "features": applicant(credit_frame, 4)}, format="json"
    ).json()
    batch = api.post(
        "/api/v1/finance/batches/",
        {"file": csv_upload(credit_frame.drop(columns=["default"]).head(50))},
        format="multipart",
    ).json()
    dataset_id = trained_model["dataset"]["id"]
    pages = [
        "/portal/finance/",
        "/portal/finance/datasets/new/",
        f"/portal/finance/datasets/{dataset_id}/",
        f"/portal/finance/training-runs/{trained_model['run']['id']}/",
        "/portal/finance/models/credit-risk/",
        "/portal/finance/models/credit-risk/v1/",
        "/portal/finance/models/credit-risk/compare/",
        "/portal/finance/models/credit-risk/monitoring/",
        "/portal/finance/score/",
        "/portal/finance/decisions/?decision=decline",
        f"/portal/finance/decisions/{decision['decision_id']}/",
        "/portal/finance/batches/",
        f"/portal/finance/batches/{batch['id']}/",
        f"/portal/finance/batches/{batch['id']}/results.csv",
        "/portal/finance/policy/",
    ]
    for page in pages:
        response = analyst_client.get(page)
        assert response.status_code == 200, (page, response.status_code)
    model_page = analyst_client.get("/portal/finance/models/credit-risk/").content.decode()
    assert "<svg" in model_page and "ROC curve" in model_page and "Model card" in model_page


def test_portal_scoring_form(analyst_client, trained_model, credit_frame):
    features = {f"f__{k}": v for k, v in applicant(credit_frame, 5).items()}
    response = analyst_client.post("/portal/finance/score/", {"application_id": "P-2", **features})
    assert response.status_code == 200
    assert b'data-testid="decision"' in response.content


def test_analyst_cannot_change_policy(analyst_client):
    response = analyst_client.post("/portal/finance/policy/", {"pdo": 40})
    assert response.status_code == 403


def test_other_org_rows_are_404_in_the_portal(client, make_member, other_org, api, trained_model, credit_frame):
    decision = api.post(
        "/api/v1/finance/scores/", {"application_id": "P-1", "features": applicant(credit_frame, 4)}, format="json"
    ).json()
    make_member(other_org, role="credit_analyst", username="eve")
    client.login(username="eve", password="pass-1234")
    for page in (
        f"/portal/finance/datasets/{trained_model['dataset']['id']}/",
        "/portal/finance/models/credit-risk/",
        f"/portal/finance/decisions/{decision['decision_id']}/",
        f"/portal/finance/training-runs/{trained_model['run']['id']}/",
    ):
        assert client.get(page).status_code == 404, page


def test_other_roles_are_refused(client, make_member, org):
    make_member(org, role="clinician", username="doc")
    client.login(username="doc", password="pass-1234")
    assert client.get("/portal/finance/").status_code == 403
