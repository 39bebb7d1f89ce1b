"""Importing an artifact as a new version through `POST /api/v1/ml/models/{name}/versions/`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import assert_error
from tests.ml.tiny_kind import TINY_KIND, state_dict_bytes

pytestmark = pytest.mark.django_db


def _upload(content: bytes, name: str = "weights.pt") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def _stored_files(settings) -> list[Path]:
    root = Path(settings.ARTIFACT_ROOT)
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def test_import_creates_a_version_that_serves_predictions(api, org, tiny_kind):
    # given
    from core.audit.models import AuditEvent
    from ml.runtime import predict
    from ml.selectors import model_version_get_by_alias

    content = state_dict_bytes(weight=(2.0, 2.0), bias=0.0)
    # when
    response = api.post(
        "/api/v1/ml/models/tiny/versions/",
        {"file": _upload(content), "kind": TINY_KIND, "description": "pretrained"},
        format="multipart",
    )
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"] == 1
    assert body["source"] == "imported"
    assert body["aliases"] == ["production"]  # a model's first version is production
    assert body["model_card"]["imported_sha256"] == hashlib.sha256(content).hexdigest()
    audit = AuditEvent.objects.get(action="ml.version.import")
    assert audit.details["sha256"] == hashlib.sha256(content).hexdigest()
    assert audit.details["loads_code"] is False
    assert audit.actor_label.startswith("api-key:")
    assert api.get("/api/v1/ml/models/tiny/").json()["description"] == "pretrained"
    outputs = predict(model_version_get_by_alias(org=org, name="tiny"), [[-1.0, -1.0], [1.0, 1.0]]).outputs
    assert outputs[0] < 0.05 < 0.95 < outputs[1]


def test_import_with_promote_moves_production(api, org, import_version):
    # given
    import_version(org)
    # when
    response = api.post(
        "/api/v1/ml/models/tiny/versions/",
        {"file": _upload(state_dict_bytes((1.0, 0.0), 0.0)), "kind": TINY_KIND, "promote": "true"},
        format="multipart",
    )
    # then
    assert response.status_code == 201, response.content
    assert api.get("/api/v1/ml/models/tiny/").json()["aliases"] == {"production": 2}


def test_org_admin_signed_in_may_import(org, make_member, tiny_kind):
    # given
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(make_member(org, "org_admin"))
    # when
    response = client.post(
        "/api/v1/ml/models/tiny/versions/",
        {"file": _upload(state_dict_bytes((1.0, 1.0), 0.0)), "kind": TINY_KIND},
        format="multipart",
    )
    # then
    assert response.status_code == 201, response.content


def test_non_admin_member_and_key_without_ml_scope_may_not_import(
    org, make_member, api_client_for, tiny_kind, settings
):
    # given
    from rest_framework.test import APIClient

    from ml.models import RegisteredModel

    clinician = APIClient()
    clinician.force_login(make_member(org, "clinician"))
    finance_key = api_client_for(org, scopes=("finance",))
    data = {"kind": TINY_KIND}
    # when
    as_clinician = clinician.post(
        "/api/v1/ml/models/tiny/versions/", {**data, "file": _upload(b"x")}, format="multipart"
    )
    as_finance_key = finance_key.post(
        "/api/v1/ml/models/tiny/versions/", {**data, "file": _upload(b"x")}, format="multipart"
    )
    # then
    assert_error(as_clinician, 403, "permission_denied")
    assert_error(as_finance_key, 403, "permission_denied")
    assert not RegisteredModel.objects.exists()
    assert _stored_files(settings) == []


def test_unknown_kind_is_400(api, tiny_kind):
    # when
    response = api.post(
        "/api/v1/ml/models/tiny/versions/",
        {"file": _upload(state_dict_bytes((1.0, 1.0), 0.0)), "kind": "medical.nope"},
        format="multipart",
    )
    # then
    assert "kind" in assert_error(response, 400, "invalid")["fields"]


def test_garbage_file_is_400_and_nothing_is_stored(api, tiny_kind, settings):
    # given
    from ml.models import ModelVersion, RegisteredModel

    # when
    response = api.post(
        "/api/v1/ml/models/tiny/versions/",
        {"file": _upload(b"definitely not a state dict" * 10), "kind": TINY_KIND},
        format="multipart",
    )
    # then
    error = assert_error(response, 400, "invalid_artifact")
    assert "file" in error["fields"]
    assert not ModelVersion.objects.exists()
    assert not RegisteredModel.objects.exists()
    assert _stored_files(settings) == []
    scratch = Path(settings.MODEL_CACHE_DIR) / "scratch"
    assert not scratch.exists() or list(scratch.iterdir()) == []


def test_state_dict_of_the_wrong_shape_is_400(api, tiny_kind):
    # given
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({"weight": torch.zeros(3, 3)}, buffer)
    # when
    response = api.post(
        "/api/v1/ml/models/tiny/versions/",
        {"file": _upload(buffer.getvalue()), "kind": TINY_KIND},
        format="multipart",
    )
    # then
    assert "Expected weight" in assert_error(response, 400, "invalid_artifact")["message"]


@pytest.mark.parametrize(
    ("data", "field"),
    [({"kind": TINY_KIND}, "file"), ({"file": "x"}, "kind")],
)
def test_missing_fields_are_400(api, tiny_kind, data, field):
    # given
    if "file" in data:
        data = {"file": _upload(state_dict_bytes((1.0, 1.0), 0.0))}
    # when
    response = api.post("/api/v1/ml/models/tiny/versions/", data, format="multipart")
    # then
    assert field in assert_error(response, 400, "invalid")["fields"]


def test_invalid_model_name_is_400(api, tiny_kind):
    # when
    response = api.post(
        "/api/v1/ml/models/Not%20Valid/versions/",
        {"file": _upload(state_dict_bytes((1.0, 1.0), 0.0)), "kind": TINY_KIND},
        format="multipart",
    )
    # then
    assert "model" in assert_error(response, 400, "invalid")["fields"]


def test_json_body_is_415(api, tiny_kind):
    # when
    response = api.post("/api/v1/ml/models/tiny/versions/", {"kind": TINY_KIND}, format="json")
    # then
    assert_error(response, 415, "unsupported_media_type")


def test_import_into_a_model_of_another_kind_is_409(api, org, import_version):
    # given
    from ml.kinds import register_kind, unregister_kind
    from tests.ml.tiny_kind import TinyLogReg

    class OtherTiny(TinyLogReg):
        name = "tests.other_tiny"

    import_version(org)
    register_kind(OtherTiny())
    try:
        # when
        response = api.post(
            "/api/v1/ml/models/tiny/versions/",
            {"file": _upload(state_dict_bytes((1.0, 1.0), 0.0)), "kind": "tests.other_tiny"},
            format="multipart",
        )
    finally:
        unregister_kind("tests.other_tiny")
    # then
    assert_error(response, 409, "kind_mismatch")
