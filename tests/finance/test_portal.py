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
    batch = api.post(
        "/api/v1/finance/batches/",
        {"file": csv_upload(credit_frame.drop(columns=["default"]).head(10))},
        format="multipart",
    ).json()
    make_member(other_org, role="credit_analyst", username="eve")
    client.login(username="eve", password="pass-1234")
    for page in (
        f"/portal/finance/datasets/{trained_model['dataset']['id']}/",
        "/portal/finance/models/credit-risk/",
        "/portal/finance/models/credit-risk/v1/",
        "/portal/finance/models/credit-risk/compare/",
        "/portal/finance/models/credit-risk/monitoring/",
        f"/portal/finance/decisions/{decision['decision_id']}/",
        f"/portal/finance/training-runs/{trained_model['run']['id']}/",
        f"/portal/finance/batches/{batch['id']}/",
        f"/portal/finance/batches/{batch['id']}/results.csv",
    ):
        assert client.get(page).status_code == 404, page
    # writes to another organization's rows are 404 too, and change nothing
    assert client.post(f"/portal/finance/decisions/{decision['decision_id']}/").status_code == 404
    assert client.post("/portal/finance/models/credit-risk/compare/", {"version": 1}).status_code == 404
    response = client.post(
        f"/portal/finance/datasets/{trained_model['dataset']['id']}/", {"action": "schema", "description__age": "x"}
    )
    assert response.status_code == 404
    # and the other organization's lists show none of acme's rows
    assert "P-1" not in client.get("/portal/finance/decisions/").content.decode()
    assert "credit-risk" not in client.get("/portal/finance/").content.decode()


def test_other_roles_are_refused(client, make_member, org):
    make_member(org, role="clinician", username="doc")
    client.login(username="doc", password="pass-1234")
    assert client.get("/portal/finance/").status_code == 403


def test_schema_review_and_edit_in_the_portal(analyst_client, upload_dataset):
    # given an uploaded dataset
    dataset = upload_dataset().json()
    url = f"/portal/finance/datasets/{dataset['id']}/"
    page = analyst_client.get(url).content.decode()
    assert 'data-testid="schema"' in page and "checking_status" in page and "Looks like an identifier" in page
    # when the analyst excludes age, describes delinquencies and makes the term a category
    form = {"action": "schema"}
    for column in dataset["schema"]:
        name = column["name"]
        if column["role"] == "target":
            continue
        if column["role"] == "feature" and name != "age":
            form[f"include__{name}"] = "on"
        form[f"type__{name}"] = column["type"]
        form[f"description__{name}"] = column["description"]
    form["type__term_months"] = "categorical"
    form["description__num_delinquencies"] = "Too many delinquencies"
    response = analyst_client.post(url, form)
    # then the schema is saved
    assert response.status_code == 302
    schema = _stored_schema(dataset["id"])
    assert schema["age"]["role"] == "excluded"
    assert schema["term_months"]["type"] == "categorical"
    assert schema["num_delinquencies"]["description"] == "Too many delinquencies"
    assert schema["application_id"]["role"] == "excluded"
    # when an edit is invalid (a text column made numeric), nothing changes and the page says why
    form["type__checking_status"] = "numeric"
    response = analyst_client.post(url, form, follow=True)
    assert "cannot be numeric" in response.content.decode()
    assert _stored_schema(dataset["id"])["checking_status"]["type"] == "categorical"


def _stored_schema(dataset_id: int) -> dict[str, dict[str, object]]:
    from apps.finance.models import CreditDataset

    return {c["name"]: c for c in CreditDataset.objects.get(pk=dataset_id).schema}


