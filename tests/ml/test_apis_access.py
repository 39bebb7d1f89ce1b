"""Who may call the registry API: authentication, the `ml` scope, and tenancy (other org = 404)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.conftest import assert_error
from tests.ml.tiny_kind import TINY_KIND, state_dict_bytes

pytestmark = pytest.mark.django_db

ROUTES = [
    ("get", "/api/v1/ml/models/"),
    ("get", "/api/v1/ml/models/tiny/"),
    ("post", "/api/v1/ml/models/tiny/versions/"),
    ("get", "/api/v1/ml/models/tiny/versions/1/"),
    ("get", "/api/v1/ml/models/tiny/versions/1/artifact/"),
    ("put", "/api/v1/ml/models/tiny/aliases/production/"),
    ("get", "/api/v1/ml/models/tiny/aliases/history/"),
]


def _call(client: APIClient, method: str, path: str):
    if method == "put":
        return client.put(path, {"version": 1, "reason": "x"}, format="json")
    if method == "post":
        upload = SimpleUploadedFile("weights.pt", state_dict_bytes((1.0, 1.0), 0.0))
        return client.post(path, {"file": upload, "kind": TINY_KIND}, format="multipart")
    return client.get(path)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_key_is_401(org, import_version, method, path):
    # given
    import_version(org)
    # when
    response = _call(APIClient(), method, path)
    # then
    assert_error(response, 401, "not_authenticated")


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_invalid_key_is_401(org, import_version, method, path):
    # given
    import_version(org)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer tsk_0123456789ab_not-the-secret")
    # when
    response = _call(client, method, path)
    # then
    assert_error(response, 401, "authentication_failed")


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_key_without_ml_scope_is_403(org, import_version, api_client_for, method, path):
    # given
    import_version(org)
    client = api_client_for(org, scopes=("finance", "medical", "retail", "traffic"))
    # when
    response = _call(client, method, path)
    # then
    assert_error(response, 403, "permission_denied")


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_member_without_ml_role_is_403(org, import_version, make_member, method, path):
    # given
    import_version(org)
    client = APIClient()
    client.force_login(make_member(org, "credit_analyst"))
    # when
    response = _call(client, method, path)
    # then
    assert_error(response, 403, "permission_denied")


def test_other_org_never_sees_the_models(org, other_org, other_api, import_version):
    # given: acme has a model with two versions; globex has its own
    from ml.models import ModelAliasEvent

    import_version(org)
    import_version(org)
    import_version(other_org, name="theirs")
    # when
    listed = other_api.get("/api/v1/ml/models/").json()
    # then
    assert [m["name"] for m in listed["results"]] == ["theirs"]
    for path in [
        "/api/v1/ml/models/tiny/",
        "/api/v1/ml/models/tiny/versions/1/",
        "/api/v1/ml/models/tiny/versions/1/artifact/",
        "/api/v1/ml/models/tiny/aliases/history/",
    ]:
        assert_error(other_api.get(path), 404, "not_found")
    assert_error(
        other_api.get("/api/v1/ml/models/tiny/aliases/history/", {"at": "2030-01-01T00:00:00Z"}), 404, "not_found"
    )
    moved = other_api.put("/api/v1/ml/models/tiny/aliases/production/", {"version": 2, "reason": "x"}, format="json")
    assert_error(moved, 404, "not_found")
    assert not ModelAliasEvent.objects.filter(registered_model__organization=org, to_version__number=2).exists()


def test_same_model_name_in_two_orgs_are_two_models(org, other_org, api, other_api, import_version):
    # given
    import_version(org)
    # when: globex imports its own "tiny"
    upload = SimpleUploadedFile("weights.pt", state_dict_bytes((1.0, 1.0), 0.0))
    response = other_api.post(
        "/api/v1/ml/models/tiny/versions/", {"file": upload, "kind": TINY_KIND}, format="multipart"
    )
    # then: numbering and aliases are per organization
    assert response.json()["number"] == 1
    assert [v["number"] for v in api.get("/api/v1/ml/models/tiny/").json()["versions"]] == [1]
    assert [v["number"] for v in other_api.get("/api/v1/ml/models/tiny/").json()["versions"]] == [1]
