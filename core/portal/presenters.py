"""Turning stored JSON (metrics, params, manifests) into rows a template can print as-is.

Kept out of the templates because Django templates cannot format arbitrary JSON, and out of
the models because how a number reads on a page is the portal's business.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MAX_CELL_CHARS = 200


def format_value(value: Any) -> str:
    """A short human-readable rendering: 4 significant digits for floats, compact JSON otherwise."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (int, str)):
        return str(value)
    text = json.dumps(value, separators=(", ", ": "), default=str)
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"


def value_rows(mapping: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """`{"auc": 0.91234}` → `[("auc", "0.9123")]`, sorted by key."""
    return [(str(key), format_value(value)) for key, value in sorted((mapping or {}).items())]


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def split_scalars(mapping: Mapping[str, Any] | None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(scalar rows, structured rows): numbers and strings to tabulate, curves/tables as pretty JSON."""
    scalars: dict[str, Any] = {}
    structured: list[tuple[str, str]] = []
    for key, value in sorted((mapping or {}).items()):
        if isinstance(value, (dict, list)):
            structured.append((str(key), pretty_json(value)))
        else:
            scalars[key] = value
    return value_rows(scalars), structured
