"""The precompute export: every customer's top-N as a CSV, streamed through a spool, logged for attribution."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from apps.retail import services
from apps.retail.models import Customer, Recommendation

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_export_has_every_customers_batch_answer_and_its_logged_recomm_id(
    api: Any, trained: dict[str, Any], org: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: small batches and a tiny spool, so the CSV crosses batches and goes to disk
    monkeypatch.setattr(services, "PRECOMPUTE_BATCH", 7)
    monkeypatch.setattr(services, "PRECOMPUTE_SPOOL_BYTES", 1024)

    # when
    export = api.post("/api/v1/retail/exports/", {"n": 3}, format="json")
    assert export.status_code == 202, export.content
    detail = api.get(f"/api/v1/retail/exports/{export.json()['id']}/").json()
    response = api.get(f"/api/v1/retail/exports/{export.json()['id']}/download/")

    # then: three rows per customer, ranked, each answer's recomm_id in the attribution log with its items
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    customers = set(Customer.objects.filter(organization=org).values_list("external_id", flat=True))
    assert detail["customers"] == len(customers) == len({row["customer"] for row in rows})
    assert len(rows) == 3 * len(customers)
    by_answer: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_answer.setdefault(row["recomm_id"], []).append(row)
    logged = {str(r.recomm_id): r for r in Recommendation.objects.filter(organization=org, kind="batch")}
    for recomm_id, answer in by_answer.items():
        assert [row["rank"] for row in answer] == ["1", "2", "3"]
        assert logged[recomm_id].items == [row["item"] for row in answer]
        assert logged[recomm_id].customer_external_id == answer[0]["customer"]
