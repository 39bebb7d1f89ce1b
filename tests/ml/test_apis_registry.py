"""The registry API: models, versions, aliases (promotion, rollback) and their history."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.conftest import assert_error
from tests.ml.tiny_kind import TINY_KIND

pytestmark = pytest.mark.django_db


def test_train_promote_rollback_and_answer_what_was_live_when(api, org, ml_admin, train):
    # given: a first training run, which becomes production by itself
    first_run = train(org, user=ml_admin)
    model = api.get("/api/v1/ml/models/tiny/").json()
    assert model["aliases"] == {"production": 1}
    assert [v["number"] for v in model["versions"]] == [1]

    # when: a second run, not promoted
    second_run = train(org, user=ml_admin, seed=1)
    # then: v2 exists, production still serves v1
    model = api.get("/api/v1/ml/models/tiny/").json()
    assert [v["number"] for v in model["versions"]] == [2, 1]
    assert model["aliases"] == {"production": 1}
    v2 = api.get("/api/v1/ml/models/tiny/versions/2/").json()
    assert v2["source"] == "trained"
    assert v2["training_run"] == second_run.pk
    assert v2["aliases"] == []

    # when: promote v2, then roll back to v1
    promoted = api.put(
        "/api/v1/ml/models/tiny/aliases/production/", {"version": 2, "reason": "better AUC"}, format="json"
    )
    rolled_back = api.put(
        "/api/v1/ml/models/tiny/aliases/production/", {"version": 1, "reason": "v2 drifted"}, format="json"
    )
    # then
    assert promoted.status_code == 200, promoted.content
    assert promoted.json()["version"] == 2
    assert rolled_back.json() == {**rolled_back.json(), "model": "tiny", "alias": "production", "version": 1}
    assert api.get("/api/v1/ml/models/tiny/").json()["aliases"] == {"production": 1}

    history = api.get("/api/v1/ml/models/tiny/aliases/history/").json()
    assert history["count"] == 3
    events = history["results"]  # newest first
    key_actor = events[0]["actor"]
    assert key_actor.startswith("api-key:")
    assert [(e["alias"], e["from"], e["to"], e["actor"], e["reason"]) for e in events] == [
        ("production", 2, 1, key_actor, "v2 drifted"),
        ("production", 1, 2, key_actor, "better AUC"),
        ("production", None, 1, "ml-admin", "first version"),
    ]
    assert first_run.version.number == 1

    # and: ?at= answers which version was live at each moment
    def live_at(moment: str, alias: str | None = None) -> int | None:
        params = {"at": moment, **({"alias": alias} if alias else {})}
        response = api.get("/api/v1/ml/models/tiny/aliases/history/", params)
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["alias"] == (alias or "production")
        return body["version"]

    created = [e["created_at"] for e in reversed(events)]  # oldest first
    before_anything = (datetime.fromisoformat(created[0]) - timedelta(seconds=1)).isoformat()
    assert live_at(before_anything) is None
    assert live_at(created[0]) == 1
    assert live_at(created[1]) == 2
    assert live_at(created[2]) == 1
    assert live_at(created[1], alias="staging") is None


def test_every_alias_move_is_audited_with_its_reason(api, org, import_version):
    # given
    from core.audit.models import AuditEvent

    import_version(org)
    import_version(org)
    # when
    api.put("/api/v1/ml/models/tiny/aliases/staging/", {"version": 2, "reason": "challenger"}, format="json")
    # then
    event = AuditEvent.objects.filter(action="ml.alias.set", details__alias="staging").get()
    assert event.details == {"model": "tiny", "alias": "staging", "from": None, "to": 2, "reason": "challenger"}
    assert event.actor_label.startswith("api-key:")
    assert event.organization == org


def test_setting_an_alias_to_where_it_already_points_records_nothing(api, org, import_version):
    # given
    import_version(org)
    # when
    response = api.put("/api/v1/ml/models/tiny/aliases/production/", {"version": 1, "reason": "again"}, format="json")
    # then
    assert response.status_code == 200
    assert api.get("/api/v1/ml/models/tiny/aliases/history/").json()["count"] == 1


def test_history_filters_by_alias(api, org, import_version):
    # given
    import_version(org)
    import_version(org)
    api.put("/api/v1/ml/models/tiny/aliases/staging/", {"version": 2, "reason": "challenger"}, format="json")
    # when
    staging = api.get("/api/v1/ml/models/tiny/aliases/history/", {"alias": "staging"}).json()
    # then
    assert [(e["alias"], e["to"]) for e in staging["results"]] == [("staging", 2)]


def test_model_list_is_paginated_filtered_by_kind_and_shows_versions_and_aliases(api, org, import_version):
    # given
    import_version(org, name="alpha")
    import_version(org, name="beta")
    import_version(org, name="beta")
    # when
    everything = api.get("/api/v1/ml/models/").json()
    by_kind = api.get("/api/v1/ml/models/", {"kind": TINY_KIND}).json()
    other_kind = api.get("/api/v1/ml/models/", {"kind": "finance.nothing"}).json()
    first_page = api.get("/api/v1/ml/models/", {"page_size": 1}).json()
    # then
    assert everything["count"] == 2
    beta = next(m for m in everything["results"] if m["name"] == "beta")
    assert set(beta) == {"name", "kind", "description", "created_at", "updated_at", "versions", "aliases"}
    assert beta["kind"] == TINY_KIND
    assert beta["aliases"] == {"production": 1}
    assert [v["number"] for v in beta["versions"]] == [2, 1]
    assert set(beta["versions"][0]) == {"number", "source", "metrics", "created_at", "artifact_sha256"}
    assert len(beta["versions"][0]["artifact_sha256"]) == 64
    assert by_kind["count"] == 2
    assert other_kind["count"] == 0
    assert first_page["count"] == 2
    assert len(first_page["results"]) == 1
    assert first_page["next"]


def test_version_detail_has_its_full_record(api, org, ml_admin, train):
    # given
    run = train(org, user=ml_admin)
    train(org, user=ml_admin, seed=1)
    # when
    body = api.get("/api/v1/ml/models/tiny/versions/1/").json()
    # then
    assert body["model"] == "tiny"
    assert body["number"] == 1
    assert body["kind"] == TINY_KIND
    assert body["source"] == "trained"
    assert body["artifact_format"] == "torch-state-dict"
    assert body["params"] == {"epochs": 4, "steps_per_epoch": 50, "lr": 0.5}
    assert body["metrics"]["accuracy"] > 0.85
    assert body["input_schema"]["type"] == "array"
    assert body["model_card"]["intended_use"] == "Registry tests only."
    assert len(body["data_fingerprint"]) == 64
    assert set(body["manifest"]["files"]) == {"weights.pt"}
    assert body["manifest"]["kind"] == TINY_KIND
    assert body["parent"] is None
    assert body["training_run"] == run.pk
    assert body["aliases"] == ["production"]


def test_unknown_model_and_version_are_404(api, org, import_version):
    # given
    import_version(org)
    # then
    assert_error(api.get("/api/v1/ml/models/nope/"), 404, "not_found")
    assert_error(api.get("/api/v1/ml/models/nope/versions/1/"), 404, "not_found")
    assert_error(api.get("/api/v1/ml/models/tiny/versions/9/"), 404, "not_found")
    assert_error(api.get("/api/v1/ml/models/tiny/versions/x/"), 404, "not_found")
    assert_error(api.get("/api/v1/ml/models/tiny/versions/9/artifact/"), 404, "not_found")
    assert_error(api.get("/api/v1/ml/models/nope/aliases/history/"), 404, "not_found")
    assert_error(api.get("/api/v1/ml/models/nope/aliases/history/", {"at": "2024-01-01T00:00:00Z"}), 404, "not_found")
    put = api.put("/api/v1/ml/models/nope/aliases/production/", {"version": 1, "reason": "x"}, format="json")
    assert_error(put, 404, "not_found")


@pytest.mark.parametrize(
    ("alias", "body", "field"),
    [
        ("production", {"version": 7, "reason": "missing version"}, "version"),
        ("Prod!", {"version": 1, "reason": "bad name"}, "alias"),
        ("production", {}, "version"),
        ("production", {"version": 1}, "reason"),
        ("production", {"version": 1, "reason": ""}, "reason"),
        ("production", {"version": "one", "reason": "x"}, "version"),
        ("production", {"version": 0, "reason": "x"}, "version"),
    ],
)
def test_bad_alias_requests_are_400_with_the_field(api, org, import_version, alias, body, field):
    # given
    import_version(org)
    # when
    response = api.put(f"/api/v1/ml/models/tiny/aliases/{alias}/", body, format="json")
    # then
    error = assert_error(response, 400, "invalid")
    assert field in error["fields"], error
    assert api.get("/api/v1/ml/models/tiny/aliases/history/").json()["count"] == 1


def test_bad_history_date_is_400(api, org, import_version):
    # given
    import_version(org)
    # when
    response = api.get("/api/v1/ml/models/tiny/aliases/history/", {"at": "last tuesday"})
    # then
    assert "at" in assert_error(response, 400, "invalid")["fields"]


def test_alias_put_needs_json_or_form_not_anything(api, org, import_version):
    # given
    import_version(org)
    # when
    response = api.put(
        "/api/v1/ml/models/tiny/aliases/production/", data=b"version=1", content_type="application/x-yaml"
    )
    # then
    assert_error(response, 415, "unsupported_media_type")


def test_history_is_the_history_not_an_alias(api, org, import_version):
    # given
    import_version(org)
    # when
    response = api.put("/api/v1/ml/models/tiny/aliases/history/", {"version": 1, "reason": "x"}, format="json")
    # then
    assert_error(response, 405, "method_not_allowed")


def test_openapi_schema_documents_every_ml_route(client):
    # when
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    # then
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths) >= {
        "/api/v1/ml/models/",
        "/api/v1/ml/models/{name}/",
        "/api/v1/ml/models/{name}/versions/",
        "/api/v1/ml/models/{name}/versions/{number}/",
        "/api/v1/ml/models/{name}/versions/{number}/artifact/",
        "/api/v1/ml/models/{name}/aliases/{alias}/",
        "/api/v1/ml/models/{name}/aliases/history/",
    }
    assert "multipart/form-data" in paths["/api/v1/ml/models/{name}/versions/"]["post"]["requestBody"]["content"]
