"""Model inversion: MI-Face on the digits CNN, the query-only search on a logistic regression,
what the result measures, and every way a caller can get it wrong."""

from __future__ import annotations

import numpy as np
import pytest

from mlwarden.attacks.inversion import InversionResult, invert
from mlwarden.attacks.inversion.base import tv_penalty
from mlwarden.errors import InputError, UsageError
from mlwarden.targets import target

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (n, 8, 8) images in [0, 1] and their labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.images / 16.0).astype(np.float32), data.target.astype(np.int64)


@pytest.fixture(scope="module")
def logistic(digits: tuple[np.ndarray, np.ndarray]):  # type: ignore[no-untyped-def]
    """A logistic regression on the 64 pixels of digits (~97% training accuracy)."""
    from sklearn.linear_model import LogisticRegression

    x, y = digits
    return LogisticRegression(max_iter=200).fit(x.reshape(len(x), -1), y)


def mean_distances(result: InversionResult) -> tuple[float, float]:
    own = [r.distance_to_class_mean for r in result.reconstructions]
    other = [r.distance_to_other_means for r in result.reconstructions]
    assert all(d is not None for d in own + other)
    return float(np.mean(own)), float(np.mean(other))  # type: ignore[arg-type]


# -- MI-Face on the white-box CNN -------------------------------------------------------------


def test_mi_face_reconstructs_every_digit_the_model_recognises(digits_model, digits_target):
    result = invert(digits_target, reference=(digits_model.x_train, digits_model.y_train))

    assert result.method == "mi-face"
    assert [r.label for r in result.reconstructions] == list(range(10))
    confident = [r.recovered and r.confidence >= 0.9 for r in result.reconstructions]
    assert sum(confident) >= 8
    own, other = mean_distances(result)
    assert own < other
    assert result.identification_rate is not None and result.identification_rate >= 0.8
    assert sum(bool(r.closer_than_baseline) for r in result.reconstructions) >= 6


def test_reconstructions_are_valid_inputs_and_their_cost_is_counted(digits_model, digits_target):
    result = invert(
        digits_target, classes=[3, 7], reference=(digits_model.x_test, digits_model.y_test)
    )

    images = result.images()
    assert images.shape == (2, 1, 8, 8) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert result.queries == digits_target.queries == sum(r.queries for r in result.reconstructions)
    assert all(0 < r.steps <= 300 and r.queries == r.steps for r in result.reconstructions)
    with digits_target.unmetered():
        probs = digits_target.predict_proba(images)
    assert [r.confidence for r in result.reconstructions] == pytest.approx(
        [float(probs[0, 3]), float(probs[1, 7])]
    )


def test_without_reference_the_search_starts_mid_range_and_measures_no_distance(digits_target):
    result = invert(digits_target, classes=4, steps=5)

    assert np.all(result.start == 0.5)
    (only,) = result.reconstructions
    assert only.label == 4 and only.steps == 5
    assert only.distance_to_class_mean is None and only.closer_than_baseline is None
    assert result.identification_rate is None


def test_reference_start_is_the_class_agnostic_data_mean(digits_model, digits_target):
    x, y = digits_model.x_train, digits_model.y_train
    result = invert(digits_target, classes=[0], steps=1, reference=(x, y))

    assert np.allclose(result.start, x.mean(axis=0), atol=1e-6)
    (first,) = result.reconstructions
    assert first.nearest_record is not None and y[first.nearest_record] == 0
    class_mean = x[y == 0].mean(axis=0)
    assert first.baseline_distance == pytest.approx(
        float(np.linalg.norm(x.mean(0) - class_mean)), rel=1e-4
    )


def test_total_variation_prior_smooths_the_reconstruction(digits_target):
    rough = invert(digits_target, classes=[2, 5], tv_weight=0.0, l2_weight=0.0, steps=80)
    smooth = invert(digits_target, classes=[2, 5], tv_weight=2.0, l2_weight=0.0, steps=80)

    rough_tv, _ = tv_penalty(rough.images())
    smooth_tv, _ = tv_penalty(smooth.images())
    assert smooth_tv.sum() < rough_tv.sum()


def test_paper_cost_one_minus_probability_also_reconstructs(digits_target):
    result = invert(digits_target, cost="probability", steps=100)

    assert result.success_rate >= 0.8


def test_patience_stops_a_class_that_no_longer_improves(digits_target):
    result = invert(digits_target, classes=[1], steps=300, patience=3, tolerance=0.5)

    assert result.reconstructions[0].steps < 20


def test_progress_reports_steps(digits_target):
    seen: list[tuple[str, int, int]] = []
    invert(digits_target, classes=[1], steps=4, progress=lambda *a: seen.append(a))

    assert seen and seen[-1] == ("inversion", 4, 4)


# -- the black-box search -----------------------------------------------------------------------


def test_black_box_inversion_of_logistic_regression_within_budget(logistic, digits):
    black_box = target(logistic, input_shape=(8, 8))
    result = invert(black_box, max_queries=600, reference=digits)

    assert result.method == "black-box"
    assert result.mean_confidence > 0.5  # chance is 0.1
    assert result.success_rate >= 0.8
    assert all(r.queries <= 600 for r in result.reconstructions)
    assert result.queries == black_box.queries <= 10 * 600
    assert result.identification_rate is not None and result.identification_rate >= 0.8


