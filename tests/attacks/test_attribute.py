"""Attribute inference: a predictive sensitive feature is recovered well above the baseline, an
irrelevant one only at the baseline; binning, priors, label-only targets, budgets, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from mlwarden.attacks.attribute import infer_attribute
from mlwarden.errors import InputError, QueryBudgetExceeded
from mlwarden.targets import target

pytest.importorskip("sklearn")

N_RECORDS = 1000
SENSITIVE = 4


def tabular(
    *, weight: float, skew: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, object]:
    """Records of four public features in [0, 1] and a binary sensitive feature (column 4,
    1 with probability `skew`); the label depends on feature 0 and, with `weight`, on the
    sensitive one. Returns (x, y, a logistic regression trained on all five features)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    public = rng.random((N_RECORDS, 4))
    sensitive = (rng.random(N_RECORDS) < skew).astype(float)
    logit = weight * (sensitive - 0.5) + 3.0 * (public[:, 0] - 0.5)
    y = (rng.random(N_RECORDS) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    x = np.column_stack([public, sensitive]).astype(np.float32)
    return x, y, LogisticRegression().fit(x, y)


@pytest.fixture(scope="module")
def predictive() -> tuple[np.ndarray, np.ndarray, object]:
    return tabular(weight=6.0)


def test_predictive_sensitive_feature_is_recovered_well_above_baseline(predictive):
    x, y, model = predictive
    result = infer_attribute(model, x, y, feature=SENSITIVE)

    assert result.values == (0.0, 1.0)
    assert result.n == N_RECORDS and not result.interrupted
    assert result.baseline_accuracy == pytest.approx(
        max(np.mean(x[:, SENSITIVE]), 1 - np.mean(x[:, SENSITIVE]))
    )
    assert result.advantage > 0.2
    assert result.accuracy == pytest.approx(np.mean(result.guesses == result.truth))
    assert len(result.exposed) == round(result.accuracy * N_RECORDS)
    assert result.queries == 2 * N_RECORDS


def test_irrelevant_sensitive_feature_is_recovered_only_at_baseline():
    x, y, model = tabular(weight=0.0, seed=1)
    result = infer_attribute(model, x, y, feature=SENSITIVE)

    assert abs(result.advantage) < 0.06


def test_marginal_baseline_is_the_expected_accuracy_of_sampling_the_prior(predictive):
    x, y, model = predictive
    result = infer_attribute(model, x, y, feature=SENSITIVE)

    share = float(np.mean(x[:, SENSITIVE]))
    assert result.marginal_accuracy == pytest.approx(share**2 + (1 - share) ** 2)
    assert result.prior == pytest.approx((1 - share, share))


def test_label_only_target_matches_predicted_class(predictive):
    x, y, model = predictive
    labels_only = target(model.predict, input_shape=(5,), n_classes=2, output="labels")
    result = infer_attribute(labels_only, x, y, feature=SENSITIVE)

    assert result.label_only
    assert result.advantage > 0.2
    assert labels_only.queries == 2 * N_RECORDS


def test_ties_go_to_the_value_the_prior_favours():
    x, y, _ = tabular(weight=6.0)
    constant = target(
        lambda rows: np.zeros(len(rows), dtype=np.int64),
        input_shape=(5,),
        n_classes=2,
        output="labels",
    )
    favour_one = infer_attribute(constant, x, y, feature=SENSITIVE, prior=[0.2, 0.8])
    favour_zero = infer_attribute(constant, x, y, feature=SENSITIVE, prior=[3, 1])

    assert np.all(favour_one.guesses == 1) and np.all(favour_zero.guesses == 0)
    assert favour_zero.prior == pytest.approx((0.75, 0.25))
    assert favour_one.accuracy == favour_one.baseline_accuracy
    assert favour_one.advantage == 0.0


def test_map_rule_does_not_fall_below_baseline_on_a_skewed_feature():
    x, y, model = tabular(weight=1.0, skew=0.85, seed=2)
    likelihood = infer_attribute(model, x, y, feature=SENSITIVE)
    weighted = infer_attribute(model, x, y, feature=SENSITIVE, rule="map")

    assert likelihood.advantage < 0
    assert any("rule='map'" in note for note in likelihood.notes)
    assert weighted.advantage >= 0 > likelihood.advantage


def test_continuous_feature_is_binned_into_quantile_bins(predictive):
    x, y, model = predictive
    result = infer_attribute(model, x, y, feature=0, max_bins=5)

    assert len(result.values) == 5 and list(result.values) == sorted(result.values)
    assert result.bin_edges is not None and len(result.bin_edges) == 4
    counts = np.bincount(result.truth, minlength=5)
    assert counts.min() >= 150  # quantile bins hold about a fifth each
    edges = np.array(result.bin_edges)
    assert np.array_equal(result.truth, np.searchsorted(edges, x[:, 0], side="right"))
    assert result.queries == 5 * N_RECORDS
    assert 0.0 <= result.baseline_accuracy <= 0.3


def test_given_values_map_each_record_to_the_nearest(predictive):
    x, y, model = predictive
    result = infer_attribute(model, x, y, feature=0, values=[0.25, 0.75])

    assert result.values == (0.25, 0.75) and result.bin_edges is None
    assert np.array_equal(result.truth, (x[:, 0] > 0.5).astype(np.int64))


def test_few_distinct_values_are_tried_exactly():
    x, y, model = tabular(weight=6.0)
    x = x.copy()
    x[:, 1] = np.round(x[:, 1] * 4) / 4  # five levels
    result = infer_attribute(target(model), x, y, feature=1)

    assert result.values == (0.0, 0.25, 0.5, 0.75, 1.0) and result.bin_edges is None


def test_random_tie_breaks_are_seeded():
    x, y, _ = tabular(weight=6.0)
    constant = target(
        lambda rows: np.zeros(len(rows), dtype=np.int64),
        input_shape=(5,),
        n_classes=2,
        output="labels",
    )
    runs = [
        infer_attribute(constant, x, y, feature=SENSITIVE, prior=[1, 1], seed=s).guesses
        for s in (7, 7, 8)
    ]

    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])
    assert 0.4 < runs[0].mean() < 0.6


