"""The vectorised scoring engine shared by single scores, batches, replay, monitoring and the benchmark.

encoded matrix → log-odds (`ml.runtime.predict`) → PD, score, decision (numpy) → TreeSHAP
contributions (`ml.runtime.explain`) for the rows that need reasons only (review/decline, or
all when asked). The model itself is reached only through `ml.runtime`, which owns the cache,
timing and the inference context; `credit_encoder(version)` is the version's recorded
preprocessing (its `FeatureEncoder`), used to validate and encode applications first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from apps.finance.choices import Decision
from apps.finance.feature_encoding import FeatureEncoder
from apps.finance.reason_codes import reasons_for_row, top_reason_indices
from apps.finance.scorecard import PolicySnapshot, probabilities
from ml import runtime

if TYPE_CHECKING:
    from ml.models import ModelVersion


@dataclass
class ScoredRows:
    """Outputs for n rows; `reasons[i]` is None when row i needed none."""

    log_odds: np.ndarray
    probability_of_default: np.ndarray
    scores: np.ndarray
    decisions: np.ndarray
    reasons: list[list[dict[str, Any]] | None]


def credit_encoder(version: ModelVersion) -> FeatureEncoder:
    """The feature encoder `version` was trained with (features, names, index, ignored columns)."""
    encoder: FeatureEncoder = runtime.preprocessor(version)
    return encoder


def _rows(matrix: np.ndarray) -> Sequence[np.ndarray]:
    # A 2-D array is a sequence of rows, which numpy's stubs do not declare.
    return cast(Sequence[np.ndarray], matrix)


def log_odds_of(version: ModelVersion, matrix: np.ndarray) -> np.ndarray:
    """Log-odds of default of each encoded row, predicted by `version` through the runtime."""
    return np.asarray(runtime.predict(version, _rows(matrix)).outputs, dtype=np.float64).reshape(-1)


def contributions_of(version: ModelVersion, matrix: np.ndarray) -> np.ndarray:
    """TreeSHAP contributions (n, n_features) of each encoded row, computed by `version` through the runtime."""
    return np.asarray(runtime.explain(version, _rows(matrix)).outputs)


def score_matrix(
    version: ModelVersion,
    matrix: np.ndarray,
    policy: PolicySnapshot,
    *,
    explain_all: bool = False,
    reasons_needed: bool = True,
    inputs: Sequence[Mapping[str, Any]] | None = None,
) -> ScoredRows:
    """Score an encoded matrix with `version` under `policy`.

    Args:
        version: the credit model version (served by `ml.runtime`).
        matrix: (n, n_features) float32 from the version's encoder (`credit_encoder`).
        policy: scaling and thresholds.
        explain_all: compute reasons for approvals too (`"explain": true`).
        reasons_needed: False skips reason codes entirely (benchmarks, monitoring); the
            decision log never uses it: review/decline always carry reasons.
        inputs: the rows as entered, to echo each reason's feature value.
    """
    log_odds = log_odds_of(version, matrix)
    scores = policy.scores(log_odds)
    decisions = policy.decisions(scores)
    reasons: list[list[dict[str, Any]] | None] = [None] * len(log_odds)
    needs = np.ones(len(log_odds), dtype=bool) if explain_all else decisions != Decision.APPROVE.value
    rows = np.flatnonzero(needs) if reasons_needed else np.array([], dtype=np.int64)
    if rows.size:
        # Reg B: every adverse action carries its principal reasons; approvals only on request.
        contributions = contributions_of(version, matrix[rows])
        order = top_reason_indices(contributions)
        features = credit_encoder(version).features
        for j, row in enumerate(rows):
            reasons[row] = reasons_for_row(
                contributions[j], order[j], features, inputs[row] if inputs is not None else None
            )
    return ScoredRows(
        log_odds=log_odds,
        probability_of_default=probabilities(log_odds),
        scores=scores,
        decisions=decisions,
        reasons=reasons,
    )
