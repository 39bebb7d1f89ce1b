"""Which metrics a model-registry table shows for a version."""

from __future__ import annotations

from ml.presenters import headline_metrics


def test_headline_metrics_put_well_known_scalars_first():
    metrics = {"best_iteration": 59, "brier": 0.17457, "roc_auc": 0.733328, "roc_curve": [[0, 0], [1, 1]], "ks": 0.35}
    assert headline_metrics(metrics, limit=3) == [("roc_auc", "0.7333"), ("ks", "0.35"), ("brier", "0.1746")]


def test_headline_metrics_skip_non_scalars_and_fill_up_by_name():
    assert headline_metrics({"zeta": 1, "alpha": 2.0, "table": {"a": 1}, "note": "x", "auc": 0.5}) == [
        ("auc", "0.5"),
        ("alpha", "2"),
        ("zeta", "1"),
    ]
    assert headline_metrics(None) == []
