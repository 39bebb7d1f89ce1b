"""How model-registry JSON reads on portal pages: the headline metrics of a version.

The generic formatting (`format_value`, `value_rows`, ...) is the portal's, in
`core.portal.presenters`; which metrics matter most is the ML layer's knowledge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.portal.presenters import format_value

# Metrics people compare versions by, in the order they look for them. JSON key order is not
# kept by every database (PostgreSQL's jsonb reorders keys), so the order is ours.
HEADLINE_METRICS = (
    "roc_auc", "auc", "accuracy", "balanced_accuracy", "f1", "map50_95", "map50", "precision", "recall",
    "ndcg", "gini", "ks", "brier", "rmse", "mae", "loss",
)  # fmt: skip


def headline_metrics(metrics: Mapping[str, Any] | None, limit: int = 4) -> list[tuple[str, str]]:
    """A few scalar metrics for one-line-per-version tables: well-known ones first, then by name."""
    scalars = {key: value for key, value in (metrics or {}).items() if isinstance(value, (int, float))}
    known = [key for key in HEADLINE_METRICS if key in scalars]
    others = sorted(key for key in scalars if key not in HEADLINE_METRICS)
    return [(key, format_value(scalars[key])) for key in (known + others)[:limit]]
