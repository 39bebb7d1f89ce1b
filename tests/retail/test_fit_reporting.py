"""The training fit's progress: the iterations reported, their losses, and a fit left unchanged by them."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from apps.retail import ml as retail_ml
from apps.retail.choices import Algorithm
from tests.retail.conftest import movielens_subset

PARAMS = {"factors": 8, "iterations": 6, "regularization": 0.05, "alpha": 1.0}


def _matrix() -> sp.csr_matrix:
    _, events = movielens_subset(customers=60)
    customers = {c: n for n, c in enumerate(sorted({e["customer"] for e in events}))}
    items = {i: n for n, i in enumerate(sorted({e["item"] for e in events}))}
    return sp.csr_matrix(
        (
            [float(e["value"]) for e in events],
            ([customers[e["customer"]] for e in events], [items[e["item"]] for e in events]),
        ),
        shape=(len(customers), len(items)),
        dtype=np.float32,
    )


def _raw(matrix: sp.csr_matrix) -> tuple[AlternatingLeastSquares, list[float]]:
    losses: list[float] = []
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(**PARAMS, calculate_training_loss=True, random_state=0)
        model.fit(matrix, show_progress=False, callback=lambda i, elapsed, loss: losses.append(float(loss)))
    return model, losses


@pytest.mark.parametrize(("report_seconds", "expected"), [(0.0, list(range(6))), (3600.0, [0, 5])])
def test_reported_iterations_carry_raw_implicits_loss_and_the_fit_is_raw_implicits(
    monkeypatch: pytest.MonkeyPatch, report_seconds: float, expected: list[int]
) -> None:
    # given: a slow fit (every iteration due) or a fast one (only the first and the last)
    monkeypatch.setattr(retail_ml, "REPORT_SECONDS", report_seconds)
    matrix = _matrix()
    raw, raw_losses = _raw(matrix)
    reported: list[tuple[int, float | None]] = []

    # when
    model = retail_ml.fit(
        Algorithm.ALS, matrix, PARAMS, on_iteration=lambda i, loss: reported.append((i, loss)), seed=0
    )

    # then: each reported iteration has the loss raw implicit computes there; skipping the loss
    # elsewhere changed nothing in the factors
    assert [iteration for iteration, _ in reported] == expected
    assert [loss for _, loss in reported] == pytest.approx([raw_losses[i] for i in expected], rel=1e-6)
    np.testing.assert_allclose(model.item_factors, raw.item_factors, rtol=1e-6)
    np.testing.assert_allclose(model.user_factors, raw.user_factors, rtol=1e-6)


def test_without_report_loss_no_loss_is_computed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retail_ml, "REPORT_SECONDS", 0.0)
    reported: list[float | None] = []
    retail_ml.fit(
        Algorithm.ALS, _matrix(), {**PARAMS, "report_loss": False}, on_iteration=lambda i, loss: reported.append(loss)
    )
    assert reported == [None] * 6  # PARAMS["iterations"]
