"""What the credit portal's pages show, computed from rows the views fetched: metric tables,
comparison rows, drift history and the SVG charts. No queries and no writes here, so the
views stay thin and these stay testable on plain data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from apps.finance import charts
from apps.finance.credit_metrics import policy_outcomes
from apps.finance.models import MonitoringSnapshot
from apps.finance.scorecard import PolicySnapshot
from ml.models import ModelVersion

# (label, metric key, which direction is better) of the version page's model-vs-baseline table
VERSION_METRICS = (
    ("ROC AUC", "roc_auc", "higher"),
    ("Gini", "gini", "higher"),
    ("KS", "ks", "higher"),
    ("Brier score", "brier", "lower"),
    ("Log loss", "log_loss", "lower"),
)
COMPARE_METRICS = ("roc_auc", "gini", "ks", "brier", "log_loss")
POLICY_EXAMPLE_SCORES = range(440, 701, 20)
CSI_HISTORY_SNAPSHOTS = 8
CSI_HISTORY_FEATURES = 10


def version_page(version: ModelVersion, policy: PolicySnapshot) -> dict[str, Any]:
    """A version's metrics against its logistic baseline, policy outcomes and charts."""
    metrics = version.metrics or {}
    baseline = metrics.get("baseline") or {}
    rows = [(label, metrics.get(key), baseline.get(key), better) for label, key, better in VERSION_METRICS]
    outcomes = policy_outcomes(metrics["margin_table"], policy) if metrics.get("margin_table") else None
    return {
        "version": version,
        "metric_rows": rows,
        "outcomes": outcomes,
        "roc_svg": charts.roc_chart(
            [("XGBoost", metrics.get("roc_curve", [])), ("Logistic baseline", baseline.get("roc_curve", []))]
        ),
        "calibration_svg": charts.calibration_chart(
            [("XGBoost", metrics.get("calibration", [])), ("Logistic baseline", baseline.get("calibration", []))]
        ),
        "importance_svg": charts.bar_chart(
            [(f["feature"], f["gain_share"]) for f in metrics.get("feature_importance", [])],
            title="Feature importance (share of total gain)",
        ),
    }


def compare_page(left: ModelVersion, right: ModelVersion) -> dict[str, Any]:
    """Two versions side by side: headline metrics, baseline AUC, rounds, training rows, ROC curves."""
    rows: list[tuple[str, Any, Any]] = [(key, left.metrics.get(key), right.metrics.get(key)) for key in COMPARE_METRICS]
    rows.append(
        (
            "baseline roc_auc",
            left.metrics.get("baseline", {}).get("roc_auc"),
            right.metrics.get("baseline", {}).get("roc_auc"),
        )
    )
    rows.append(("rounds", left.metrics.get("rounds"), right.metrics.get("rounds")))
    rows.append(
        ("training rows", left.metrics.get("split", {}).get("train"), right.metrics.get("split", {}).get("train"))
    )
    roc = charts.roc_chart(
        [
            (f"v{left.number}", left.metrics.get("roc_curve", [])),
            (f"v{right.number}", right.metrics.get("roc_curve", [])),
        ]
    )
    return {"rows": rows, "roc_svg": roc, "pair": [left] if left.number == right.number else [left, right]}


def monitoring_page(report: dict[str, Any], snapshots: Sequence[MonitoringSnapshot]) -> dict[str, Any]:
    """The current drift report with the stored snapshots (oldest first): CSI per feature over time, charts."""
    history = list(snapshots)
    csi_snapshots = history[-CSI_HISTORY_SNAPSHOTS:]
    csi_features = [f["feature"] for f in report["features"][:CSI_HISTORY_FEATURES]] or sorted(
        {f["feature"] for s in csi_snapshots for f in s.report.get("features", [])}
    )[:CSI_HISTORY_FEATURES]
    # One row per feature, one cell per stored snapshot: how each characteristic drifted over time.
    csi_history = [
        (
            feature,
            [next((f for f in s.report.get("features", []) if f["feature"] == feature), None) for s in csi_snapshots],
        )
        for feature in csi_features
    ]
    return {
        "report": report,
        "history": history,
        "csi_snapshots": csi_snapshots,
        "csi_history": csi_history,
        "csi_svg": charts.bar_chart(
            [(f["feature"], f["csi"]) for f in report["features"]], title="CSI per feature", value_format="{:.3f}"
        ),
        "psi_svg": charts.psi_history_chart(
            [(s.created_at.strftime("%Y-%m-%d %H:%M"), s.score_psi) for s in history if s.score_psi is not None]
        ),
    }


def policy_examples(policy: PolicySnapshot) -> list[tuple[int, float]]:
    """(score, probability of default) at a ladder of scores, to show what the scaling means."""
    return [(score, policy.pd_at_score(score)) for score in POLICY_EXAMPLE_SCORES]
