"""Tenancy and roles in retail: another organization's rows are 404 everywhere and leak into no answer;
a key of another domain is refused; the admin shows staff only their organizations' rows."""

from __future__ import annotations

import io
from typing import Any

import pytest

from apps.retail.models import (
    Customer,
    Event,
    Item,
    Recommendation,
    RecommendationExport,
    RetailImport,
    RetailSettings,
)
from core.jobs.models import Job
from tests.conftest import assert_error

pytestmark = pytest.mark.django_db(transaction=True)

RETAIL = "/api/v1/retail"
MODEL = f"{RETAIL}/models/recommendations"


def _csv(content: bytes) -> io.BytesIO:
    buffer = io.BytesIO(content)
    buffer.name = "rows.csv"
    return buffer


def _acme_rows(api: Any) -> dict[str, Any]:
    """A recommendation, a finished CSV import and a finished export of acme (no model needed)."""
    recommendation = api.get(f"{RETAIL}/customers/u1/recommendations/", {"n": 5}).json()
    imported = api.post(
        f"{RETAIL}/events/import/",
        {"file": _csv(b"event_id,customer,item,type\nimp-1,u1,m1,cart\n")},
        format="multipart",
    ).json()
    export = api.post(f"{RETAIL}/exports/", {"n": 3}, format="json").json()
    assert api.get(f"{RETAIL}/imports/{imported['id']}/").json()["job"]["status"] == "succeeded"
    assert api.get(f"{RETAIL}/exports/{export['id']}/download/").status_code == 200
    return {"recomm_id": recommendation["recomm_id"], "import": imported, "export": export}


@pytest.fixture
def acme(api: Any, trained: dict[str, Any]) -> dict[str, Any]:
    """acme has items, events, a trained model with a split, a recommendation, an import and an export."""
    assert api.put(f"{MODEL}/traffic-split/", {"production": 100}, format="json").status_code == 200
    return {**trained, **_acme_rows(api)}


def test_other_organization_gets_404_for_every_acme_detail(other_api, api, acme):
    # given
    export_id, import_id, run_id = acme["export"]["id"], acme["import"]["id"], acme["run"]["id"]
    # when / then
    for url in (
        f"{RETAIL}/items/m1/",
        f"{RETAIL}/items/m1/similar/",
        f"{RETAIL}/recommendations/{acme['recomm_id']}/",
        f"{RETAIL}/imports/{import_id}/",
        f"{RETAIL}/exports/{export_id}/",
        f"{RETAIL}/exports/{export_id}/download/",
        f"{RETAIL}/training-runs/{run_id}/",
        f"{MODEL}/",
        f"{MODEL}/versions/1/",
        f"{MODEL}/aliases/",
        f"{MODEL}/traffic-split/",
        f"{MODEL}/online-report/",
        f"/api/v1/jobs/{acme['export']['job']['id']}/",
        f"/api/v1/jobs/{acme['import']['job']['id']}/",
    ):
        assert_error(other_api.get(url), 404)
    # nor can it change acme's rows
    assert_error(other_api.patch(f"{RETAIL}/items/m1/", {"title": "mine"}, format="json"), 404)
    assert_error(other_api.delete(f"{RETAIL}/items/m1/"), 404)
    assert_error(other_api.put(f"{MODEL}/traffic-split/", {"production": 100}, format="json"), 404)
    assert_error(other_api.put(f"{MODEL}/aliases/", {"alias": "staging", "version": 1}, format="json"), 404)
    assert_error(other_api.post(f"{RETAIL}/exports/", {"model": "recommendations"}, format="json"), 404)
    assert_error(other_api.post(f"/api/v1/jobs/{acme['export']['job']['id']}/cancel/"), 404)
    # and acme's rows are untouched
    assert api.get(f"{RETAIL}/items/m1/").json()["title"] == Item.objects.get(external_id="m1").title != "mine"
    assert api.get(f"{MODEL}/").json()["aliases"] == {"production": 1}