def test_black_box_is_deterministic_under_a_seed(logistic):
    runs = [
        invert(target(logistic, input_shape=(8, 8)), classes=[6], max_queries=200, seed=3)
        for _ in range(2)
    ]
    other = invert(target(logistic, input_shape=(8, 8)), classes=[6], max_queries=200, seed=4)

    assert np.array_equal(runs[0].images(), runs[1].images())
    assert not np.array_equal(runs[0].images(), other.images())


def test_black_box_method_works_on_a_white_box_target_too(digits_target):
    result = invert(digits_target, classes=[0, 1], method="black-box", max_queries=400)

    assert result.method == "black-box"
    assert result.mean_confidence > 0.5


def test_rounding_to_whole_numbers_weakens_the_black_box_search(logistic, digits):
    from mlwarden.defenses.output import harden

    open_model = invert(target(logistic, input_shape=(8, 8)), max_queries=300, reference=digits)
    rounded = harden(target(logistic, input_shape=(8, 8)), decimals=0)
    defended = invert(rounded, max_queries=300, reference=digits)

    assert defended.success_rate < open_model.success_rate


# -- budgets --------------------------------------------------------------------------------------


def test_query_budget_exhausted_mid_run_returns_best_so_far_with_a_note(digits_model):
    budgeted = target(digits_model.model, input_shape=(1, 8, 8), query_budget=55)
    result = invert(budgeted, steps=300)

    assert result.interrupted
    assert any("query budget" in note for note in result.notes)
    assert len(result.reconstructions) == 10
    assert result.queries == budgeted.queries == 50  # five full steps; the sixth was refused
    assert all(0.0 <= r.confidence <= 1.0 for r in result.reconstructions)


def test_black_box_budget_exhausted_mid_run(logistic):
    budgeted = target(logistic, input_shape=(8, 8), query_budget=1000)
    result = invert(budgeted, classes=[0, 1], samples=8)

    assert result.interrupted and result.queries <= 1000
    assert any("query budget" in note for note in result.notes)


def test_ctrl_c_returns_the_best_so_far(digits_target):
    def interrupt(description: str, done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    result = invert(digits_target, classes=[1, 2], progress=interrupt)

    assert result.interrupted and any("interrupted" in note for note in result.notes)
    assert [r.steps for r in result.reconstructions] == [3, 3]


def test_max_queries_caps_each_class(digits_target):
    result = invert(digits_target, classes=[0, 9], max_queries=7)

    assert all(r.queries == 7 for r in result.reconstructions)
    assert any("max_queries=7" in note for note in result.notes)
    assert not result.interrupted


# -- what is refused ------------------------------------------------------------------------


def test_mi_face_refuses_a_black_box_target(logistic):
    with pytest.raises(UsageError, match="method='black-box'"):
        invert(target(logistic, input_shape=(8, 8)), method="mi-face")


def test_label_only_target_is_refused_with_the_reason(digits_target):
    from mlwarden.defenses.output import LabelOnly

    with pytest.raises(UsageError, match="labels only"):
        invert(LabelOnly(digits_target))


def test_hardened_white_box_target_falls_back_to_black_box(digits_target):
    from mlwarden.defenses.output import harden

    result = invert(harden(digits_target, top_k=3), classes=[8], max_queries=99)

    assert result.method == "black-box"


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        (10, "class 10 does not exist"),
        ([-1], "class -1 does not exist"),
        ([], "classes is empty"),
        (["three"], "class indices"),
        ([True], "class indices"),
    ],
)
def test_bad_classes_are_refused(digits_target, classes, message):
    with pytest.raises(InputError, match=message):
        invert(digits_target, classes)


def test_duplicate_classes_are_reconstructed_once(digits_target):
    result = invert(digits_target, [2, 2, 1], steps=2)

    assert [r.label for r in result.reconstructions] == [2, 1]


def test_nan_in_reference_is_refused(digits_model, digits_target):
    x = digits_model.x_test.copy()
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        invert(digits_target, reference=(x, digits_model.y_test))


def test_empty_reference_is_refused(digits_model, digits_target):
    with pytest.raises(InputError, match="empty"):
        invert(digits_target, reference=(digits_model.x_test[:0], digits_model.y_test[:0]))


def test_reference_that_is_not_a_pair_is_refused(digits_model, digits_target):
    with pytest.raises(InputError, match="pair"):
        invert(digits_target, reference=digits_model.x_test)  # type: ignore[arg-type]


def test_reference_missing_a_class_is_noted(digits_model, digits_target):
    keep = digits_model.y_test != 5
    result = invert(
        digits_target,
        [5, 6],
        steps=2,
        reference=(digits_model.x_test[keep], digits_model.y_test[keep]),
    )

    assert result.reconstructions[0].distance_to_class_mean is None
    assert result.reconstructions[1].distance_to_class_mean is not None
    assert any("no record of class(es) [5]" in note for note in result.notes)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "gradient"}, "method must be"),
        ({"steps": 0}, "steps must be"),
        ({"lr": -1.0}, "lr must be"),
        ({"lr": float("nan")}, "lr must be"),
        ({"tv_weight": -0.1}, "tv_weight must be"),
        ({"patience": 1.5}, "patience must be"),
        ({"cost": "hinge"}, "cost must be"),
        ({"method": "black-box", "max_queries": 10, "samples": 8}, "cannot pay for one step"),
        ({"sigma": 0}, "sigma must be"),
        ({"samples": "many", "max_queries": 100}, "samples must be"),
    ],
)
def test_bad_parameters_are_refused(digits_target, options, message):
    with pytest.raises(InputError, match=message):
        invert(digits_target, **options)
