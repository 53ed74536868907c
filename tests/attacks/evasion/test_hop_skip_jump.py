"""HopSkipJump: decision-based minimum-norm search from predicted labels alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from mlwarden.attacks.evasion import get_attack, hopskipjump
from mlwarden.errors import InputError
from mlwarden.targets.base import Target
from mlwarden.targets.torch import TorchTarget

N = 32


class LabelsOnly(Target):
    """A decision-only target: it answers one-hot rows, never probabilities."""

    def __init__(self, model: Any, input_shape: tuple[int, ...], **options: Any) -> None:
        super().__init__(n_classes=10, input_shape=input_shape, output="labels", **options)
        self.model = model

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            labels = self.model(torch.from_numpy(x)).argmax(dim=1).numpy()
        return np.eye(10, dtype=np.float32)[labels]


@pytest.fixture
def digits(digits_model: Any) -> tuple[np.ndarray, np.ndarray]:
    return digits_model.x_test[:N], digits_model.y_test[:N]


def _l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    diff = (a - b).reshape(len(a), -1).astype(np.float64)
    return np.asarray(np.sqrt((diff**2).sum(axis=1)))


def test_hopskipjump_is_registered_as_minimum_norm_black_box() -> None:
    spec, fn = get_attack("hopskipjump")
    assert fn is hopskipjump
    assert not spec.white_box
    assert spec.minimum_norm


def test_hopskipjump_median_l2_shrinks_with_more_queries(
    digits_model: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    medians = []
    for budget in (100, 600):
        target = LabelsOnly(digits_model.model, digits_model.input_shape)
        result = hopskipjump(target, x, y, max_queries=budget)
        assert result.success.all()
        # every success is real: the model itself misreads each returned input
        with torch.no_grad():
            labels = digits_model.model(torch.from_numpy(result.x_adv)).argmax(dim=1).numpy()
        assert (labels != y).all()
        medians.append(result.median_norm)
    assert medians[1] < 0.85 * medians[0]


def test_hopskipjump_never_exceeds_its_query_budget_per_sample(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = hopskipjump(digits_target, x, y, max_queries=150)
    assert 100 * len(x) < result.queries <= 150 * len(x)


def test_hopskipjump_norms_are_the_true_perturbation_sizes(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = hopskipjump(digits_target, x, y, max_queries=200)
    np.testing.assert_allclose(result.norms[result.success], _l2(result.x_adv, x)[result.success])
    assert result.threat.eps is None
    assert result.n_projected == 0


def test_hopskipjump_linf_gives_robust_accuracy_at_every_eps(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = hopskipjump(digits_target, x, y, norm="linf", max_queries=300)
    minimal = result.minimal_norms()
    assert np.isfinite(minimal).all()
    linf = np.abs(result.x_adv - x).reshape(len(x), -1).max(axis=1)
    np.testing.assert_allclose(
        minimal[result.success & (result.clean_predictions == y)],
        linf[result.success & (result.clean_predictions == y)],
    )
    assert result.robust_accuracy_at(float(minimal.max())) == 0.0
    assert result.robust_accuracy_at(0.0) == result.clean_accuracy


def test_hopskipjump_with_eps_stops_each_sample_once_inside(
    digits_target: TorchTarget, digits_model: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    bounded = hopskipjump(digits_target, x, y, eps=3.0, max_queries=600)
    assert bounded.success.all()
    assert bounded.norms.max() <= 3.0 * (1 + 1e-5)
    fresh = TorchTarget(digits_model.model, input_shape=(1, 8, 8))
    unbounded = hopskipjump(fresh, x, y, max_queries=600)
    assert bounded.queries < unbounded.queries / 3


def test_hopskipjump_targeted_starts_from_samples_of_the_target_class(
    digits_target: TorchTarget, digits_model: Any
) -> None:
    x, y = digits_model.x_test, digits_model.y_test
    keep = y != 0
    x, y = x[keep][:30], y[keep][:30]
    goal = np.zeros(len(y), dtype=np.int64)
    starts = digits_model.x_test[digits_model.y_test == 0][: len(y)]
    result = hopskipjump(digits_target, x, y, y_target=goal, x_init=starts, max_queries=300)
    assert result.success.all()
    assert (result.predictions == 0).all()
    # the walk pulled each point far closer than the starting image it came from
    assert np.median(result.norms) < 0.6 * np.median(_l2(starts, x))


def test_hopskipjump_starts_from_other_samples_of_the_batch(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = hopskipjump(digits_target, x, y, init_tries=0, max_queries=100)
    assert result.success.all()


def test_hopskipjump_reports_progress_in_iterations(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    seen: list[tuple[int, int]] = []
    x, y = digits
    hopskipjump(digits_target, x, y, steps=3, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_hopskipjump_fails_samples_it_cannot_start(
    digits_target: TorchTarget, digits_model: Any
) -> None:
    x, y = digits_model.x_test, digits_model.y_test
    keep = (y != 0) & (digits_target.predict(x) != 0)
    x, y = x[keep][:10], y[keep][:10]
    goal = np.zeros(len(y), dtype=np.int64)
    result = hopskipjump(digits_target, x, y, y_target=goal, init_tries=0, max_queries=100)
    assert not result.success.any()
    np.testing.assert_array_equal(result.x_adv, x)
    assert result.queries == 0


def test_hopskipjump_budget_interruption_returns_verified_partial_results(
    digits_model: Any, digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    target = LabelsOnly(digits_model.model, digits_model.input_shape, query_budget=60 * N)
    result = hopskipjump(target, x, y, max_queries=1000)
    assert result.interrupted
    assert result.success.all()
    assert (digits_target.predict(result.x_adv) != y).all()


def test_hopskipjump_is_deterministic_under_a_seed(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits[0][:8], digits[1][:8]
    first = hopskipjump(digits_target, x, y, max_queries=150, seed=1)
    again = hopskipjump(digits_target, x, y, max_queries=150, seed=1)
    other = hopskipjump(digits_target, x, y, max_queries=150, seed=2)
    np.testing.assert_array_equal(first.x_adv, again.x_adv)
    assert not np.array_equal(first.x_adv, other.x_adv)


def test_hopskipjump_attacks_flat_inputs(cancer_model: Any, cancer_target: TorchTarget) -> None:
    x, y = cancer_model.x_test[:40], cancer_model.y_test[:40]
    result = hopskipjump(cancer_target, x, y, max_queries=300)
    assert result.success.all()
    assert result.median_norm < 1.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_queries": 0}, "max_queries"),
        ({"steps": 0}, "steps"),
        ({"init_evals": 1.5}, "init_evals"),
        ({"init_tries": -1}, "init_tries"),
        ({"gamma": 0.0}, "gamma"),
        ({"norm": "l0"}, "norms"),
        ({"eps": -1.0}, "eps"),
        ({"x_init": np.zeros((3, 1, 8, 8), np.float32)}, "x_init"),
        ({"x_init": np.full((N, 1, 8, 8), 2.0, np.float32)}, "x_init"),
    ],
)
def test_hopskipjump_rejects_nonsense_parameters(
    digits_target: TorchTarget,
    digits: tuple[np.ndarray, np.ndarray],
    options: dict[str, Any],
    message: str,
) -> None:
    x, y = digits
    with pytest.raises(InputError, match=message):
        hopskipjump(digits_target, x, y, **options)
