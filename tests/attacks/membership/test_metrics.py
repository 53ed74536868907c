"""Membership metrics against hand-computed cases and independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlwarden.attacks.membership.metrics import (
    advantage,
    auc,
    clopper_pearson,
    epsilon_lower_bound,
    evaluate,
    exposed_records,
    roc_curve,
    tpr_at_fpr,
)
from mlwarden.errors import InputError

LEVELS = (0.01, 0.001)


def outcome(scores: np.ndarray, is_member: np.ndarray, **options: object):  # type: ignore[no-untyped-def]
    settings = {"fpr_levels": LEVELS, "confidence": 0.95, "delta": 0.0, "n_exposed": 5}
    settings.update(options)
    return evaluate("test", "Test", scores, is_member, **settings)  # type: ignore[arg-type]


def separated(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Members score 1..n above every non-member (distinct scores)."""
    scores = np.r_[np.arange(n) + n, np.arange(n)].astype(float)
    return scores, np.r_[np.ones(n, bool), np.zeros(n, bool)]


def random_scores(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random(n), rng.random(n) < 0.5


def test_perfect_separation_has_auc_one_and_full_tpr_at_the_lowest_fpr() -> None:
    result = outcome(*separated(1000))
    assert result.auc == 1.0
    assert result.tpr_at_fpr == {0.01: 1.0, 0.001: 1.0}
    assert result.advantage == 1.0


def test_reversed_scores_have_auc_zero_and_no_advantage() -> None:
    scores, members = separated(50)
    result = outcome(-scores, members)
    assert result.auc == 0.0
    assert result.tpr_at_fpr[0.01] == 0.0
    assert result.advantage == 0.0
    assert result.epsilon.lower == 0.0  # scores mean "higher = member"; nothing is flipped


def test_random_scores_have_auc_near_one_half() -> None:
    result = outcome(*random_scores(20_000))
    assert abs(result.auc - 0.5) < 0.02
    assert result.advantage < 0.03


def test_auc_equals_the_rank_statistic_with_ties() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, 300).astype(float)  # many ties
    members = rng.random(300) < 0.4
    pos, neg = scores[members], scores[~members]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert auc(*roc_curve(scores, members)[:2]) == pytest.approx(wins / (len(pos) * len(neg)))


