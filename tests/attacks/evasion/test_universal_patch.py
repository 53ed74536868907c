"""Universal adversarial patch: one square trained over a dataset, pasted at random positions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from mlwarden.attacks.evasion import get_attack, patch
from mlwarden.attacks.evasion.universal_patch import apply_patch, default_patch_size
from mlwarden.errors import InputError
from mlwarden.targets.base import Target
from mlwarden.targets.torch import TorchTarget


class ScoresOnly(Target):
    def __init__(self, model: Any) -> None:
        super().__init__(n_classes=10, input_shape=(1, 8, 8))
        self.model = model

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(self.model(torch.from_numpy(x)), dim=1).numpy()


@pytest.fixture
def train_split(digits_model: Any) -> tuple[np.ndarray, np.ndarray]:
    return digits_model.x_test[:200], digits_model.y_test[:200]


@pytest.fixture
def held_out(digits_model: Any) -> tuple[np.ndarray, np.ndarray]:
    return digits_model.x_test[200:], digits_model.y_test[200:]


def _positions(n: int, side: int, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 8 - side + 1, size=(n, 2))


def test_patch_is_registered_as_white_box_l0() -> None:
    spec, fn = get_attack("patch")
    assert fn is patch
    assert spec.white_box
    assert spec.norms == ("l0",)


def test_default_patch_covers_about_a_tenth_of_the_image() -> None:
    assert default_patch_size(8, 8) == 3
    assert default_patch_size(28, 28) == 9
    assert default_patch_size(224, 224) == 71
    assert default_patch_size(2, 2) == 1


def test_patch_artifacts_have_the_right_shapes(
    digits_target: TorchTarget, train_split: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = train_split
    result = patch(digits_target, x, y, steps=20)
    stamp, corners = result.artifacts["patch"], result.artifacts["positions"]
    assert stamp.shape == (1, 3, 3)
    assert stamp.dtype == np.float32
    assert stamp.min() >= 0.0 and stamp.max() <= 1.0
    assert corners.shape == (len(x), 2)
    assert corners.min() >= 0 and corners.max() <= 8 - 3
    assert result.threat.norm == "l0"
    assert result.threat.eps == 9


def test_fooled_images_carry_the_patch_at_their_recorded_position(
    digits_target: TorchTarget, train_split: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = train_split
    result = patch(digits_target, x, y, steps=50)
    fooled = result.success & (result.clean_predictions == y)
    assert fooled.sum() > 0.15 * len(x)
    expected = apply_patch(x, result.artifacts["patch"], result.artifacts["positions"])
    np.testing.assert_array_equal(result.x_adv[fooled], expected[fooled])
    changed = (result.x_adv != x).reshape(len(x), -1).sum(axis=1)
    assert changed.max() <= 9
    assert result.n_projected == 0


def test_trained_patch_beats_a_random_patch_on_held_out_images(
    digits_target: TorchTarget,
    train_split: tuple[np.ndarray, np.ndarray],
    held_out: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = train_split
    stamp = patch(digits_target, x, y, steps=100).artifacts["patch"]
    x_new, y_new = held_out
    corners = _positions(len(x_new), 3)
    noise = np.random.default_rng(1).uniform(0, 1, stamp.shape).astype(np.float32)
    trained = digits_target.predict(apply_patch(x_new, stamp, corners))
    random = digits_target.predict(apply_patch(x_new, noise, corners))
    assert (trained != y_new).mean() > (random != y_new).mean() + 0.05


def test_targeted_patch_pulls_held_out_images_to_its_class(
    digits_target: TorchTarget,
    train_split: tuple[np.ndarray, np.ndarray],
    held_out: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = train_split
    keep = y != 3
    result = patch(digits_target, x[keep], y[keep], patch_size=4, steps=100, target_class=3)
    assert (result.predictions[result.success] == 3).all()
    x_new, y_new = held_out
    x_new = x_new[y_new != 3]
    corners = _positions(len(x_new), 4)
    noise = np.random.default_rng(1).uniform(0, 1, (1, 4, 4)).astype(np.float32)
    trained = digits_target.predict(apply_patch(x_new, result.artifacts["patch"], corners))
    random = digits_target.predict(apply_patch(x_new, noise, corners))
    assert (trained == 3).mean() > (random == 3).mean() + 0.1


def test_patch_trained_over_random_scales_still_fools(
    digits_target: TorchTarget, train_split: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = train_split
    result = patch(digits_target, x, y, steps=50, scale=(0.5, 1.0))
    assert result.artifacts["patch"].shape == (1, 3, 3)
    assert result.success_rate > 0.15


def test_patch_size_follows_an_l0_eps(
    digits_target: TorchTarget, train_split: tuple[np.ndarray, np.ndarray]
) -> None:
    result = patch(digits_target, *train_split, eps=20, steps=2)
    assert result.artifacts["patch"].shape == (1, 4, 4)
    assert result.threat.eps == 20


def test_patch_reports_progress_in_steps(
    digits_target: TorchTarget, train_split: tuple[np.ndarray, np.ndarray]
) -> None:
    seen: list[tuple[int, int]] = []
    patch(digits_target, *train_split, steps=3, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_patch_is_deterministic_under_a_seed(
    digits_target: TorchTarget, train_split: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = train_split
    first = patch(digits_target, x, y, steps=10, seed=2)
    again = patch(digits_target, x, y, steps=10, seed=2)
    other = patch(digits_target, x, y, steps=10, seed=3)
    np.testing.assert_array_equal(first.artifacts["patch"], again.artifacts["patch"])
    np.testing.assert_array_equal(first.artifacts["positions"], again.artifacts["positions"])
    np.testing.assert_array_equal(first.x_adv, again.x_adv)
    assert not np.array_equal(first.artifacts["positions"], other.artifacts["positions"])


def test_patch_budget_interruption_returns_the_patch_trained_so_far(
    digits_model: Any, train_split: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = train_split
    target = TorchTarget(digits_model.model, input_shape=(1, 8, 8), query_budget=1000)
    result = patch(target, x, y, steps=50)
    assert result.interrupted
    assert result.queries <= 1000
    assert not result.success[result.clean_predictions == y].any()
    assert result.artifacts["patch"].shape == (1, 3, 3)


def test_patch_refuses_flat_inputs(cancer_model: Any, cancer_target: TorchTarget) -> None:
    with pytest.raises(InputError, match=r"images \(C, H, W\)"):
        patch(cancer_target, cancer_model.x_test, cancer_model.y_test)


def test_patch_refuses_black_box_targets(
    digits_model: Any, train_split: tuple[np.ndarray, np.ndarray]
) -> None:
    with pytest.raises(InputError, match="gradients"):
        patch(ScoresOnly(digits_model.model), *train_split)


def test_targeted_patch_refuses_samples_of_its_own_class(
    digits_target: TorchTarget, train_split: tuple[np.ndarray, np.ndarray]
) -> None:
    with pytest.raises(InputError, match=r"y != 3"):
        patch(digits_target, *train_split, target_class=3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"patch_size": 0}, "patch_size"),
        ({"patch_size": 9}, "patch_size"),
        ({"patch_size": 2.5}, "patch_size"),
        ({"steps": -1}, "steps"),
        ({"step_size": 0.0}, "step_size"),
        ({"target_class": 10}, "target_class"),
        ({"scale": (0.0, 1.0)}, "scale"),
        ({"scale": (0.5, 2.0)}, "scale"),
        ({"norm": "linf"}, "norms"),
        ({"eps": 0.5}, "whole"),
        ({"eps": 0}, "one-pixel patch"),
        ({"eps": 8, "patch_size": 3}, "not both"),
    ],
)
def test_patch_rejects_nonsense_parameters(
    digits_target: TorchTarget,
    train_split: tuple[np.ndarray, np.ndarray],
    options: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(InputError, match=message):
        patch(digits_target, *train_split, **options)


@pytest.mark.parametrize(
    ("images", "stamp", "corners", "message"),
    [
        (np.zeros((2, 8, 8)), np.zeros((1, 3, 3)), np.zeros((2, 2), int), "images"),
        (np.zeros((2, 1, 8, 8)), np.zeros((3, 3, 3)), np.zeros((2, 2), int), "same C"),
        (np.zeros((2, 1, 8, 8)), np.zeros((1, 3, 2)), np.zeros((2, 2), int), "square"),
        (np.zeros((2, 1, 8, 8)), np.zeros((1, 3, 3)), np.zeros((3, 2), int), "positions"),
        (np.zeros((2, 1, 8, 8)), np.zeros((1, 3, 3)), np.full((2, 2), 6), "outside"),
        (np.zeros((2, 1, 8, 8)), np.zeros((1, 3, 3)), np.full((2, 2), 0.5), "whole"),
    ],
)
def test_apply_patch_rejects_bad_shapes_and_positions(
    images: np.ndarray, stamp: np.ndarray, corners: np.ndarray, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        apply_patch(images, stamp, corners)
