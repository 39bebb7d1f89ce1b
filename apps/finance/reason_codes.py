"""Adverse-action reason codes from TreeSHAP contributions.

XGBoost's `pred_contribs` splits each applicant's log-odds of default exactly into one
contribution per feature plus a bias. The features with the largest positive contributions
are the ones that pushed this applicant toward default: those are the principal reasons
(Reg B / ECOA, 12 CFR 1002.9: "specific reasons"; the official commentary considers more than
four reasons unhelpful, so we report at most four).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from apps.finance.feature_encoding import FeatureSpec

MAX_REASONS = 4  # Reg B commentary: disclosing more than four principal reasons is not meaningful


def top_reason_indices(contributions: np.ndarray, *, limit: int = MAX_REASONS) -> np.ndarray:
    """For each row, the indices of up to `limit` features ordered by contribution (largest first).

    Args:
        contributions: (n_rows, n_features) log-odds contributions, bias column removed.

    Returns:
        (n_rows, k) int array, k = min(limit, n_features).
    """
    k = min(limit, contributions.shape[1])
    # Stable sort on the negated values: ties keep schema order, so codes are deterministic.
    return np.argsort(-contributions, axis=1, kind="stable")[:, :k]


def reasons_for_row(
    contributions: np.ndarray,
    order: np.ndarray,
    features: Sequence[FeatureSpec],
    inputs: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The reason-code list of one applicant.

    Only features that increased the risk (contribution > 0) are reasons. When none did (a
    decline driven by the portfolio's base rate alone), the least favourable feature is still
    given so the applicant always receives a specific reason.
    """
    reasons: list[dict[str, Any]] = []
    for index in order:
        value = float(contributions[index])
        if value <= 0 and reasons:
            break
        spec = features[index]
        reason: dict[str, Any] = {
            "code": spec.reason_code,
            "feature": spec.name,
            "description": spec.description or f"Value of {spec.name}",
            "contribution": round(value, 6),
        }
        if inputs is not None:
            reason["value"] = inputs.get(spec.name)
        reasons.append(reason)
        if value <= 0:
            break
    return reasons
