"""Few-pixel attack: differential evolution over a handful of pixels (l0)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from mlwarden.attacks.evasion import get_attack, pixel
from mlwarden.attacks.evasion.few_pixel import pixel_layout
from mlwarden.errors import InputError
from mlwarden.targets.torch import TorchTarget

N = 40


@pytest.fixture
def digits(digits_model: Any) -> tuple[np.ndarray, np.ndarray]:
    return digits_model.x_test[:N], digits_model.y_test[:N]


def _changed_positions(x_adv: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Pixel positions changed per image ``(n, C, H, W)``, any channel counting."""
    return np.asarray((x_adv != x).any(axis=1).reshape(len(x), -1).sum(axis=1))


@pytest.fixture
def colour_target() -> TorchTarget:
    """A small untrained CNN over 3-channel 6x6 images: enough to check the encoding."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(128, 4)
    )
    return TorchTarget(model, input_shape=(3, 6, 6))


def test_pixel_is_registered_as_black_box_l0() -> None:
    spec, fn = get_attack("pixel")
    assert fn is pixel
    assert not spec.white_box
    assert spec.norms == ("l0",)


def test_pixel_layout_gives_pixels_for_images_and_features_for_flat_inputs() -> None:
    assert pixel_layout((3, 32, 32)) == (3, 32, 32)
    assert pixel_layout((28, 28)) == (1, 28, 28)
    assert pixel_layout((30,)) == (1, 1, 30)


def test_pixel_changes_at_most_the_given_number_of_pixels(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = pixel(digits_target, x, y, pixels=2, population=40, generations=20)
    assert result.success.any()
    assert _changed_positions(result.x_adv, x).max() <= 2
    assert result.threat.norm == "l0"
    assert result.threat.eps == 2
    assert result.n_projected == 0


def test_three_pixels_fool_most_digits(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = pixel(digits_target, x, y, pixels=3, population=40, generations=30)
    assert result.success_rate >= 0.6
    assert _changed_positions(result.x_adv, x).max() <= 3


def test_evolution_beats_its_own_first_generation(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    random_only = pixel(digits_target, x, y, pixels=2, population=30, generations=0)
    evolved = pixel(digits_target, x, y, pixels=2, population=30, generations=20)
    assert evolved.success.sum() > 1.5 * random_only.success.sum()


def test_pixel_queries_stay_within_population_times_generations(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = pixel(digits_target, x, y, pixels=1, population=20, generations=5)
    assert result.queries <= 20 * 6 * len(x)
    # a sample stops once fooled, the others run every generation
    assert result.queries >= 20 * 6 * int((~result.success).sum())


def test_a_pixel_spans_every_channel_of_a_colour_image(colour_target: TorchTarget) -> None:
    x = np.random.default_rng(0).uniform(0, 1, (12, 3, 6, 6)).astype(np.float32)
    y = colour_target.predict(x)
    result = pixel(colour_target, x, y, pixels=1, population=20, generations=10)
    assert result.threat.eps == 3
    assert result.success.any()
    assert _changed_positions(result.x_adv, x).max() <= 1
    changed_values = (result.x_adv != x).reshape(len(x), -1).sum(axis=1)
    assert changed_values.max() <= 3


def test_pixel_changes_single_features_of_flat_inputs(
    cancer_model: Any, cancer_target: TorchTarget
) -> None:
    x, y = cancer_model.x_test[:40], cancer_model.y_test[:40]
    result = pixel(cancer_target, x, y, pixels=2, population=20, generations=10)
    assert result.success.any()
    assert (result.x_adv != x).sum(axis=1).max() <= 2


def test_pixel_targeted_reaches_the_target_class(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    goal = (y + 1) % 10
    result = pixel(digits_target, x, y, pixels=4, population=30, generations=20, y_target=goal)
    assert result.success.any()
    np.testing.assert_array_equal(result.predictions[result.success], goal[result.success])


def test_pixel_budget_interruption_returns_verified_partial_results(
    digits_model: Any, digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    target = TorchTarget(digits_model.model, input_shape=(1, 8, 8), query_budget=40 * N * 8)
    result = pixel(target, x, y, pixels=3, population=40, generations=100)
    assert result.interrupted
    assert result.success.any()
    assert (digits_target.predict(result.x_adv[result.success]) != y[result.success]).all()


def test_pixel_reports_progress_in_generations(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    seen: list[tuple[int, int]] = []
    x, y = digits
    pixel(
        digits_target, x, y, population=8, generations=3, progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_pixel_is_deterministic_under_a_seed(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    first = pixel(digits_target, x, y, pixels=2, population=20, generations=5, seed=7)
    again = pixel(digits_target, x, y, pixels=2, population=20, generations=5, seed=7)
    np.testing.assert_array_equal(first.x_adv, again.x_adv)
    assert first.queries == again.queries


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pixels": 0}, "pixels"),
        ({"pixels": 65}, "pixels"),
        ({"pixels": 1.0}, "pixels"),
        ({"population": 3}, "population"),
        ({"generations": -1}, "generations"),
        ({"norm": "linf"}, "norms"),
        ({"eps": 1.5}, "whole"),
        ({"eps": 0}, "one pixel"),
        ({"eps": 2, "pixels": 3}, "not both"),
    ],
)
def test_pixel_rejects_nonsense_parameters(
    digits_target: TorchTarget,
    digits: tuple[np.ndarray, np.ndarray],
    options: dict[str, Any],
    message: str,
) -> None:
    x, y = digits
    with pytest.raises(InputError, match=message):
        pixel(digits_target, x, y, **options)


def test_pixel_count_follows_an_l0_eps(
    colour_target: TorchTarget,
) -> None:
    x = np.random.default_rng(0).uniform(0, 1, (6, 3, 6, 6)).astype(np.float32)
    y = colour_target.predict(x)
    result = pixel(colour_target, x, y, eps=7, population=8, generations=2)
    assert result.params["pixels"] == 2
    assert result.threat.eps == 7
    assert _changed_positions(result.x_adv, x).max() <= 2


def test_pixel_refuses_targets_that_answer_labels_only(
    digits_model: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    target = TorchTarget(digits_model.model, input_shape=(1, 8, 8))
    target.output = "labels"
    with pytest.raises(InputError, match="hopskipjump"):
        pixel(target, *digits)


def test_pixel_rejects_labels_out_of_range(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, _ = digits
    with pytest.raises(InputError, match="labels"):
        pixel(digits_target, x, np.full(len(x), 12), generations=1)
