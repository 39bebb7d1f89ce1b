"""Unit tests of `apps.finance.scorecard`: points-to-double-the-odds scaling, the three-way policy
and probabilities. Expected values are worked out by hand (see each test's comment), not with
the module."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from apps.finance.scorecard import PolicySnapshot, probabilities

# 600 points at 50:1 good:bad, 20 points to double the odds:
#   factor = 20 / ln 2 = 28.853900817779268
#   offset = 600 - factor * ln 50 = 600 - 28.8539008 * 3.9120230054 = 487.1228762...
FACTOR = 28.853900817779268
OFFSET = 487.1228762045055


def _log_odds_default_for_good_odds(good_to_bad: float) -> float:
    """An applicant with good:bad odds of `good_to_bad` has log-odds of default -ln(good_to_bad)."""
    return -math.log(good_to_bad)


def test_default_scaling_constants_are_the_textbook_ones():
    # given the default policy
    policy = PolicySnapshot()
    # then factor = PDO / ln 2 and offset = 600 - factor * ln 50
    assert policy.factor == pytest.approx(FACTOR, rel=1e-12)
    assert policy.offset == pytest.approx(OFFSET, rel=1e-12)


@pytest.mark.parametrize(
    ("good_to_bad", "expected_score"),
    [
        (50.0, 600),  # the base odds score the base points
        (100.0, 620),  # twice the odds: + PDO
        (200.0, 640),
        (25.0, 580),  # half the odds: - PDO
        (12.5, 560),
        (1.0, 487),  # even odds (PD 50%): the offset, 487.12 rounded
    ],
)
def test_doubling_the_odds_adds_pdo_points(good_to_bad, expected_score):
    # given applicants with known good:bad odds
    log_odds = np.array([_log_odds_default_for_good_odds(good_to_bad)])
    # when scored under the default policy
    score = PolicySnapshot().scores(log_odds)
    # then
    assert score.dtype == np.int64
    assert score.tolist() == [expected_score]


def test_scores_round_half_up_to_the_nearest_point():
    # given log-odds whose exact scores are just below / above the half points (score = offset - factor * m)
    policy = PolicySnapshot()
    exact = np.array([600.49, 600.51, 599.51, 599.49, -3.49, -3.51])
    log_odds = (OFFSET - exact) / FACTOR
    # when
    scores = policy.scores(log_odds)
    # then each rounds to the nearest integer (also for negative scores)
    assert scores.tolist() == [600, 601, 600, 599, -3, -4]


def test_a_custom_scaling_moves_base_points_and_pdo():
    # given 700 points at 20:1 with 40 points to double the odds
    policy = PolicySnapshot(points_at_base_odds=700, base_odds=20.0, pdo=40.0)
    odds = np.array([20.0, 40.0, 10.0, 80.0])
    # when
    scores = policy.scores(-np.log(odds))
    # then
    assert scores.tolist() == [700, 740, 660, 780]


def test_higher_risk_means_lower_score_everywhere_in_a_realistic_range():
    log_odds = np.linspace(-12.0, 12.0, 481)
    scores = PolicySnapshot().scores(log_odds)
    assert np.all(np.diff(scores) <= 0)
    assert scores[0] > scores[-1]


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (700, "approve"),
        (570, "approve"),  # approve_min_score is inclusive
        (569, "review"),
        (530, "review"),  # decline_below_score is exclusive: 530 is not below 530
        (529, "decline"),
        (0, "decline"),
        (-5, "decline"),
    ],
)
def test_decisions_at_and_around_the_thresholds(score, expected):
    # given the default cut-offs (approve >= 570, decline < 530)
    policy = PolicySnapshot()
    # when / then
    assert policy.decisions(np.array([score])).tolist() == [expected]


def test_decisions_with_equal_cutoffs_have_no_review_band():
    policy = PolicySnapshot(approve_min_score=550, decline_below_score=550)
    assert policy.decisions(np.array([549, 550, 551])).tolist() == ["decline", "approve", "approve"]


def test_decisions_keep_the_input_order_for_many_rows():
    policy = PolicySnapshot()
    scores = np.array([600, 500, 550, 570, 529, 530])
    assert policy.decisions(scores).tolist() == ["approve", "decline", "review", "approve", "decline", "review"]


def test_log_odds_at_score_inverts_the_scaling():
    # given the default scaling: 600 points is 50:1, 620 is 100:1
    policy = PolicySnapshot()
    # then the log-odds of default at those scores are -ln 50 and -ln 100
    assert policy.log_odds_at_score(600) == pytest.approx(-math.log(50), abs=1e-12)
    assert policy.log_odds_at_score(620) == pytest.approx(-math.log(100), abs=1e-12)
    # and the PD at 600 is 1/51, at 620 1/101
    assert policy.pd_at_score(600) == pytest.approx(1 / 51, rel=1e-12)
    assert policy.pd_at_score(620) == pytest.approx(1 / 101, rel=1e-12)
    assert policy.pd_at_score(OFFSET) == pytest.approx(0.5, abs=1e-12)


def test_pd_at_score_is_a_tiny_probability_for_a_very_high_score():
    # given a PDO so small that 720 points is astronomically safe (log-odds = (offset - 700) / factor)
    policy = PolicySnapshot(pdo=0.1)
    assert policy.log_odds_at_score(720) < -710
    # when / then the PD is ~0, not an exception
    assert policy.pd_at_score(720) == pytest.approx(0.0, abs=1e-300)


@pytest.mark.parametrize(
    ("log_odds", "expected_pd"),
    [(0.0, 0.5), (math.log(3), 0.75), (-math.log(3), 0.25), (-math.log(50), 1 / 51), (math.log(99), 0.99)],
)
def test_probabilities_are_the_logistic_of_the_log_odds(log_odds, expected_pd):
    pd_ = probabilities(np.array([log_odds]))
    assert pd_.dtype == np.float64
    assert pd_[0] == pytest.approx(expected_pd, rel=1e-12)


def test_probabilities_saturate_at_extreme_log_odds_without_nan():
    # given log-odds far beyond what float64 exp can hold
    with np.errstate(over="ignore"):
        pd_ = probabilities(np.array([-1000.0, -40.0, 40.0, 1000.0]))
    # then PDs stay in [0, 1], ordered, and never NaN
    assert not np.isnan(pd_).any()
    assert pd_[0] == 0.0 and pd_[-1] == 1.0
    assert 0.0 < pd_[1] < 1e-17 and pd_[2] == pytest.approx(1.0)


def test_probabilities_of_float32_input_are_computed_in_float64():
    # float32 logistic of 20 would round to exactly 1.0; float64 keeps 1 - 2.06e-9
    pd_ = probabilities(np.array([20.0], dtype=np.float32))
    assert pd_.dtype == np.float64
    assert 1.0 - pd_[0] == pytest.approx(math.exp(-20) / (1 + math.exp(-20)), rel=1e-6)


def test_scores_of_moderately_extreme_log_odds_stay_ordered():
    # given a near-certain default and a near-certain repayment (|log-odds| = 50, far outside data)
    scores = PolicySnapshot().scores(np.array([50.0, -50.0]))
    # then offset -/+ 50 * factor, rounded: 487.12 - 1442.70 = -955.57 and 487.12 + 1442.70 = 1929.82
    assert scores.tolist() == [-956, 1930]


def test_scores_of_infinite_log_odds_keep_their_direction():
    with np.errstate(invalid="ignore"):
        scores = PolicySnapshot().scores(np.array([-np.inf, -1e300, 1e300, np.inf]))
    policy = PolicySnapshot()
    assert policy.decisions(scores).tolist() == ["approve", "approve", "decline", "decline"]


def test_policy_snapshot_round_trips_through_json():
    # given a non-default policy
    policy = PolicySnapshot(
        points_at_base_odds=650, base_odds=30.0, pdo=25.0, approve_min_score=610, decline_below_score=540
    )
    # when stored as JSON on a decision and read back
    stored = json.loads(json.dumps(policy.as_dict()))
    restored = PolicySnapshot.from_dict(stored)
    # then it is the same policy, with the same types
    assert restored == policy
    assert stored == {
        "points_at_base_odds": 650,
        "base_odds": 30.0,
        "pdo": 25.0,
        "approve_min_score": 610,
        "decline_below_score": 540,
    }


def test_policy_snapshot_from_dict_coerces_types():
    # given a snapshot whose numbers came back as strings / floats (e.g. from a form or older JSON)
    restored = PolicySnapshot.from_dict(
        {
            "points_at_base_odds": "600",
            "base_odds": "50",
            "pdo": 20,
            "approve_min_score": 570.0,
            "decline_below_score": 530,
        }
    )
    # then
    assert restored == PolicySnapshot()
    assert isinstance(restored.points_at_base_odds, int) and isinstance(restored.base_odds, float)


def test_policy_snapshot_from_dict_requires_every_field():
    with pytest.raises(KeyError):
        PolicySnapshot.from_dict({"points_at_base_odds": 600})