def test_other_organization_lists_are_empty(other_api, acme):
    for url in ("items", "events", "customers", "imports", "exports", "models"):
        body = other_api.get(f"{RETAIL}/{url}/").json()
        assert (body["count"], body["results"]) == (0, []), url
    assert other_api.get("/api/v1/jobs/").json()["count"] == 0
    # training runs have no list endpoint (each is read by id, above)
    assert_error(other_api.get(f"{RETAIL}/training-runs/"), 405)
    assert other_api.get(f"{RETAIL}/events/", {"customer": "u1"}).json()["count"] == 0


def test_other_organization_answers_leak_nothing_of_acme(other_api, acme):
    # when globex asks for acme's customer and items: an unknown customer, an empty catalogue
    answer = other_api.get(f"{RETAIL}/customers/u1/recommendations/", {"n": 10})
    batch = other_api.post(f"{RETAIL}/recommendations/batch/", {"customers": ["u1", "u2"]}, format="json")
    # then
    assert answer.status_code == 200, answer.content
    assert answer.json()["model"] is None and answer.json()["items"] == []
    assert all(result["model"] is None and result["items"] == [] for result in batch.json()["results"].values())
    # acme's model and alias cannot be named
    assert_error(other_api.get(f"{RETAIL}/customers/u1/recommendations/", {"model": "recommendations"}), 404)
    # acme's items are unknown to globex's events (no row is stored for globex)
    assert_error(
        other_api.post(
            f"{RETAIL}/events/", [{"event_id": "x", "customer": "u1", "item": "m1", "type": "view"}], format="json"
        ),
        400,
        "all_rows_refused",
    )
    assert not Event.objects.filter(organization__slug="globex").exists()
    assert not Customer.objects.filter(organization__slug="globex").exists()
    globex_answers = Recommendation.objects.filter(organization__slug="globex")
    assert globex_answers.count() == 3
    assert all(record.model_version_id is None and record.items == [] for record in globex_answers)
    # an export of globex lists no acme customer
    export = other_api.post(f"{RETAIL}/exports/", {"n": 3}, format="json").json()
    download = other_api.get(f"{RETAIL}/exports/{export['id']}/download/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content).decode().strip().splitlines() == [
        "customer,rank,item,title,score,source,recomm_id"
    ]


def test_ids_are_per_organization_and_attribution_never_crosses(api, other_api, acme):
    # given globex has an item with acme's id and sends acme's recomm_id with its purchase
    other_api.put(f"{RETAIL}/items/", [{"id": "m1", "title": "Globex m1"}], format="json")
    bought = other_api.post(
        f"{RETAIL}/events/",
        [{"event_id": "g-1", "customer": "u1", "item": "m1", "type": "purchase", "recomm_id": acme["recomm_id"]}],
        format="json",
    )
    assert bought.json()["created"] == 1
    # then each organization sees its own m1
    assert other_api.get(f"{RETAIL}/items/m1/").json()["title"] == "Globex m1"
    assert api.get(f"{RETAIL}/items/m1/").json()["title"] != "Globex m1"
    # and acme's answer has no attributed event, its report no purchase
    assert api.get(f"{RETAIL}/recommendations/{acme['recomm_id']}/").json()["events"] == []
    arms = api.get(f"{MODEL}/online-report/").json()["arms"]
    assert arms and sum(arm["purchases"] for arm in arms) == 0
    assert sum(arm["impressions"] for arm in arms) >= 1
    assert_error(other_api.get(f"{RETAIL}/recommendations/{acme['recomm_id']}/"), 404)


