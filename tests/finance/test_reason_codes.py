"""Unit tests of `apps.finance.reason_codes`: order, only adverse contributions, at most four
(Reg B), ties, missing values and the echoed input value, on hand-built contribution rows."""

from __future__ import annotations

import numpy as np

from apps.finance.feature_encoding import FeatureSpec
from apps.finance.reason_codes import MAX_REASONS, reasons_for_row, top_reason_indices

FEATURES = [
    FeatureSpec(name="age", type="numeric", reason_code="RC_AGE", description="Age of applicant"),
    FeatureSpec(name="income", type="numeric", reason_code="RC_INCOME", description="Income too low"),
    FeatureSpec(name="delinquencies", type="numeric", reason_code="RC_DELQ", description="Recent delinquencies"),
    FeatureSpec(name="utilization", type="numeric", reason_code="RC_UTIL", description="High utilisation"),
    FeatureSpec(name="purpose", type="categorical", categories=("car", "home"), reason_code="RC_PURPOSE"),
    FeatureSpec(name="inquiries", type="numeric", reason_code="RC_INQ", description="Many inquiries"),
]


def _reasons(contributions: list[float], inputs: dict[str, object] | None = None) -> list[dict[str, object]]:
    row = np.array([contributions], dtype=np.float64)
    order = top_reason_indices(row)[0]
    return reasons_for_row(row[0], order, FEATURES, inputs)


def test_reg_b_allows_at_most_four_reasons():
    assert MAX_REASONS == 4


def test_reasons_are_the_adverse_features_largest_first():
    # given contributions: delinquencies +0.9, utilization +0.5, income +0.2, others favourable
    contributions = [-0.3, 0.2, 0.9, 0.5, -0.1, -0.05]
    # when
    reasons = _reasons(contributions)
    # then only the three that raised the risk, in order of their push toward default
    assert [r["feature"] for r in reasons] == ["delinquencies", "utilization", "income"]
    assert [r["code"] for r in reasons] == ["RC_DELQ", "RC_UTIL", "RC_INCOME"]
    assert [r["contribution"] for r in reasons] == [0.9, 0.5, 0.2]
    assert [r["description"] for r in reasons] == ["Recent delinquencies", "High utilisation", "Income too low"]


def test_no_more_than_four_reasons_even_when_every_feature_is_adverse():
    contributions = [0.1, 0.6, 0.3, 0.5, 0.2, 0.4]
    reasons = _reasons(contributions)
    assert [r["feature"] for r in reasons] == ["income", "utilization", "inquiries", "delinquencies"]


def test_a_zero_contribution_is_not_a_reason():
    reasons = _reasons([0.0, 0.4, 0.0, -0.2, 0.0, 0.0])
    assert [r["feature"] for r in reasons] == ["income"]


def test_when_nothing_is_adverse_the_least_favourable_feature_is_the_only_reason():
    # given a decline driven by the base rate alone: every feature lowered the risk
    reasons = _reasons([-0.3, -0.2, -0.9, -0.01, -0.5, -0.4])
    # then one specific reason, the feature that helped least
    assert len(reasons) == 1
    assert reasons[0]["feature"] == "utilization"
    assert reasons[0]["contribution"] == -0.01


def test_ties_keep_schema_order_so_codes_are_deterministic():
    # given four features tied at +0.25 and one stronger
    reasons = _reasons([0.25, 0.25, 0.7, 0.25, 0.25, 0.25])
    # then the strongest first, then the tied ones in the order of the schema
    assert [r["feature"] for r in reasons] == ["delinquencies", "age", "income", "utilization"]


def test_top_reason_indices_for_several_rows_and_fewer_features_than_the_limit():
    # given two rows over three features
    contributions = np.array([[0.1, 0.3, 0.2], [0.5, -0.1, 0.5]])
    # when
    order = top_reason_indices(contributions)
    # then k = min(4, 3) columns, largest first, ties in column order
    assert order.shape == (2, 3)
    assert order.tolist() == [[1, 2, 0], [0, 2, 1]]
    assert top_reason_indices(contributions, limit=1).tolist() == [[1], [0]]


def test_contributions_are_rounded_to_six_decimals():
    reasons = _reasons([0.123456789, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert reasons[0]["contribution"] == 0.123457


def test_the_input_value_is_echoed_and_a_missing_one_is_none():
    # given an applicant who left delinquencies empty (missing is what pushed them toward default)
    inputs = {"age": 41, "income": 18_000, "purpose": "car", "utilization": 0.97}
    # when
    reasons = _reasons([0.0, 0.3, 0.6, 0.4, 0.1, 0.0], inputs)
    # then each reason carries the value as entered; the missing one as None
    assert [(r["feature"], r["value"]) for r in reasons] == [
        ("delinquencies", None),
        ("utilization", 0.97),
        ("income", 18_000),
        ("purpose", "car"),
    ]


def test_without_inputs_no_value_key_is_given():
    reasons = _reasons([0.0, 0.3, 0.0, 0.0, 0.0, 0.0])
    assert reasons == [{"code": "RC_INCOME", "feature": "income", "description": "Income too low", "contribution": 0.3}]


def test_a_feature_without_description_gets_a_generic_text():
    reasons = _reasons([0.0, 0.0, 0.0, 0.0, 0.8, 0.0], {"purpose": "home"})
    assert reasons == [
        {
            "code": "RC_PURPOSE",
            "feature": "purpose",
            "description": "Value of purpose",
            "contribution": 0.8,
            "value": "home",
        }
    ]