def test_roc_matches_scikit_learn_with_ties() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    scores = rng.integers(0, 20, 500).astype(float)
    members = rng.random(500) < 0.3
    fpr, tpr, thresholds = roc_curve(scores, members)
    ref_fpr, ref_tpr, ref_thresholds = metrics.roc_curve(members, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    np.testing.assert_array_equal(thresholds[1:], ref_thresholds[1:])
    assert thresholds[0] == math.inf


def test_a_threshold_never_splits_tied_scores() -> None:
    # one member and one non-member tie at the top: no threshold flags only the member
    scores = np.array([1.0, 1.0, 0.0, 0.0])
    members = np.array([True, False, True, False])
    fpr, tpr, thresholds = roc_curve(scores, members)
    np.testing.assert_array_equal(fpr, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(tpr, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(thresholds, [math.inf, 1.0, 0.0])
    assert tpr_at_fpr(fpr, tpr, 0.4) == 0.0
    assert tpr_at_fpr(fpr, tpr, 0.5) == 0.5


def test_all_equal_scores_carry_no_information() -> None:
    members = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    result = outcome(np.full(200, 0.7), members)
    np.testing.assert_array_equal(result.fpr, [0.0, 1.0])
    np.testing.assert_array_equal(result.tpr, [0.0, 1.0])
    assert result.auc == 0.5
    assert result.tpr_at_fpr == {0.01: 0.0, 0.001: 0.0}
    assert result.advantage == 0.0
    assert result.epsilon.lower == 0.0
    assert all(r.flagged_at_fpr is None for r in result.exposed)


def test_tpr_at_fpr_takes_the_best_point_at_or_below_the_level_without_interpolating() -> None:
    fpr = np.array([0.0, 0.0, 0.005, 0.02, 1.0])
    tpr = np.array([0.0, 0.1, 0.3, 0.9, 1.0])
    assert tpr_at_fpr(fpr, tpr, 0.001) == 0.1
    assert tpr_at_fpr(fpr, tpr, 0.01) == 0.3  # interpolating toward (0.02, 0.9) would say 0.5
    assert tpr_at_fpr(fpr, tpr, 0.02) == 0.9
    assert advantage(fpr, tpr) == pytest.approx(0.88)


def test_tpr_at_an_fpr_level_counts_false_positives_exactly() -> None:
    # 1000 non-members: 0.1% FPR allows exactly one false positive (the 4), so the member at 1,
    # below the second non-member at 2, is out of reach; 1% FPR allows ten
    scores = np.r_[[5.0, 3.0, 1.0], [4.0, 2.0], np.zeros(998)]
    members = np.r_[np.ones(3, bool), np.zeros(1000, bool)]
    result = outcome(scores, members)
    assert result.tpr_at_fpr[0.001] == pytest.approx(2 / 3)
    assert result.tpr_at_fpr[0.01] == 1.0


def test_epsilon_bound_is_zero_for_random_scores() -> None:
    for seed in range(5):
        bound = epsilon_lower_bound(*random_scores(5000, seed), confidence=0.95, delta=0.0)
        assert bound.lower == 0.0
        assert bound.lower <= bound.value <= bound.upper


def test_epsilon_bound_is_large_for_perfect_separation() -> None:
    bound = epsilon_lower_bound(*separated(1000), confidence=0.95, delta=0.0)
    assert bound.lower > 4.0  # e^4 ~ 55 times more likely to flag a member
    assert bound.upper == math.inf
    assert bound.lower <= bound.value < math.inf


def test_epsilon_bound_matches_the_closed_form_for_one_threshold() -> None:
    # tied perfect separation: the only informative threshold has no error on 100 + 100 records;
    # Clopper-Pearson's upper end for 0 of 100 at 95% is 1 - 0.025^(1/100)
    members = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    bound = epsilon_lower_bound(members.astype(float), members, confidence=0.95, delta=0.0)
    high = 1.0 - 0.025 ** (1 / 100)
    assert bound.lower == pytest.approx(math.log((1.0 - high) / high))
    assert bound.value == pytest.approx(math.log((1.0 - 0.5 / 101) / (0.5 / 101)))


def test_epsilon_bound_weakens_as_confidence_or_delta_grow() -> None:
    scores, members = separated(300)
    lowers = [
        epsilon_lower_bound(scores, members, confidence=c, delta=0.0).lower
        for c in (0.5, 0.9, 0.99, 0.999)
    ]
    assert lowers == sorted(lowers, reverse=True) and lowers[0] > lowers[-1]
    assert (
        epsilon_lower_bound(scores, members, confidence=0.95, delta=0.1).lower
        < epsilon_lower_bound(scores, members, confidence=0.95, delta=0.0).lower
    )


def test_clopper_pearson_known_values_and_monotone_in_confidence() -> None:
    low, high = clopper_pearson(np.array([0, 10]), 10, 0.95)
    assert low[0] == 0.0 and high[1] == 1.0
    assert high[0] == pytest.approx(1 - 0.025 ** (1 / 10))
    assert low[1] == pytest.approx(0.025 ** (1 / 10))
    counts = np.arange(0, 51)
    previous_low, previous_high = clopper_pearson(counts, 50, 0.5)
    for level in (0.8, 0.95, 0.999):
        low, high = clopper_pearson(counts, 50, level)
        assert np.all(low <= previous_low) and np.all(high >= previous_high)
        assert np.all(low <= counts / 50) and np.all(counts / 50 <= high)
        previous_low, previous_high = low, high


def test_exposed_records_are_the_top_members_with_the_level_that_flags_them() -> None:
    non_members = np.linspace(0.0, 0.95, 1000)
    scores = np.r_[[0.9, 0.5, 0.99, 0.99], non_members]
    members = np.r_[np.ones(4, bool), np.zeros(1000, bool)]
    records = exposed_records(scores, members, n_exposed=3)
    assert [(r.index, r.rank) for r in records] == [(2, 1), (3, 2), (0, 3)]  # ties: index order
    assert [r.flagged_at_fpr for r in records] == [0.001, 0.001, 0.1]
    assert exposed_records(scores, members, n_exposed=10)[-1].flagged_at_fpr is None
    assert exposed_records(scores, members, n_exposed=0) == []


def test_evaluate_is_deterministic_and_independent_of_record_order() -> None:
    scores, members = random_scores(2000, seed=7)
    scores = np.round(scores, 2)  # ties
    first = outcome(scores, members)
    again = outcome(scores.copy(), members.copy())
    order = np.random.default_rng(1).permutation(len(scores))
    shuffled = outcome(scores[order], members[order])
    assert (first.auc, first.tpr_at_fpr, first.epsilon) == (
        again.auc,
        again.tpr_at_fpr,
        again.epsilon,
    )
    assert shuffled.auc == pytest.approx(first.auc)
    assert shuffled.tpr_at_fpr == first.tpr_at_fpr
    assert shuffled.advantage == pytest.approx(first.advantage)
    assert shuffled.epsilon.lower == pytest.approx(first.epsilon.lower)


@pytest.mark.parametrize(
    ("scores", "members", "message"),
    [
        (np.array([0.1, np.nan]), np.array([True, False]), "NaN"),
        (np.array([0.1, 0.2]), np.array([True, False, True]), "one truth value per score"),
        (np.array([0.1, 0.2]), np.array([True, True]), "at least one member and one non-member"),
        (np.array([[0.1, 0.2]]), np.array([[True, False]]), "one number per record"),
        (np.array([0.1, 0.2]), np.array([0.5, 1.0]), "booleans"),
        (np.array(["a", "b"]), np.array([True, False]), "numbers"),
    ],
)
def test_bad_scores_or_truth_give_a_clear_error(
    scores: np.ndarray, members: np.ndarray, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        outcome(scores, members)


def test_truth_as_zero_and_one_is_accepted() -> None:
    scores, members = separated(10)
    assert outcome(scores, members.astype(int)).auc == 1.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fpr_levels": (0.0,)}, "fpr_levels"),
        ({"fpr_levels": (1.5,)}, "fpr_levels"),
        ({"confidence": 1.0}, "confidence"),
        ({"delta": 1.0}, "delta"),
        ({"n_exposed": -1}, "n_exposed"),
    ],
)
def test_bad_settings_give_a_clear_error(options: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        outcome(*separated(10), **options)


def test_curve_functions_reject_malformed_curves() -> None:
    with pytest.raises(InputError, match="non-decreasing"):
        auc(np.array([0.0, 0.5, 0.2]), np.array([0.0, 0.5, 1.0]))
    with pytest.raises(InputError, match=">= 2 points"):
        tpr_at_fpr(np.array([0.0]), np.array([0.0]), 0.1)
    with pytest.raises(InputError, match="FPR level"):
        tpr_at_fpr(np.array([0.0, 1.0]), np.array([0.0, 1.0]), 2.0)
