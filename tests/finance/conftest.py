"""Finance test helpers: generated credit CSVs and a trained-through-the-API model."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest

from fixtures.finance_synthetic import FEATURE_DESCRIPTIONS, generate_credit_applications

FAST_PARAMS = {"n_estimators": 60, "learning_rate": 0.2, "early_stopping_rounds": 15}


def csv_upload(frame: Any, name: str = "applications.csv") -> io.BytesIO:
    buffer = io.BytesIO(frame.to_csv(index=False).encode())
    buffer.name = name
    return buffer


@pytest.fixture
def credit_frame() -> Any:
    return generate_credit_applications(2_000, seed=3)


@pytest.fixture
def upload_dataset(api: Any, credit_frame: Any) -> Callable[..., Any]:
    def upload(client: Any = None, frame: Any = None, **fields: Any) -> Any:
        client = client or api
        data = {"file": csv_upload(credit_frame if frame is None else frame), "name": "apps", "target": "default"}
        data.update(fields)
        return client.post("/api/v1/finance/datasets/", data, format="multipart")

    return upload


@pytest.fixture
def trained_model(api: Any, upload_dataset: Callable[..., Any]) -> dict[str, Any]:
    """Upload, describe two features, train `credit-risk` v1 through the API (jobs run inline)."""
    dataset = upload_dataset().json()
    edits = [{"name": n, "description": FEATURE_DESCRIPTIONS[n]} for n in ("num_delinquencies", "credit_utilization")]
    api.patch(f"/api/v1/finance/datasets/{dataset['id']}/", {"columns": edits}, format="json")
    response = api.post(
        "/api/v1/finance/training-runs/", {"dataset": dataset["id"], "params": FAST_PARAMS}, format="json"
    )
    assert response.status_code == 202, response.content
    return {"dataset": dataset, "run": response.json()}


def applicant(frame: Any, index: int = 0) -> dict[str, Any]:
    """Row `index` of a generated frame as API features (NaN → absent)."""
    row = frame.drop(columns=["application_id", "default"]).iloc[index]
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value != value:  # NaN
            continue
        out[str(key)] = value.item() if hasattr(value, "item") else value
    return out
