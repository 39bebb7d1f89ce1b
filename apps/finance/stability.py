"""Population and characteristic stability (PSI / CSI) against the training baseline.

PSI = Σ (actual% - expected%) · ln(actual% / expected%) over the baseline's bins. Bands as in
common practice (Siddiqi; OCC model-risk guidance): < 0.10 stable, 0.10-0.25 watch, > 0.25 act.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from apps.finance.choices import StabilityBand

EPSILON = 1e-4  # floor for empty bins, so one empty bin does not make the index infinite
MIN_DECISIONS = 30
N_BINS = 10


def stability_index(expected: np.ndarray, actual: np.ndarray) -> float:
    expected = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    actual = np.maximum(np.asarray(actual, dtype=np.float64), EPSILON)
    expected, actual = expected / expected.sum(), actual / actual.sum()
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def band(value: float | None) -> str:
    if value is None:
        return StabilityBand.INSUFFICIENT
    if value < 0.10:
        return StabilityBand.STABLE
    if value <= 0.25:
        return StabilityBand.WATCH
    return StabilityBand.ACT


def numeric_baseline(values: np.ndarray) -> dict[str, Any]:
    """Decile edges of a numeric column (plus a missing bin) and the share in each bin."""
    present = values[~np.isnan(values)]
    if present.size == 0:
        # one (empty) bin for present values, so an all-missing window compares bin for bin
        return {"kind": "numeric", "edges": [], "proportions": [0.0], "missing": 1.0}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, N_BINS + 1)[1:-1]))
    return {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "proportions": [round(float(p), 6) for p in numeric_distribution(values, edges)[0]],
        "missing": round(float(np.isnan(values).mean()), 6),
    }


def numeric_distribution(values: np.ndarray, edges: np.ndarray | list[float]) -> tuple[np.ndarray, float]:
    """Shares of non-missing values per bin (right-closed bins at `edges`) and the missing share."""
    missing = np.isnan(values)
    present = values[~missing]
    counts = np.bincount(np.searchsorted(np.asarray(edges), present, side="left"), minlength=len(edges) + 1)
    total = max(len(values), 1)
    return counts / total, float(missing.sum() / total)


def categorical_baseline(codes: np.ndarray, n_categories: int) -> dict[str, Any]:
    return {
        "kind": "categorical",
        "proportions": [round(float(p), 6) for p in categorical_distribution(codes, n_categories)[0]],
        "missing": round(float(np.isnan(codes).mean()), 6),
    }


def categorical_distribution(codes: np.ndarray, n_categories: int) -> tuple[np.ndarray, float]:
    """Shares per category code and the missing share; a code outside the baseline's categories
    counts as missing, so that mass stays visible to the index instead of vanishing."""
    missing = np.isnan(codes)
    known = ~missing & (codes >= 0) & (codes < n_categories)
    counts = np.bincount(codes[known].astype(np.int64), minlength=n_categories)[:n_categories]
    total = max(len(codes), 1)
    return counts / total, float((len(codes) - known.sum()) / total) if len(codes) else 0.0


def column_index(baseline: dict[str, Any], values: np.ndarray) -> float:
    """CSI of one encoded column against its stored baseline (missing is its own bin)."""
    if baseline["kind"] == "numeric":
        shares, missing = numeric_distribution(values, baseline["edges"])
    else:
        shares, missing = categorical_distribution(values, len(baseline["proportions"]))
    expected = np.append(np.asarray(baseline["proportions"], dtype=np.float64), baseline["missing"])
    actual = np.append(shares, missing)
    return stability_index(expected, actual)
