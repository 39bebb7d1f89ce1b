"""Unit tests of `apps.finance.feature_encoding`: one record and text frames encoded into the
model's matrix, per-field validation errors, and FeatureSpec round trips."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from apps.finance.feature_encoding import FeatureEncoder, FeatureSpec, category_text
from core.errors import ValidationFailed

SPECS = [
    FeatureSpec(name="income", type="numeric", min=0.0, max=1_000_000.0, missing_allowed=False),
    FeatureSpec(name="purpose", type="categorical", categories=("car", "home", "education")),
    FeatureSpec(name="term", type="categorical", categories=("36", "60"), missing_allowed=False),
    FeatureSpec(name="utilization", type="numeric"),
]


@pytest.fixture
def encoder() -> FeatureEncoder:
    return FeatureEncoder(SPECS, ignored=["application_id"])


def _fields(excinfo: pytest.ExceptionInfo[ValidationFailed]) -> dict[str, list[str]]:
    assert excinfo.value.code == "invalid_features"
    return excinfo.value.fields


# --- one record -------------------------------------------------------------------------------


def test_a_record_is_encoded_in_model_order_whatever_its_key_order(encoder):
    # given keys in another order than the schema
    record = {"utilization": 0.5, "term": "60", "purpose": "education", "income": 42_000}
    # when
    row = encoder.encode_record(record)
    # then one float32 row: numbers as-is, categories as their index in the schema's list
    assert row.dtype == np.float32 and row.shape == (1, 4)
    np.testing.assert_array_equal(row, np.array([[42_000.0, 2.0, 1.0, 0.5]], dtype=np.float32))


def test_missing_optional_features_are_nan(encoder):
    row = encoder.encode_record({"income": 1.0, "term": "36", "purpose": None})
    assert row[0, 0] == 1.0 and row[0, 2] == 0.0
    assert np.isnan(row[0, 1]) and np.isnan(row[0, 3])


def test_numbers_given_for_categories_mean_the_same_category(encoder):
    # 60, 60.0 and " 60 " are all category "60"
    for value in (60, 60.0, " 60 "):
        assert encoder.encode_record({"income": 1, "term": value})[0, 2] == 1.0
    assert category_text(60.0) == "60" and category_text(60.5) == "60.5" and category_text(" car ") == "car"


def test_every_bad_field_gets_its_own_message(encoder):
    # given a record with a required feature missing, an unknown category, a text number,
    # a boolean, an unknown key and an ignored one
    record = {
        "purpose": "boat",
        "utilization": "0.4",
        "term": True,
        "shoe_size": 44,
        "application_id": "A-1",
    }
    # when
    with pytest.raises(ValidationFailed) as excinfo:
        encoder.encode_record(record)
    # then one message per bad field, keyed by its path; the ignored column is accepted
    fields = _fields(excinfo)
    assert set(fields) == {"features.income", "features.purpose", "features.utilization", "features.term",
                           "features.shoe_size"}  # fmt: skip
    assert fields["features.income"] == ["Required: the model never saw this feature missing."]
    assert fields["features.purpose"][0].startswith("Unknown category 'boat'; expected one of: car, home, education")
    assert fields["features.utilization"] == ["Expected a number."]
    assert fields["features.term"] == ["Expected a category (text)."]
    assert fields["features.shoe_size"] == ["Unknown feature: the model does not use it."]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "Out of range: must be at least 0."),
        (1_000_001, "Out of range: must be at most 1e+06."),
        (float("inf"), "Expected a finite number."),
        (float("nan"), "Expected a finite number."),
        (False, "Expected a number."),
        ([1], "Expected a number."),
        ({"value": 1}, "Expected a number."),
    ],
)
def test_numeric_type_and_range_errors(encoder, value, message):
    with pytest.raises(ValidationFailed) as excinfo:
        encoder.encode_record({"income": value, "term": "36"})
    assert _fields(excinfo) == {"features.income": [message]}


def test_bounds_are_inclusive(encoder):
    assert encoder.encode_record({"income": 0, "term": "36"})[0, 0] == 0.0
    assert encoder.encode_record({"income": 1_000_000, "term": "36"})[0, 0] == 1_000_000.0


def test_an_unknown_category_message_lists_at_most_twelve_categories():
    spec = FeatureSpec(name="region", type="categorical", categories=tuple(f"R{i}" for i in range(20)))
    with pytest.raises(ValidationFailed) as excinfo:
        FeatureEncoder([spec]).encode_record({"region": "X" * 80})
    [message] = excinfo.value.fields["features.region"]
    assert message == f"Unknown category {'X' * 50!r}; expected one of: {', '.join(f'R{i}' for i in range(12))}, …."


def test_a_huge_integer_is_a_field_error_not_a_crash(encoder):
    with pytest.raises(ValidationFailed) as excinfo:
        encoder.encode_record({"income": 1, "term": "36", "utilization": 10**400})
    assert set(_fields(excinfo)) == {"features.utilization"}


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_a_number_beyond_float32_is_refused_rather_than_encoded_as_infinity(encoder):
    try:
        row = encoder.encode_record({"income": 1, "term": "36", "utilization": 1e39})
    except ValidationFailed as exc:
        assert set(exc.fields) == {"features.utilization"}
    else:
        assert np.isfinite(row[0, 3]), row


# --- text frames (batches, training, monitoring) ----------------------------------------------


def test_a_text_frame_is_encoded_like_records(encoder):
    # given CSV cells as text, with NaN for empty cells, columns in another order plus an extra one
    frame = pd.DataFrame(
        {
            "term": ["36", "60", " 60"],
            "extra": ["a", "b", "c"],
            "income": ["1000", " 2500.5", "0"],
            "purpose": ["home", np.nan, "car"],
        }
    )
    # when
    matrix, errors = encoder.encode_frame(frame)
    # then
    assert errors == ["", "", ""]
    expected = np.array([[1000, 1, 0, np.nan], [2500.5, np.nan, 1, np.nan], [0, 0, 1, np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(matrix, expected)


def test_strict_frames_report_every_problem_per_row(encoder):
    frame = pd.DataFrame(
        {
            "income": ["-5", "abc", np.nan, "2000000", "10"],
            "purpose": ["car", "boat", "car", "car", "home"],
            "term": ["36", "36", "36", np.nan, "60"],
            "utilization": ["0.1", "0.2", "inf", "0.4", "0.5"],
        }
    )
    matrix, errors = encoder.encode_frame(frame)
    # then each row lists its problems in schema order
    assert errors == [
        "income: below the minimum 0",
        "income: not a number; purpose: unknown category",
        "income: required value is missing; utilization: not a number",
        "income: above the maximum 1e+06; term: required value is missing",
        "",
    ]
    assert np.isnan(matrix[1, 1]) and np.isnan(matrix[1, 0]) and np.isnan(matrix[2, 3])


def test_a_required_column_absent_from_the_frame_fails_every_row(encoder):
    matrix, errors = encoder.encode_frame(pd.DataFrame({"income": ["1", "2"]}))
    assert errors == ["term: required column is missing"] * 2
    assert np.isnan(matrix[:, 1:]).all()


def test_lenient_frames_turn_out_of_domain_cells_into_missing(encoder):
    # given what monitoring and training read: no validation, unknown values become missing
    frame = pd.DataFrame({"income": ["-5", "abc"], "purpose": ["boat", "car"], "utilization": ["0.3", "x"]})
    matrix, errors = encoder.encode_frame(frame, strict=False)
    assert errors == ["", ""]
    # then out-of-range numbers are kept (bounds are an API rule), non-numbers and unknown categories are NaN
    assert matrix[0, 0] == -5.0 and np.isnan(matrix[1, 0])
    assert np.isnan(matrix[0, 1]) and matrix[1, 1] == 0.0
    assert matrix[0, 3] == pytest.approx(0.3) and np.isnan(matrix[1, 3])


def test_frames_of_json_values_encode_numbers_given_for_categories(encoder):
    # monitoring builds frames from stored JSON inputs: term 36 arrives as an int
    frame = pd.DataFrame({"income": [1.0, 2.0], "term": [36, 60.0]}, dtype=object)
    matrix, errors = encoder.encode_frame(frame)
    assert errors == ["", ""]
    assert matrix[:, 2].tolist() == [0.0, 1.0]


def test_a_csv_cell_60_point_0_is_the_same_category_as_the_api_value_60_point_0(encoder):
    api_row = encoder.encode_record({"income": 1, "term": 60.0})
    matrix, errors = encoder.encode_frame(pd.DataFrame({"income": ["1"], "term": ["60.0"]}))
    assert errors == [""]
    assert matrix[0, 2] == api_row[0, 2]


# --- FeatureSpec --------------------------------------------------------------------------------


def test_feature_spec_round_trips_through_json():
    spec = FeatureSpec(
        name="purpose",
        type="categorical",
        categories=("car", "home"),
        min=None,
        max=None,
        missing_allowed=False,
        description="Loan purpose",
        reason_code="RC_PURPOSE",
    )
    restored = FeatureSpec.from_dict(json.loads(json.dumps(dataclasses.asdict(spec))))
    assert restored == spec
    assert restored.is_categorical and restored.categories == ("car", "home")


def test_feature_spec_defaults_for_a_minimal_dict():
    spec = FeatureSpec.from_dict({"name": "age", "type": "numeric", "categories": None, "description": None})
    assert spec == FeatureSpec(name="age", type="numeric")
    assert spec.missing_allowed is True and not spec.is_categorical
    assert spec.description == "" and spec.reason_code == ""
