"""Every bad input answers a clear 4xx in the error shape, and stores nothing."""

from __future__ import annotations

import io

import pytest

from apps.finance.models import CreditDataset, CreditDecision
from tests.conftest import assert_error
from tests.finance.conftest import FAST_PARAMS, applicant, csv_upload

pytestmark = pytest.mark.django_db


def _file(content: bytes, name: str = "data.csv") -> io.BytesIO:
    buffer = io.BytesIO(content)
    buffer.name = name
    return buffer


@pytest.mark.parametrize(
    ("content", "target", "code"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00binary", "default", "not_csv"),
        (b"", "default", "empty_file"),
        (b"a,b,default\n", "default", "empty_file"),
        (b"just one column\nvalue\n", "default", "not_csv"),
        (b"a,b,c\n1,2,0\n3,4,1\n", "default", "no_target"),
        (b"a,b,default\n1,2,0\n3,4,0\n", "default", "single_class"),
        (b"a,a,default\n1,2,0\n3,4,1\n", "default", "duplicate_columns"),
        (b"a,b,default\n1,x,good\n3,y,bad\n", "default", "positive_label_required"),
        (b'a,b,default\n1,"unterminated,0\n', "default", "not_csv"),
    ],
)
def test_bad_dataset_files_are_400_and_store_nothing(api, content, target, code, settings, tmp_path):
    # when
    response = api.post("/api/v1/finance/datasets/", {"file": _file(content), "target": target}, format="multipart")
    # then
    error = assert_error(response, 400, code)
    assert error["message"]
    assert CreditDataset.objects.count() == 0
    stored = tmp_path / "media" / "finance"
    assert not stored.exists() or not any(stored.rglob("*.csv"))


def test_missing_file_field_is_400(api):
    assert_error(api.post("/api/v1/finance/datasets/", {"target": "default"}, format="multipart"), 400)


def test_oversized_file_is_413(api, settings, credit_frame):
    settings.API_MAX_UPLOAD_BYTES = 10_000
    response = api.post(
        "/api/v1/finance/datasets/", {"file": csv_upload(credit_frame), "target": "default"}, format="multipart"
    )
    assert_error(response, 413, "too_large")
    assert CreditDataset.objects.count() == 0


def test_labelled_target_with_positive_label(upload_dataset, credit_frame):
    # given a target of words, not 0/1
    frame = credit_frame.assign(default=credit_frame["default"].map({"0": "good", "1": "bad"}))
    # when
    response = upload_dataset(frame=frame, positive_label="bad")
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["positive_label"] == "bad"
    assert abs(body["positive_rate"] - (credit_frame["default"] == "1").mean()) < 1e-9
    schema = {c["name"]: c for c in body["schema"]}
    assert schema["application_id"]["role"] == "excluded"
    assert schema["checking_status"]["type"] == "categorical"
    assert "A11" in schema["checking_status"]["categories"]
    assert schema["annual_income"]["type"] == "numeric"
    assert schema["annual_income"]["missing_rate"] > 0
    assert any(issue["code"] == "id_column" for issue in body["issues"])


def test_unknown_positive_label_is_400(upload_dataset):
    assert_error(upload_dataset(positive_label="defaulted"), 400, "bad_positive_label")


def test_schema_edits_validate(api, upload_dataset):
    dataset = upload_dataset().json()
    url = f"/api/v1/finance/datasets/{dataset['id']}/"
    # a text column cannot become numeric; unknown column; min above max
    response = api.patch(
        url,
        {
            "columns": [
                {"name": "checking_status", "type": "numeric"},
                {"name": "nope", "description": "x"},
                {"name": "age", "min": 80, "max": 18},
            ]
        },
        format="json",
    )
    error = assert_error(response, 400, "invalid_schema")
    assert set(error["fields"]) == {"columns.checking_status", "columns.nope", "columns.age"}
    # valid edits apply
    response = api.patch(
        url,
        {"columns": [{"name": "term_months", "type": "categorical"}, {"name": "age", "min": 18, "max": 100}]},
        format="json",
    )
    assert response.status_code == 200
    schema = {c["name"]: c for c in response.json()["schema"]}
    assert schema["term_months"]["type"] == "categorical"
    assert schema["age"]["max"] == 100


def test_bad_training_params_are_400(api, upload_dataset):
    dataset = upload_dataset().json()
    response = api.post(
        "/api/v1/finance/training-runs/",
        {"dataset": dataset["id"], "params": {"max_depth": 99, "learning_rat": 0.1}},
        format="json",
    )
    error = assert_error(response, 400, "invalid_params")
    assert set(error["fields"]) == {"params.max_depth", "params.learning_rat"}


