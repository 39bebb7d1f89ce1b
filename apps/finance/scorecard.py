"""Score scaling (points to double the odds) and the approve/review/decline policy.

The model predicts the log-odds of default `m`. A scorecard expresses the odds of *good*
(`exp(-m)`) on a points scale: `score = offset + factor · ln(good:bad odds)`, with
`factor = PDO / ln 2` and `offset = points_at_base_odds - factor · ln(base_odds)`. With the
defaults (600 points at 50:1, PDO 20) an applicant at 50:1 scores 600 and one at 100:1 scores 620.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import expit

from apps.finance.choices import Decision

# Far beyond any real scale (a score of ±10^9 is odds of 10^(10^7) at PDO 20), small enough for int64.
MAX_SCORE = 1_000_000_000


@dataclass(frozen=True)
class PolicySnapshot:
    """The scaling and thresholds in force for one decision (stored on it for exact replay)."""

    points_at_base_odds: int = 600
    base_odds: float = 50.0
    pdo: float = 20.0
    approve_min_score: int = 570
    decline_below_score: int = 530

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicySnapshot:
        return cls(
            points_at_base_odds=int(data["points_at_base_odds"]),
            base_odds=float(data["base_odds"]),
            pdo=float(data["pdo"]),
            approve_min_score=int(data["approve_min_score"]),
            decline_below_score=int(data["decline_below_score"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2)

    @property
    def offset(self) -> float:
        return self.points_at_base_odds - self.factor * math.log(self.base_odds)

    def scores(self, log_odds_default: np.ndarray) -> np.ndarray:
        """Integer scores for log-odds of default (higher score = lower risk).

        Scores are clipped to ±MAX_SCORE before the integer cast: an unclipped cast of an infinite
        or astronomically large value wraps to INT64_MIN, which would decline an infinitely safe
        applicant. A NaN log-odds has no score and is refused.
        """
        log_odds = np.asarray(log_odds_default, dtype=np.float64)
        if np.isnan(log_odds).any():
            raise ValueError("A log-odds of default is NaN; no score can be given.")
        with np.errstate(invalid="ignore", over="ignore"):
            raw = np.floor(self.offset - self.factor * log_odds + 0.5)
        return np.clip(raw, -MAX_SCORE, MAX_SCORE).astype(np.int64)

    def decisions(self, scores: np.ndarray) -> np.ndarray:
        """approve / review / decline for each score."""
        return np.where(
            scores >= self.approve_min_score,
            Decision.APPROVE.value,
            np.where(scores < self.decline_below_score, Decision.DECLINE.value, Decision.REVIEW.value),
        )

    def log_odds_at_score(self, score: float) -> float:
        """The log-odds of default an applicant scoring `score` has (inverse of `scores`)."""
        return (self.offset - score) / self.factor

    def pd_at_score(self, score: float) -> float:
        return float(expit(self.log_odds_at_score(score)))


def probabilities(log_odds_default: np.ndarray) -> np.ndarray:
    """PD from log-odds (float64, numerically stable at any magnitude)."""
    return np.asarray(expit(np.asarray(log_odds_default, dtype=np.float64)))
