"""Square attack: score-based black-box search inside the linf / l2 ball."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from mlwarden.attacks.evasion import get_attack, square
from mlwarden.attacks.evasion.square_search import p_schedule
from mlwarden.errors import InputError
from mlwarden.targets.base import Target
from mlwarden.targets.torch import TorchTarget

N = 64


class ScoresOnly(Target):
    """A black-box target: a NumPy function returning probabilities, no gradients."""

    def __init__(self, model: Any, input_shape: tuple[int, ...], **options: Any) -> None:
        super().__init__(n_classes=10, input_shape=input_shape, **options)
        self.model = model

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(self.model(torch.from_numpy(x)), dim=1).numpy()


@pytest.fixture
def digits(digits_model: Any) -> tuple[np.ndarray, np.ndarray]:
    return digits_model.x_test[:N], digits_model.y_test[:N]


def test_square_is_registered_as_black_box() -> None:
    spec, fn = get_attack("square")
    assert fn is square
    assert not spec.white_box
    assert spec.norms == ("linf", "l2")


def test_square_linf_fools_most_digits_inside_the_ball(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = square(digits_target, x, y, eps=0.3, queries=300)
    assert result.success_rate >= 0.9
    assert result.robust_accuracy <= 0.1
    assert np.abs(result.x_adv - x).max() <= 0.3 + 1e-6
    assert result.n_projected == 0


def test_square_never_exceeds_its_query_budget_per_sample(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = square(digits_target, x, y, eps=0.05, queries=25)
    assert result.queries <= 25 * len(x)
    # samples it could not fool spent exactly their budget; fooled ones stopped early
    unfooled = int((~result.success).sum())
    assert unfooled > 0
    assert result.queries >= 25 * unfooled


def test_square_stops_querying_fooled_samples(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = square(digits_target, x, y, eps=0.6, queries=500)
    assert result.success_rate == 1.0
    assert result.queries < 10 * len(x)


def test_square_l2_fools_digits_within_the_l2_ball(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = square(digits_target, x, y, eps=2.0, norm="l2", queries=300)
    assert result.success_rate >= 0.9
    norms = np.sqrt(((result.x_adv - x).reshape(len(x), -1).astype(np.float64) ** 2).sum(axis=1))
    assert norms.max() <= 2.0 * (1 + 1e-5)
    assert result.n_projected == 0


def test_square_l2_beats_random_noise_of_the_same_norm(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = square(digits_target, x, y, eps=1.0, norm="l2", queries=100)
    noise = np.random.default_rng(0).standard_normal(x.shape)
    noise *= 1.0 / np.sqrt((noise**2).reshape(len(x), -1).sum(axis=1))[:, None, None, None]
    noisy = np.clip(x + noise, 0, 1).astype(np.float32)
    noise_accuracy = float((digits_target.predict(noisy) == y).mean())
    assert result.robust_accuracy < noise_accuracy - 0.3


def test_square_attacks_a_black_box_target(
    digits_model: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    target = ScoresOnly(digits_model.model, digits_model.input_shape)
    assert not target.white_box
    x, y = digits
    result = square(target, x, y, eps=0.3, queries=300)
    assert result.success_rate >= 0.9


def test_square_targeted_reaches_the_target_class(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    goal = (y + 1) % 10
    result = square(digits_target, x, y, eps=0.3, queries=300, y_target=goal)
    assert result.success_rate >= 0.6
    np.testing.assert_array_equal(result.predictions[result.success], goal[result.success])


def test_square_attacks_flat_tabular_inputs(cancer_model: Any, cancer_target: TorchTarget) -> None:
    x, y = cancer_model.x_test, cancer_model.y_test
    result = square(cancer_target, x, y, eps=0.1, queries=300)
    assert result.robust_accuracy < result.clean_accuracy - 0.3
    assert np.abs(result.x_adv - x).max() <= 0.1 + 1e-6


def test_square_budget_interruption_returns_verified_partial_results(
    digits_model: Any, digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    target = TorchTarget(digits_model.model, input_shape=(1, 8, 8), query_budget=N * 8)
    x, y = digits
    result = square(target, x, y, eps=0.3, queries=1000)
    assert result.interrupted
    assert result.queries <= N * 8
    assert 0 < result.success.sum() < N
    fooled = result.success
    assert (digits_target.predict(result.x_adv[fooled]) != y[fooled]).all()


def test_square_is_deterministic_under_a_seed(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits[0][:16], digits[1][:16]
    first = square(digits_target, x, y, eps=0.1, queries=30, seed=3)
    again = square(digits_target, x, y, eps=0.1, queries=30, seed=3)
    other = square(digits_target, x, y, eps=0.1, queries=30, seed=4)
    np.testing.assert_array_equal(first.x_adv, again.x_adv)
    assert first.queries == again.queries
    assert not np.array_equal(first.x_adv, other.x_adv)


def test_square_with_zero_eps_changes_nothing(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = square(digits_target, x, y, eps=0.0, queries=50)
    assert result.queries == 0
    np.testing.assert_array_equal(result.x_adv, x)


def test_square_reports_progress_in_queries(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    seen: list[tuple[int, int]] = []
    x, y = digits
    square(digits_target, x, y, eps=0.05, queries=20, progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (1, 20)
    assert seen[-1] == (20, 20)


def test_p_schedule_halves_on_the_papers_steps() -> None:
    assert p_schedule(0.8, 0, 10000) == 0.8
    assert p_schedule(0.8, 10, 10000) == 0.8
    assert p_schedule(0.8, 11, 10000) == 0.4
    assert p_schedule(0.8, 300, 10000) == 0.1
    assert p_schedule(0.8, 9999, 10000) == 0.8 / 512
    # rescaled to the budget: iteration 100 of 1000 sits at 1000 of 10 000
    assert p_schedule(0.8, 100, 1000) == 0.8 / 16


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"queries": 0}, "queries"),
        ({"queries": 2.5}, "queries"),
        ({"p_init": 0.0}, "p_init"),
        ({"p_init": 1.5}, "p_init"),
        ({"norm": "l1"}, "norms"),
        ({"eps": -0.1}, "eps"),
        ({"eps": float("nan")}, "eps"),
    ],
)
def test_square_rejects_nonsense_parameters(
    digits_target: TorchTarget,
    digits: tuple[np.ndarray, np.ndarray],
    options: dict[str, Any],
    message: str,
) -> None:
    x, y = digits
    arguments: dict[str, Any] = {"eps": 0.1, **options}
    with pytest.raises(InputError, match=message):
        square(digits_target, x, y, **arguments)


def test_square_refuses_targets_that_answer_labels_only(
    digits_model: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    target = ScoresOnly(digits_model.model, digits_model.input_shape, output="labels")
    with pytest.raises(InputError, match="hopskipjump"):
        square(target, *digits, eps=0.1)


def test_square_rejects_inputs_of_the_wrong_shape(digits_target: TorchTarget) -> None:
    with pytest.raises(InputError, match="shape"):
        square(digits_target, np.zeros((4, 64), np.float32), np.zeros(4, int), eps=0.1)