@pytest.mark.django_db(transaction=True)
def test_score_validation_errors_are_per_field(api, trained_model, credit_frame):
    # given
    api.patch(
        f"/api/v1/finance/datasets/{trained_model['dataset']['id']}/",
        {"columns": [{"name": "age", "min": 18, "max": 100}]},
        format="json",
    )
    api.post(
        "/api/v1/finance/training-runs/",
        {"dataset": trained_model["dataset"]["id"], "params": FAST_PARAMS, "promote": True},
        format="json",
    )
    features = applicant(credit_frame, 1)
    features.update(
        age=140,  # out of range (bounded 18..100 in v2's schema)
        loan_amount="lots",  # wrong type
        checking_status="A99",  # unknown category
        favourite_colour="blue",  # unknown feature
    )
    del features["num_delinquencies"]  # never missing in training: required
    features["annual_income"] = None  # missing in training: allowed
    # when
    response = api.post("/api/v1/finance/scores/", {"application_id": "x", "features": features}, format="json")
    # then
    error = assert_error(response, 400, "invalid_features")
    assert set(error["fields"]) == {
        "features.age",
        "features.loan_amount",
        "features.checking_status",
        "features.favourite_colour",
        "features.num_delinquencies",
    }
    assert CreditDecision.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_score_request_shape_errors(api, trained_model):
    assert_error(api.post("/api/v1/finance/scores/", {"features": {}}, format="json"), 400)
    assert_error(api.post("/api/v1/finance/scores/", {"application_id": "x", "features": [1]}, format="json"), 400)
    assert_error(
        api.post("/api/v1/finance/scores/", {"application_id": "x", "features": {}, "model": "nope"}, format="json"),
        404,
    )


def test_score_without_any_model_is_404(api):
    response = api.post("/api/v1/finance/scores/", {"application_id": "x", "features": {"a": 1}}, format="json")
    assert_error(response, 404, "no_model")


@pytest.mark.django_db(transaction=True)
def test_batch_missing_required_columns_is_400(api, trained_model, credit_frame):
    frame = credit_frame.drop(columns=["default", "num_delinquencies"]).head(20)
    response = api.post("/api/v1/finance/batches/", {"file": csv_upload(frame)}, format="multipart")
    assert_error(response, 400, "missing_columns")


def test_finance_scope_is_required(api_client_for, org):
    client = api_client_for(org, scopes=("retail",))
    assert_error(client.get("/api/v1/finance/datasets/"), 403)


def test_unknown_decision_id_is_404(api):
    assert_error(api.get("/api/v1/finance/decisions/not-a-uuid/"), 404)


def test_real_world_dialects_semicolons_latin1_and_missing_markers(api):
    # given a Latin-1, semicolon-separated export with word categories, `NA`/`?` missing markers
    # and a labelled target
    lines = ["kunden_id;alter;beruf;einkommen;status"]
    for i in range(60):
        job = ("Bäcker", "Lehrer", "Ärztin")[i % 3]
        income = "NA" if i % 10 == 0 else ("?" if i % 15 == 1 else str(1000 + 37 * i))
        lines.append(f"{i + 1};{20 + i % 40};{job};{income};{'schlecht' if i % 4 == 0 else 'gut'}")
    upload = _file(("\n".join(lines) + "\n").encode("latin-1"))
    # when
    response = api.post(
        "/api/v1/finance/datasets/",
        {"file": upload, "target": "status", "positive_label": "schlecht"},
        format="multipart",
    )
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["rows"] == 60 and body["positive_rate"] == 0.25
    schema = {c["name"]: c for c in body["schema"]}
    assert schema["beruf"]["type"] == "categorical"
    assert set(schema["beruf"]["categories"]) == {"Bäcker", "Lehrer", "Ärztin"}
    assert schema["einkommen"]["type"] == "numeric"
    assert schema["einkommen"]["missing_rate"] == pytest.approx(10 / 60, abs=1e-6)
    assert schema["kunden_id"]["role"] == "excluded"


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("value", [1e39, 10**400], ids=["beyond-float32", "400-digit-integer"])
@pytest.mark.django_db(transaction=True)
def test_numbers_the_model_cannot_represent_are_a_per_field_400(api, trained_model, credit_frame, value):
    # given a policy that declines everyone, so reasons (TreeSHAP) are computed for the applicant
    cutoffs = {"approve_min_score": 20_000, "decline_below_score": 20_000}
    assert api.patch("/api/v1/finance/policy/", cutoffs, format="json").status_code == 200
    features = {**applicant(credit_frame, 0), "credit_utilization": value}
    # when
    response = api.post("/api/v1/finance/scores/", {"application_id": "BIG", "features": features}, format="json")
    # then
    error = assert_error(response, 400, "invalid_features")
    assert set(error["fields"]) == {"features.credit_utilization"}
    assert not CreditDecision.objects.filter(application_id="BIG").exists()


@pytest.mark.django_db(transaction=True)
def test_a_dataset_whose_header_has_trailing_spaces_trains(api, credit_frame):
    # given an export whose header pads two names with a space
    frame = credit_frame.rename(columns={"age": "age ", "default": "default "})
    response = api.post(
        "/api/v1/finance/datasets/", {"file": csv_upload(frame), "target": "default"}, format="multipart"
    )
    assert response.status_code == 201, response.content
    assert "age" in {c["name"] for c in response.json()["schema"]}
    # when training on it
    run = api.post(
        "/api/v1/finance/training-runs/", {"dataset": response.json()["id"], "params": FAST_PARAMS}, format="json"
    )
    # then
    assert run.json()["job"]["status"] == "succeeded", run.json()["job"]
