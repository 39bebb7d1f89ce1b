"""Retail's jobs on real parts: PostgreSQL, Redis and a real prefork Celery worker process.

A merchant's historic events arrive as a CSV import the worker streams into PostgreSQL, the
worker trains an ALS version from them (training queue, live per-iteration progress), this
(web) process serves recommendations from the artifact the worker wrote, and a precompute job
writes every customer's top-n to a CSV.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.integration.test_domain_jobs_real_worker import _poll_job
from tests.realservices import RealWorker
from tests.retail.conftest import FAST_ALS, movielens_subset

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _events_csv(events: list[dict[str, Any]]) -> SimpleUploadedFile:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["event_id", "customer", "item", "type", "value", "timestamp"])
    writer.writeheader()
    writer.writerows(events)
    return SimpleUploadedFile("events.csv", out.getvalue().encode(), content_type="text/csv")


@pytest.mark.timeout(240)
def test_retail_import_training_serving_and_precompute_on_the_worker(real_worker: RealWorker, api: Any) -> None:
    # given: a catalogue (bulk API) and the history as a CSV import run by the worker
    items, events = movielens_subset(80)
    assert api.put("/api/v1/retail/items/", items, format="json").status_code == 200
    imported = api.post("/api/v1/retail/events/import/", {"file": _events_csv(events)}, format="multipart")
    assert imported.status_code == 202, imported.content
    job, _ = _poll_job(api, imported.json()["job"]["url"], real_worker, timeout=120)
    assert job["status"] == "succeeded", (job, real_worker.logs()[-6000:])
    done = api.get(f"/api/v1/retail/imports/{imported.json()['id']}/").json()
    assert (done["rows"], done["created"], done["refused"]) == (len(events), len(events), 0), done
    assert api.get("/api/v1/retail/events/", {"customer": "u1"}).json()["count"] == sum(
        1 for event in events if event["customer"] == "u1"
    )

    # when: the worker trains ALS
    run = api.post("/api/v1/retail/training-runs/", {"algorithm": "als", "params": FAST_ALS}, format="json")
    assert run.status_code == 202, run.content
    job, seen = _poll_job(api, run.json()["job"]["url"], real_worker, timeout=120)

    # then: live progress, a promoted version with offline metrics, served here from its artifact
    assert job["status"] == "succeeded", (job, real_worker.logs()[-6000:])
    assert any(0.0 < p < 1.0 for p in seen), f"no live progress from the worker: {seen}"
    detail = api.get(f"/api/v1/retail/training-runs/{run.json()['id']}/").json()
    assert detail["version"]["number"] == 1 and detail["version"]["metrics"]["ndcg@10"] > 0
    answer = api.get("/api/v1/retail/customers/u1/recommendations/?n=5").json()
    assert answer["model"] == {"name": "recommendations", "version": 1, "alias": "production"}
    assert [item["source"] for item in answer["items"]] == ["model"] * 5

    # and: a deactivated and an expired item vanish from the next answer (PostgreSQL's own statement)
    first, second = answer["items"][0]["id"], answer["items"][1]["id"]
    assert api.patch(f"/api/v1/retail/items/{first}/", {"active": False}, format="json").status_code == 200
    past = {"available_until": "2020-01-01T00:00:00Z"}
    assert api.patch(f"/api/v1/retail/items/{second}/", past, format="json").status_code == 200
    again = api.get("/api/v1/retail/customers/u1/recommendations/?n=5").json()
    assert [item["id"] for item in again["items"]][:3] == [item["id"] for item in answer["items"]][2:]
    assert not {first, second} & {item["id"] for item in again["items"]}

    # and: every single answer is in the attribution log as answered (on PostgreSQL the catalogue
    # check and the log row are one statement): a page past the start, and an unknown customer's
    # fallback (logged the ordinary way)
    for url in (
        "/api/v1/retail/customers/u1/recommendations/?n=5",
        "/api/v1/retail/customers/u1/recommendations/?n=3&offset=4&exclude=" + first,
        "/api/v1/retail/customers/nobody/recommendations/?n=3",
    ):
        served = api.get(url).json()
        record = api.get(f"/api/v1/retail/recommendations/{served['recomm_id']}/").json()
        assert record["kind"] == "customer" and record["items"] == [item["id"] for item in served["items"]], url
        assert record["sources"] == [item["source"] for item in served["items"]], url

    # and: the precompute job writes one line per customer and item
    export = api.post("/api/v1/retail/exports/", {"n": 3}, format="json")
    assert export.status_code == 202, export.content
    job, _ = _poll_job(api, export.json()["job"]["url"], real_worker, timeout=120)
    assert job["status"] == "succeeded", (job, real_worker.logs()[-6000:])
    download = api.get(f"/api/v1/retail/exports/{export.json()['id']}/download/")
    assert download.status_code == 200
    body = b"".join(download.streaming_content).decode() if download.streaming else download.content.decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len({row["customer"] for row in rows}) == 80
    assert len(rows) == 80 * 3

    # and: a batch's answers are in the attribution log (PostgreSQL's one-statement insert)
    batch = api.post(
        "/api/v1/retail/recommendations/batch/", {"customers": ["u1", "u2", "nobody"], "n": 4}, format="json"
    )
    assert batch.status_code == 200, batch.content
    for customer, served in batch.json()["results"].items():
        record = api.get(f"/api/v1/retail/recommendations/{served['recomm_id']}/").json()
        assert record["kind"] == "batch" and record["customer"] == customer
        assert record["items"] == [item["id"] for item in served["items"]]
        assert record["model"]["version"] == 1
    bought = batch.json()["results"]["u2"]
    event = {"event_id": "ab-1", "customer": "u2", "item": bought["items"][0]["id"], "type": "purchase"}
    assert (
        api.post("/api/v1/retail/events/", [{**event, "recomm_id": bought["recomm_id"]}], format="json").json()[
            "created"
        ]
        == 1
    )
    report = api.get("/api/v1/retail/models/recommendations/online-report/").json()
    assert sum(arm["purchases"] for arm in report["arms"]) == 1
