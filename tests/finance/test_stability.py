"""Unit tests of `apps.finance.stability`: PSI/CSI on hand-computed examples, the bands, decile
baselines and the categorical baseline. Expected values are worked by hand or with scipy's
relative entropy (PSI = KL(a || e) + KL(e || a)), never with the module itself."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import entropy

from apps.finance.feature_encoding import FeatureEncoder, FeatureSpec
from apps.finance.stability import (
    EPSILON,
    band,
    categorical_baseline,
    column_index,
    numeric_baseline,
    numeric_distribution,
    stability_index,
)


def test_psi_of_a_textbook_three_bin_example():
    # given expected 20/30/50 % and actual 30/30/40 %
    expected, actual = np.array([0.2, 0.3, 0.5]), np.array([0.3, 0.3, 0.4])
    # when
    psi = stability_index(expected, actual)
    # then PSI = (0.3-0.2) ln(0.3/0.2) + 0 + (0.4-0.5) ln(0.4/0.5) = 0.1*0.405465 + 0.1*0.223144
    assert psi == pytest.approx(0.0628609, abs=1e-6)
    assert psi == pytest.approx(entropy(actual, expected) + entropy(expected, actual), rel=1e-12)


def test_psi_of_a_ten_bin_example_matches_symmetric_relative_entropy():
    # given a population that shifted towards the upper deciles
    expected = np.full(10, 0.1)
    actual = np.array([0.05, 0.05, 0.06, 0.08, 0.1, 0.1, 0.12, 0.14, 0.15, 0.15])
    # when
    psi = stability_index(expected, actual)
    # then
    by_hand = sum((a - e) * math.log(a / e) for a, e in zip(actual, expected, strict=True))
    assert psi == pytest.approx(by_hand, rel=1e-12)
    assert psi == pytest.approx(entropy(actual, expected) + entropy(expected, actual), rel=1e-12)


def test_psi_accepts_counts_as_well_as_shares_and_is_symmetric():
    # counts 20/30/50 vs 60/60/80 are the shares of the textbook example
    psi = stability_index(np.array([20, 30, 50]), np.array([60, 60, 80]))
    assert psi == pytest.approx(0.0628609, abs=1e-6)
    assert stability_index(np.array([60, 60, 80]), np.array([20, 30, 50])) == pytest.approx(psi, rel=1e-12)


def test_identical_distributions_have_zero_psi():
    shares = np.array([0.05, 0.15, 0.3, 0.5])
    assert stability_index(shares, shares) == 0.0


def test_an_empty_bin_is_floored_so_the_index_stays_finite():
    # given a bin the baseline never saw, which now holds 10 % of applicants
    expected = np.array([0.5, 0.5, 0.0])
    actual = np.array([0.45, 0.45, 0.1])
    # when
    psi = stability_index(expected, actual)
    # then the empty bin counts as EPSILON (1e-4), renormalised: finite, and firmly "act"
    floored = np.array([0.5, 0.5, 1e-4]) / 1.0001
    by_hand = sum((a - e) * math.log(a / e) for a, e in zip(actual, floored, strict=True))
    assert EPSILON == 1e-4
    assert math.isfinite(psi)
    assert psi == pytest.approx(by_hand, rel=1e-9)
    assert band(psi) == "act"


def test_an_actual_window_with_no_rows_does_not_produce_nan():
    psi = stability_index(np.array([0.5, 0.5]), np.array([0.0, 0.0]))
    assert psi == pytest.approx(0.0, abs=1e-12)  # both floored to the same shape


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "insufficient_data"),
        (0.0, "stable"),
        (0.0999, "stable"),
        (0.10, "watch"),
        (0.25, "watch"),
        (0.2501, "act"),
        (3.0, "act"),
    ],
)
def test_bands_follow_the_customary_cutoffs(value, expected):
    assert band(value) == expected


def test_numeric_baseline_cuts_deciles_and_keeps_a_missing_bin():
    # given 1..10 plus two missing values
    values = np.array([*range(1, 11), np.nan, np.nan], dtype=np.float64)
    # when
    baseline = numeric_baseline(values)
    # then the nine inner decile edges of 1..10 (linear interpolation: 1 + q*9) are 1.9, 2.8, ... 9.1
    assert baseline["kind"] == "numeric"
    assert baseline["edges"] == pytest.approx([1.9, 2.8, 3.7, 4.6, 5.5, 6.4, 7.3, 8.2, 9.1])
    # and each of the ten bins holds one value of twelve rows, the missing bin two
    assert baseline["proportions"] == [round(1 / 12, 6)] * 10
    assert baseline["missing"] == round(2 / 12, 6)


def test_numeric_bins_are_right_closed():
    # given edges 1 and 2: bins (-inf, 1], (1, 2], (2, inf)
    values = np.array([0.5, 1.0, 1.5, 2.0, 2.5, np.nan])
    # when
    shares, missing = numeric_distribution(values, [1.0, 2.0])
    # then a value equal to an edge falls in the bin that edge closes
    assert shares.tolist() == pytest.approx([2 / 6, 2 / 6, 1 / 6])
    assert missing == pytest.approx(1 / 6)


def test_numeric_baseline_of_a_column_with_repeated_values_has_no_duplicate_edges():
    values = np.array([0.0] * 80 + [1.0] * 10 + [5.0] * 10)
    baseline = numeric_baseline(values)
    assert baseline["edges"] == sorted(set(baseline["edges"]))
    assert sum(baseline["proportions"]) == pytest.approx(1.0)
    assert len(baseline["proportions"]) == len(baseline["edges"]) + 1


def test_the_same_population_scores_zero_against_its_own_baseline():
    # given a training column with missing values
    rng = np.random.default_rng(0)
    values = rng.lognormal(size=2_000)
    values[rng.random(2_000) < 0.1] = np.nan
    baseline = numeric_baseline(values)
    # when the same values come back
    csi = column_index(baseline, values)
    # then (only the 6-decimal rounding of stored shares separates them)
    assert csi == pytest.approx(0.0, abs=1e-8)
    assert band(csi) == "stable"


def test_a_shifted_numeric_column_has_the_hand_computed_csi():
    # given a baseline of 1..10 (ten bins of 10 %, no missing)
    baseline = numeric_baseline(np.arange(1, 11, dtype=np.float64))
    # when the new window is 5 in the lowest bin, 5 missing, and nothing else
    actual = np.array([1.0] * 5 + [np.nan] * 5)
    csi = column_index(baseline, actual)
    # then bins: expected 0.1 x 10 + missing eps; actual 0.5, nine eps, missing 0.5 (all renormalised)
    e = np.array([0.1] * 10 + [EPSILON])
    a = np.array([0.5] + [EPSILON] * 9 + [0.5])
    e, a = e / e.sum(), a / a.sum()
    assert csi == pytest.approx(float(np.sum((a - e) * np.log(a / e))), rel=1e-6)
    assert band(csi) == "act"


def test_categorical_baseline_counts_each_category_and_missing():
    # given codes of a three-category feature (0, 1, 2) and one missing
    codes = np.array([0, 0, 1, 2, 2, 2, np.nan, 0], dtype=np.float64)
    # when
    baseline = categorical_baseline(codes, 3)
    # then
    assert baseline == {"kind": "categorical", "proportions": [0.375, 0.125, 0.375], "missing": 0.125}


def test_a_category_absent_from_training_data_is_an_empty_bin():
    # given a schema with four categories, the last never seen in training
    baseline = categorical_baseline(np.array([0, 1, 2, 0], dtype=np.float64), 4)
    assert baseline["proportions"] == [0.5, 0.25, 0.25, 0.0]
    # when it shows up in 25 % of new applications
    csi = column_index(baseline, np.array([0, 1, 2, 3], dtype=np.float64))
    # then it contributes as a floored bin: large and finite
    e = np.array([0.5, 0.25, 0.25, EPSILON, EPSILON])
    a = np.array([0.25, 0.25, 0.25, 0.25, EPSILON])
    e, a = e / e.sum(), a / a.sum()
    assert csi == pytest.approx(float(np.sum((a - e) * np.log(a / e))), rel=1e-6)
    assert band(csi) == "act"


def test_categories_unseen_by_the_schema_count_as_missing_after_encoding():
    # given a categorical feature encoded the way monitoring does (strict=False: unknown -> missing)
    spec = FeatureSpec(name="purpose", type="categorical", categories=("car", "home"))
    encoder = FeatureEncoder([spec])
    train, _ = encoder.encode_frame(pd.DataFrame({"purpose": ["car", "home"] * 50}), strict=False)
    baseline = categorical_baseline(train[:, 0].astype(np.float64), 2)
    # when half of the new window is a category the model never saw
    window, _ = encoder.encode_frame(pd.DataFrame({"purpose": ["car", "boat"] * 50}), strict=False)
    csi = column_index(baseline, window[:, 0].astype(np.float64))
    # then it lands in the missing bin: actual car 0.5 / home 0 / missing 0.5 vs expected 0.5 / 0.5 / 0
    e = np.array([0.5, 0.5, EPSILON]) / (1 + EPSILON)
    a = np.array([0.5, EPSILON, 0.5]) / (1 + EPSILON)
    assert csi == pytest.approx(float(np.sum((a - e) * np.log(a / e))), rel=1e-6)
    assert band(csi) == "act"


def test_codes_outside_the_baseline_categories_do_not_vanish():
    baseline = categorical_baseline(np.array([0, 1] * 50, dtype=np.float64), 2)
    csi = column_index(baseline, np.array([0, 1, 5, 5] * 25, dtype=np.float64))
    assert band(csi) == "act"


def test_an_all_missing_column_is_stable_against_an_all_missing_baseline():
    values = np.full(50, np.nan)
    assert column_index(numeric_baseline(values), values) == pytest.approx(0.0, abs=1e-6)
