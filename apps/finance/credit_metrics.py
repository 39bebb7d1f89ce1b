"""Model-quality metrics a credit risk reviewer expects (SR 11-7 "outcomes analysis").

All functions take the true default flags (0/1) and predicted log-odds/probabilities of default.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score, roc_curve

from apps.finance.scorecard import PolicySnapshot, probabilities

MARGIN_BIN_WIDTH = 0.1


def discrimination_metrics(y: np.ndarray, pd_: np.ndarray) -> dict[str, float]:
    """ROC AUC, Gini (2·AUC - 1), KS, Brier score and log loss."""
    auc = float(roc_auc_score(y, pd_))
    fpr, tpr, _ = roc_curve(y, pd_)
    return {
        "roc_auc": round(auc, 6),
        "gini": round(2 * auc - 1, 6),
        "ks": round(float(np.max(tpr - fpr)), 6),
        "brier": round(float(brier_score_loss(y, pd_)), 6),
        "log_loss": round(float(log_loss(y, np.clip(pd_, 1e-15, 1 - 1e-15), labels=[0, 1])), 6),
    }


def roc_points(y: np.ndarray, pd_: np.ndarray, *, max_points: int = 101) -> list[list[float]]:
    """A down-sampled ROC curve [[fpr, tpr], ...] for plotting."""
    fpr, tpr, _ = roc_curve(y, pd_)
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return [[round(float(a), 4), round(float(b), 4)] for a, b in zip(fpr, tpr, strict=True)]


def calibration_by_decile(y: np.ndarray, pd_: np.ndarray) -> list[dict[str, float]]:
    """Mean predicted PD vs observed default rate in each decile of predicted PD."""
    order = np.argsort(pd_, kind="stable")
    table = []
    for decile, idx in enumerate(np.array_split(order, 10), start=1):
        if len(idx) == 0:
            continue
        table.append(
            {
                "decile": decile,
                "count": len(idx),
                "mean_pd": round(float(pd_[idx].mean()), 6),
                "observed_rate": round(float(y[idx].mean()), 6),
            }
        )
    return table


def margin_table(y: np.ndarray, log_odds: np.ndarray) -> list[list[float]]:
    """Counts and defaults per 0.1-wide log-odds bin: [[bin_start, count, defaults], ...].

    Scores are monotone in the log-odds for any scaling, so approval and bad rates at any
    policy can be recomputed from this table later (the portal does, when the policy changes).
    """
    bins = np.floor(log_odds / MARGIN_BIN_WIDTH).astype(np.int64)
    table = []
    for b in np.unique(bins):
        mask = bins == b
        table.append([round(float(b * MARGIN_BIN_WIDTH), 2), int(mask.sum()), int(y[mask].sum())])
    return table


def policy_outcomes(table: list[list[float]], policy: PolicySnapshot) -> dict[str, Any]:
    """Approval, review and decline rates, and the default rate in each, for a policy.

    Args:
        table: a `margin_table` of held-out applicants.
        policy: scaling and thresholds.
    """
    totals = {"approve": [0, 0], "review": [0, 0], "decline": [0, 0]}
    for start, count, defaults in table:
        centre = np.array([start + MARGIN_BIN_WIDTH / 2])
        decision = str(policy.decisions(policy.scores(centre))[0])
        totals[decision][0] += int(count)
        totals[decision][1] += int(defaults)
    n = sum(c for c, _ in totals.values()) or 1
    outcome: dict[str, Any] = {}
    for decision, (count, defaults) in totals.items():
        outcome[f"{decision}_rate"] = round(count / n, 4)
        outcome[f"{decision}_bad_rate"] = round(defaults / count, 4) if count else None
    outcome["approve_min_score"] = policy.approve_min_score
    outcome["decline_below_score"] = policy.decline_below_score
    return outcome


def evaluation_report(y: np.ndarray, log_odds: np.ndarray) -> dict[str, Any]:
    """Everything stored per model on the held-out split."""
    pd_ = probabilities(log_odds)
    return {
        **discrimination_metrics(y, pd_),
        "calibration": calibration_by_decile(y, pd_),
        "roc_curve": roc_points(y, pd_),
    }
