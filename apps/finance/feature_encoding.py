"""Turning applications into the model's feature matrix, validating them against its schema.

One encoder serves training, single scores, batches, replay and monitoring, so a value is
encoded the same way everywhere: numeric features as float32, categorical features as the
index of the category in the schema's list (XGBoost native categorical support), missing as
NaN (XGBoost's native missing-value handling).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from apps.finance.choices import ColumnType
from core.errors import ValidationFailed

FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class FeatureSpec:
    """One model input: its type, categories, bounds and whether it may be missing."""

    name: str
    type: str
    categories: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    missing_allowed: bool = True
    description: str = ""
    reason_code: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        return cls(
            name=data["name"],
            type=data["type"],
            categories=tuple(data.get("categories") or ()),
            min=data.get("min"),
            max=data.get("max"),
            missing_allowed=bool(data.get("missing_allowed", True)),
            description=data.get("description") or "",
            reason_code=data.get("reason_code") or "",
        )

    @property
    def is_categorical(self) -> bool:
        return self.type == ColumnType.CATEGORICAL


def category_text(value: object) -> str:
    """The text form of a categorical value: `2`, `2.0` and the text "2.0" all mean category "2".

    CSV cells arrive as text ("60.0" from a float column written by pandas) while JSON brings the
    number 60.0: both must be the same category, so integer-valued numeric text is normalised too.
    """
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    if text and (text[0].isdigit() or text[0] in "+-.") and "." in text:
        try:
            number = float(text)
        except ValueError:
            return text
        if number.is_integer() and math.isfinite(number):
            return str(int(number))
    return text


class FeatureEncoder:
    """Encodes records or text frames for one model version's features (in model order)."""

    def __init__(self, features: Sequence[FeatureSpec], ignored: Sequence[str] = ()) -> None:
        self.features = list(features)
        self.names = [f.name for f in self.features]
        self.index = {f.name: i for i, f in enumerate(self.features)}
        self.ignored = frozenset(ignored)
        self.category_codes = [_category_codes(f.categories) for f in self.features]

    # --- one application (API, portal, replay) --------------------------------------------------

    def encode_record(self, record: Mapping[str, Any]) -> np.ndarray:
        """Validate one application's features and encode them as a (1, n_features) float32 row.

        Raises:
            ValidationFailed: with one message per bad field under `features.<name>`.
        """
        row = np.full((1, len(self.features)), np.nan, dtype=np.float32)
        errors: dict[str, list[str]] = {}
        for key in record:
            if key not in self.index and key not in self.ignored:
                errors[f"features.{key}"] = ["Unknown feature: the model does not use it."]
        for i, spec in enumerate(self.features):
            value = record.get(spec.name)
            if value is None:
                if not spec.missing_allowed:
                    errors[f"features.{spec.name}"] = ["Required: the model never saw this feature missing."]
                continue
            if spec.is_categorical:
                if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                    errors[f"features.{spec.name}"] = ["Expected a category (text)."]
                    continue
                code = self.category_codes[i].get(category_text(value))
                if code is None:
                    errors[f"features.{spec.name}"] = [_unknown_category(value, spec)]
                    continue
                row[0, i] = code
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    errors[f"features.{spec.name}"] = ["Expected a number."]
                    continue
                try:
                    number = float(value)
                except OverflowError:  # a JSON integer with hundreds of digits
                    number = math.inf
                message = _range_error(number, spec)
                if message:
                    errors[f"features.{spec.name}"] = [message]
                    continue
                row[0, i] = number
        if errors:
            raise ValidationFailed("Some features are invalid for this model.", code="invalid_features", fields=errors)
        return row

    # --- many applications (batch, training, monitoring) ----------------------------------------

    def encode_frame(self, frame: pd.DataFrame, *, strict: bool = True) -> tuple[np.ndarray, list[str]]:
        """Encode a frame of text cells (NaN = missing) into an (n, n_features) float32 matrix.

        Args:
            frame: one column per feature, values as read from a CSV (text or NaN).
            strict: validate like the API (required, bounds, unknown categories become row
                errors); training and monitoring use `strict=False`: out-of-domain cells
                become missing instead.

        Returns:
            The matrix and one error message per row ("" when the row is valid).
        """
        n = len(frame)
        matrix = np.full((n, len(self.features)), np.nan, dtype=np.float32)
        problems: list[tuple[np.ndarray, str]] = []
        for i, spec in enumerate(self.features):
            if spec.name not in frame.columns:
                if strict and not spec.missing_allowed:
                    problems.append((np.ones(n, dtype=bool), f"{spec.name}: required column is missing"))
                continue
            column = frame[spec.name]
            missing = column.isna().to_numpy()
            if spec.is_categorical:
                codes = column.map(self.category_codes[i], na_action="ignore")
                if codes.isna().to_numpy().any():
                    texts = column.astype(object).map(category_text, na_action="ignore")
                    codes = texts.map(self.category_codes[i], na_action="ignore")
                values = codes.to_numpy(dtype=np.float64, na_value=np.nan)
                unknown = ~missing & np.isnan(values)
                if strict and unknown.any():
                    problems.append((unknown, f"{spec.name}: unknown category"))
            else:
                values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
                # beyond float32's range a value would become inf in the matrix: as bad as inf itself
                not_number = ~missing & ~(np.abs(values) <= FLOAT32_MAX)
                values[not_number] = np.nan
                if strict:
                    if not_number.any():
                        problems.append((not_number, f"{spec.name}: not a number"))
                    if spec.min is not None:
                        problems.append((values < spec.min, f"{spec.name}: below the minimum {spec.min:g}"))
                    if spec.max is not None:
                        problems.append((values > spec.max, f"{spec.name}: above the maximum {spec.max:g}"))
            if strict and not spec.missing_allowed and missing.any():
                problems.append((missing, f"{spec.name}: required value is missing"))
            matrix[:, i] = values
        errors = [""] * n
        for mask, message in problems:
            for row in np.flatnonzero(mask):
                errors[row] = f"{errors[row]}; {message}" if errors[row] else message
        return matrix, errors


def _category_codes(categories: Sequence[str]) -> dict[str, float]:
    """Code per category, also under its normalised text ("36.0" stored → "36" matches too)."""
    codes = {category: float(i) for i, category in enumerate(categories)}
    for category, code in list(codes.items()):
        codes.setdefault(category_text(category), code)
    return codes


def _unknown_category(value: object, spec: FeatureSpec) -> str:
    shown = ", ".join(spec.categories[:12]) + (", …" if len(spec.categories) > 12 else "")
    return f"Unknown category {str(value)[:50]!r}; expected one of: {shown}."


def _range_error(number: float, spec: FeatureSpec) -> str:
    if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
        return "Expected a finite number."
    if spec.min is not None and number < spec.min:
        return f"Out of range: must be at least {spec.min:g}."
    if spec.max is not None and number > spec.max:
        return f"Out of range: must be at most {spec.max:g}."
    return ""