def test_a_key_of_another_domain_is_refused_and_sees_no_other_domains_jobs(api, api_client_for, org):
    # given acme's retail rows (a retail import job) and a finance job
    api.put(f"{RETAIL}/items/", [{"id": "m1", "title": "One"}], format="json")
    api.post(f"{RETAIL}/events/", [{"event_id": "e1", "customer": "u1", "item": "m1", "type": "view"}], format="json")
    rows = _acme_rows(api)
    finance_job = Job.objects.create(organization=org, kind="finance.monitoring", domain="finance", status="succeeded")
    finance = api_client_for(org, scopes=("finance",))
    retail = api_client_for(org, scopes=("retail",))
    # when / then: the finance key gets 403 on retail endpoints
    for url in (
        f"{RETAIL}/items/",
        f"{RETAIL}/items/m1/",
        f"{RETAIL}/events/",
        f"{RETAIL}/customers/",
        f"{RETAIL}/customers/u1/recommendations/",
        f"{RETAIL}/recommendations/{rows['recomm_id']}/",
        f"{RETAIL}/imports/{rows['import']['id']}/",
        f"{RETAIL}/exports/",
        f"{RETAIL}/models/",
        f"{RETAIL}/settings/",
    ):
        assert_error(finance.get(url), 403)
    assert_error(finance.put(f"{RETAIL}/items/", [{"id": "x"}], format="json"), 403)
    assert_error(finance.post(f"{RETAIL}/training-runs/", {"algorithm": "als"}, format="json"), 403)
    assert Item.objects.count() == 1
    # the finance key does not see the retail jobs, the retail key not the finance job
    assert_error(finance.get(f"/api/v1/jobs/{rows['import']['job']['id']}/"), 404)
    assert_error(retail.get(f"/api/v1/jobs/{finance_job.pk}/"), 404)
    listed = retail.get("/api/v1/jobs/").json()
    assert listed["count"] == 2
    assert {job["domain"] for job in listed["results"]} == {"retail"}
    assert finance_job.pk not in {job["id"] for job in listed["results"]}
    assert retail.get("/api/v1/jobs/", {"domain": "finance"}).json()["count"] == 0
    assert {job["id"] for job in finance.get("/api/v1/jobs/").json()["results"]} == {finance_job.pk}
    # while the retail-only key reads the retail rows
    assert retail.get(f"{RETAIL}/items/m1/").status_code == 200


# --- Admin ----------------------------------------------------------------------------------------------


@pytest.fixture
def globex_staff(other_org: Any, make_member: Any) -> Any:
    """A staff user, org admin of globex only, with Django's view permissions on retail."""
    from django.contrib.auth.models import Permission

    user = make_member(other_org, "org_admin", username="globex-staff")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="retail", codename__startswith="view_")
    )
    return user


def test_admin_shows_staff_none_of_another_organizations_rows(client, api, other_api, globex_staff):
    # given acme's retail rows and one globex item
    api.put(f"{RETAIL}/items/", [{"id": "acme-sku-1", "title": "Acme anvil"}], format="json")
    api.post(
        f"{RETAIL}/events/",
        [{"event_id": "acme-ev-1", "customer": "acme-cust-1", "item": "acme-sku-1", "type": "view"}],
        format="json",
    )
    api.put(f"{RETAIL}/settings/", {"fallback_days": 7}, format="json")
    rows = _acme_rows(api)
    other_api.put(f"{RETAIL}/items/", [{"id": "globex-sku-1", "title": "Globex gadget"}], format="json")
    acme_objects = {
        "item": Item.objects.get(external_id="acme-sku-1").pk,
        "customer": Customer.objects.get(external_id="acme-cust-1").pk,
        "event": Event.objects.get(event_id="acme-ev-1").pk,
        "recommendation": Recommendation.objects.get(recomm_id=rows["recomm_id"]).pk,
        "retailimport": RetailImport.objects.get(pk=rows["import"]["id"]).pk,
        "recommendationexport": RecommendationExport.objects.get(pk=rows["export"]["id"]).pk,
        "retailsettings": RetailSettings.objects.get(organization__slug="acme").pk,
    }
    client.force_login(globex_staff)
    # when / then: every changelist answers without acme's rows
    for model in acme_objects:
        page = client.get(f"/admin/retail/{model}/")
        assert page.status_code == 200, (model, page.status_code)
        content = page.content.decode()
        for marker in ("acme-sku-1", "acme-cust-1", "acme-ev-1", "Acme anvil", rows["recomm_id"], ">Acme<"):
            assert marker not in content, (model, marker)
    assert "globex-sku-1" in client.get("/admin/retail/item/").content.decode()
    # and acme's objects are 404
    for model, pk in acme_objects.items():
        assert client.get(f"/admin/retail/{model}/{pk}/change/").status_code == 404, model
    ours = Item.objects.get(external_id="globex-sku-1").pk
    assert client.get(f"/admin/retail/item/{ours}/change/").status_code == 200
