"""The vectorised scoring engine shared by single scores, batches, replay and the benchmark.

encoded matrix → log-odds (one `inplace_predict`) → PD, score, decision (numpy) → TreeSHAP
contributions for the rows that need reasons only (review/decline, or all when asked).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from apps.finance.choices import Decision
from apps.finance.ml import CreditModel, predict_contributions, predict_log_odds
from apps.finance.reason_codes import reasons_for_row, top_reason_indices
from apps.finance.scorecard import PolicySnapshot, probabilities


@dataclass
class ScoredRows:
    """Outputs for n rows; `reasons[i]` is None when row i needed none."""

    log_odds: np.ndarray
    probability_of_default: np.ndarray
    scores: np.ndarray
    decisions: np.ndarray
    reasons: list[list[dict[str, Any]] | None]


def score_matrix(
    model: CreditModel,
    matrix: np.ndarray,
    policy: PolicySnapshot,
    *,
    explain_all: bool = False,
    reasons_needed: bool = True,
    inputs: Sequence[Mapping[str, Any]] | None = None,
) -> ScoredRows:
    """Score an encoded matrix under `policy`.

    Args:
        model: the loaded credit model.
        matrix: (n, n_features) float32 from the model's encoder.
        policy: scaling and thresholds.
        explain_all: compute reasons for approvals too (`"explain": true`).
        reasons_needed: False skips reason codes entirely (benchmarks, monitoring); the
            decision log never uses it: review/decline always carry reasons.
        inputs: the rows as entered, to echo each reason's feature value.
    """
    log_odds = predict_log_odds(model, matrix)
    scores = policy.scores(log_odds)
    decisions = policy.decisions(scores)
    reasons: list[list[dict[str, Any]] | None] = [None] * len(log_odds)
    needs = np.ones(len(log_odds), dtype=bool) if explain_all else decisions != Decision.APPROVE.value
    rows = np.flatnonzero(needs) if reasons_needed else np.array([], dtype=np.int64)
    if rows.size:
        # Reg B: every adverse action carries its principal reasons; approvals only on request.
        contributions = predict_contributions(model, matrix[rows])
        order = top_reason_indices(contributions)
        for j, row in enumerate(rows):
            reasons[row] = reasons_for_row(
                contributions[j], order[j], model.features, inputs[row] if inputs is not None else None
            )
    return ScoredRows(
        log_odds=log_odds,
        probability_of_default=probabilities(log_odds),
        scores=scores,
        decisions=decisions,
        reasons=reasons,
    )
