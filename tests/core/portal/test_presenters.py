"""How stored JSON reads on portal pages."""

from __future__ import annotations

from core.portal.presenters import format_value, headline_metrics, split_scalars


def test_headline_metrics_put_well_known_scalars_first():
    metrics = {"best_iteration": 59, "brier": 0.17457, "roc_auc": 0.733328, "roc_curve": [[0, 0], [1, 1]], "ks": 0.35}
    assert headline_metrics(metrics, limit=3) == [("roc_auc", "0.7333"), ("ks", "0.35"), ("brier", "0.1746")]


def test_split_scalars_separates_curves_and_tables():
    scalars, structured = split_scalars({"auc": 0.9, "curve": [[0, 0]], "note": "ok"})
    assert scalars == [("auc", "0.9"), ("note", "ok")]
    assert [name for name, _ in structured] == ["curve"]


def test_format_value_truncates_long_json():
    text = format_value(list(range(500)))
    assert len(text) == 200 and text.endswith("…")
    assert format_value(None) == "null" and format_value(True) == "true"
