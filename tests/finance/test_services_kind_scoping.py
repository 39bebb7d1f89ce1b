"""A model or training run of another domain's kind is "not found" everywhere in finance: the API,
the portal, scoring and batches (one answer, from the registry's kind-filtered selectors)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from core.tenancy.actors import Actor
from ml.kinds import register_kind, unregister_kind
from ml.services import model_version_import
from ml.training import training_run_create
from tests.conftest import assert_error
from tests.finance.conftest import csv_upload
from tests.ml.tiny_kind import TINY_KIND, TinyLogReg, state_dict_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny_in_production(org) -> Iterator[str]:
    """acme has model `tiny` of a non-finance kind, its v1 in production."""
    register_kind(TinyLogReg())
    upload = SimpleUploadedFile("weights.pt", state_dict_bytes((1.0, 1.0), 0.0))
    version = model_version_import(actor=Actor.system(org), name="tiny", kind=TINY_KIND, upload=upload)
    assert version.aliases.filter(name="production").exists()
    yield "tiny"
    unregister_kind(TINY_KIND)


@pytest.fixture
def analyst_client(client, make_member, org):
    make_member(org, role="credit_analyst", username="ana")
    client.login(username="ana", password="pass-1234")
    return client


def test_a_model_of_another_kind_is_404_in_the_finance_api(api, tiny_in_production, credit_frame):
    # when finance endpoints name the non-finance model, then each says "not found"
    for url in (
        "/api/v1/finance/models/tiny/",
        "/api/v1/finance/models/tiny/versions/1/",
        "/api/v1/finance/models/tiny/monitoring/",
    ):
        assert_error(api.get(url), 404)
    assert_error(api.post("/api/v1/finance/models/tiny/promote/", {"version": 1}, format="json"), 404)
    assert_error(api.post("/api/v1/finance/models/tiny/monitoring/"), 404)
    score = {"application_id": "A-1", "features": {"age": 30}, "model": "tiny"}
    assert_error(api.post("/api/v1/finance/scores/", score, format="json"), 404)
    batch = {"file": csv_upload(credit_frame.drop(columns=["default"]).head(5)), "model": "tiny"}
    assert_error(api.post("/api/v1/finance/batches/", batch, format="multipart"), 404)
    # and it is neither listed nor served as the default credit model
    assert api.get("/api/v1/finance/models/").json()["count"] == 0
    unnamed = api.post("/api/v1/finance/scores/", {"application_id": "A-2", "features": {}}, format="json")
    assert_error(unnamed, 404, "no_model")


def test_a_model_of_another_kind_is_404_in_the_finance_portal(analyst_client, tiny_in_production):
    for page in (
        "/portal/finance/models/tiny/",
        "/portal/finance/models/tiny/v1/",
        "/portal/finance/models/tiny/compare/",
        "/portal/finance/models/tiny/monitoring/",
        "/portal/finance/score/?model=tiny",
    ):
        assert analyst_client.get(page).status_code == 404, page
    assert "tiny" not in analyst_client.get("/portal/finance/").content.decode()


def test_a_traffic_training_run_is_404_in_the_finance_portal_and_api(org, analyst_client, api):
    # given a traffic training run of the same organization (its job is never sent: no commit here)
    run = training_run_create(
        actor=Actor.system(org), model_name="detector", kind="traffic.yolo_detector", data={"dataset_zip": "x"}
    )
    # when a credit analyst opens it in the finance portal, or a finance key in the finance API, then
    assert analyst_client.get(f"/portal/finance/training-runs/{run.pk}/").status_code == 404
    assert_error(api.get(f"/api/v1/finance/training-runs/{run.pk}/"), 404)