def test_compare_two_versions_and_promote_from_the_comparison(
    api, client, make_member, org, analyst_client, trained_model
):
    # given two versions, v1 in production
    api.post(
        "/api/v1/finance/training-runs/",
        {"dataset": trained_model["dataset"]["id"], "params": {"n_estimators": 20, "max_depth": 2}},
        format="json",
    )
    url = "/portal/finance/models/credit-risk/compare/?a=1&b=2"
    # when an analyst compares them
    page = analyst_client.get(url).content.decode()
    # then both are side by side, but only admins may promote
    assert 'data-testid="compare"' in page and "v1" in page and "v2" in page and "<svg" in page
    assert 'data-testid="compare-promote"' not in page
    analyst_client.post(url, {"version": 2})
    assert api.get("/api/v1/finance/models/credit-risk/").json()["aliases"] == {"production": 1}
    # when an org admin promotes v2 from the comparison
    make_member(org, role="org_admin", username="boss")
    client.login(username="boss", password="pass-1234")
    assert 'data-testid="compare-promote"' in client.get(url).content.decode()
    response = client.post(url, {"version": 2, "reason": "better KS"})
    # then v2 serves, and the move is recorded with its reason
    assert response.status_code == 302
    assert api.get("/api/v1/finance/models/credit-risk/").json()["aliases"] == {"production": 2}
    from ml.models import ModelAliasEvent

    move = ModelAliasEvent.objects.get(reason="better KS")
    assert move.from_version is not None
    assert (move.from_version.number, move.to_version.number, move.actor_label) == (1, 2, "boss")


def test_batch_run_and_download_in_the_portal(analyst_client, trained_model, credit_frame):
    # when the analyst uploads a batch file through the portal
    upload = csv_upload(credit_frame.drop(columns=["default"]).head(25), name="new.csv")
    response = analyst_client.post("/portal/finance/batches/", {"file": upload, "name": "March"})
    # then the batch page shows the summary and the results download
    assert response.status_code == 302
    detail = analyst_client.get(response["Location"]).content.decode()
    assert "25 rows" in detail and "Download results" in detail
    results = analyst_client.get(f"{response['Location']}results.csv")
    assert results.status_code == 200
    lines = b"".join(results.streaming_content).decode().splitlines()
    assert lines[0].startswith("row,application_id,probability_of_default,score,decision,reason_codes")
    assert len(lines) == 26
    # and a file the model cannot use is refused with the reason on the form
    bad = csv_upload(credit_frame[["application_id", "age"]].head(5))
    response = analyst_client.post("/portal/finance/batches/", {"file": bad})
    assert response.status_code == 200
    assert "lacks required feature columns" in response.content.decode()


def test_decision_search_filters(api, analyst_client, trained_model, credit_frame):
    # given two decisions
    for app_id in ("FIND-ME", "OTHER-1"):
        api.post(
            "/api/v1/finance/scores/",
            {"application_id": app_id, "features": applicant(credit_frame, 6)},
            format="json",
        )
    # when searching by application id
    page = analyst_client.get("/portal/finance/decisions/", {"application_id": "FIND-ME"}).content.decode()
    # then
    assert "FIND-ME" in page and "OTHER-1" not in page


def test_drift_page_shows_psi_and_csi_over_time(api, analyst_client, trained_model, credit_frame):
    # given shifted decisions and two stored snapshots
    shifted = credit_frame.drop(columns=["default"]).head(60).copy()
    shifted["num_delinquencies"] = 6
    shifted["num_inquiries_6m"] = 6  # two risk drivers at once: the score distribution moves past PSI 0.25
    api.post("/api/v1/finance/batches/", {"file": csv_upload(shifted)}, format="multipart")
    url = "/portal/finance/models/credit-risk/monitoring/"
    for _ in range(2):
        assert analyst_client.post(url).status_code == 302
    # when
    page = analyst_client.get(url, {"window_days": 7}).content.decode()
    # then the current PSI/CSI and their history are shown
    assert "PSI <strong>" in page and "Score PSI over time" in page
    assert 'data-testid="csi-history"' in page and "num_delinquencies" in page
    assert "— act" in page
