"""How stored JSON reads on portal pages."""

from __future__ import annotations

from core.portal.presenters import format_value, split_scalars


def test_split_scalars_separates_curves_and_tables():
    scalars, structured = split_scalars({"auc": 0.9, "curve": [[0, 0]], "note": "ok"})
    assert scalars == [("auc", "0.9"), ("note", "ok")]
    assert [name for name, _ in structured] == ["curve"]


def test_format_value_truncates_long_json():
    text = format_value(list(range(500)))
    assert len(text) == 200 and text.endswith("…")
    assert format_value(None) == "null" and format_value(True) == "true"