def test_progress_reports_records(predictive):
    x, y, model = predictive
    seen: list[tuple[str, int, int]] = []
    infer_attribute(model, x[:300], y[:300], feature=SENSITIVE, progress=lambda *a: seen.append(a))

    assert seen[-1] == ("attribute inference", 300, 300)


# -- budgets ----------------------------------------------------------------------------------


def test_budget_exhausted_mid_run_gives_a_partial_result_with_a_note(predictive):
    x, y, model = predictive
    budgeted = target(model, query_budget=700)
    result = infer_attribute(budgeted, x, y, feature=SENSITIVE)

    assert result.interrupted and 0 < result.n < N_RECORDS
    assert result.queries == budgeted.queries == 2 * result.n <= 700
    assert len(result.truth) == len(result.guesses) == result.n
    assert any("stopped after" in note for note in result.notes)


def test_budget_too_small_for_one_record_is_an_error_naming_the_cost(predictive):
    x, y, model = predictive
    with pytest.raises(QueryBudgetExceeded, match="2 queries per record"):
        infer_attribute(target(model, query_budget=1), x, y, feature=SENSITIVE)


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"feature": 5}, "feature 5 does not exist"),
        ({"feature": -1}, "feature -1 does not exist"),
        ({"feature": "age"}, "column index"),
        ({"feature": 4, "values": [1.0]}, "at least two"),
        ({"feature": 4, "values": [0.0, 0.0]}, "duplicates"),
        ({"feature": 4, "values": [0.0, 2.0]}, "outside the target's input_range"),
        ({"feature": 4, "values": [0.0, float("nan")]}, "NaN"),
        ({"feature": 4, "values": ["a", "b"]}, "must be numbers"),
        ({"feature": 4, "prior": [1.0]}, "one per candidate"),
        ({"feature": 4, "prior": [-1.0, 2.0]}, "non-negative"),
        ({"feature": 4, "prior": [0.0, 0.0]}, "not all zero"),
        ({"feature": 4, "rule": "bayes"}, "rule must be"),
        ({"feature": 0, "max_bins": 1}, "max_bins"),
    ],
)
def test_bad_parameters_are_refused(predictive, options, message):
    x, y, model = predictive
    with pytest.raises(InputError, match=message):
        infer_attribute(model, x, y, **options)


def test_nan_records_are_refused(predictive):
    x, y, model = predictive
    x = x.copy()
    x[3, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        infer_attribute(model, x, y, feature=SENSITIVE)


def test_empty_records_are_refused(predictive):
    x, y, model = predictive
    with pytest.raises(InputError, match="empty"):
        infer_attribute(model, x[:0], y[:0], feature=SENSITIVE)


def test_labels_that_do_not_match_the_records_are_refused(predictive):
    x, y, model = predictive
    with pytest.raises(InputError, match="labels have shape"):
        infer_attribute(model, x, y[:10], feature=SENSITIVE)


def test_constant_feature_has_nothing_to_infer(predictive):
    x, y, model = predictive
    x = x.copy()
    x[:, 2] = 0.5
    with pytest.raises(InputError, match="single value"):
        infer_attribute(model, x, y, feature=2)
