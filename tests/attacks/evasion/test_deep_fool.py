"""DeepFool: nearest linearised boundary, exact on affine models."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from mlwarden.attacks.evasion import deepfool, get_attack, pgd
from mlwarden.attacks.evasion.deep_fool import PULL_BACK_STEPS, STEP_SLACK
from mlwarden.errors import InputError
from mlwarden.targets.torch import TorchTarget

N = 64


@pytest.fixture
def digits(digits_model: Any) -> tuple[np.ndarray, np.ndarray]:
    return digits_model.x_test[:N], digits_model.y_test[:N]


def affine_problem(dual: float) -> tuple[TorchTarget, np.ndarray, np.ndarray, np.ndarray]:
    """A 4-class affine model, points in a wide range, and each point's exact distance to the
    decision boundary: min over classes of |logit gap| / ||weight gap||_dual (dual 2 for L2,
    1 for Linf)."""
    torch.manual_seed(1)
    layer = torch.nn.Linear(5, 4)
    x = np.random.default_rng(1).uniform(-0.5, 0.5, (50, 5)).astype(np.float32)
    with torch.no_grad():
        logits = layer(torch.from_numpy(x)).double().numpy()
    y = logits.argmax(axis=1)
    weights = layer.weight.detach().double().numpy()
    distance = np.array(
        [
            min(
                abs(logits[i, k] - logits[i, y[i]])
                / np.linalg.norm(weights[k] - weights[y[i]], ord=dual)
                for k in range(4)
                if k != y[i]
            )
            for i in range(len(x))
        ]
    )
    target = TorchTarget(layer, input_shape=(5,), input_range=(-5.0, 5.0))
    return target, x, y, distance


def test_deepfool_is_registered_as_untargeted_minimum_norm() -> None:
    spec, fn = get_attack("deepfool")
    assert fn is deepfool
    assert spec.white_box and spec.minimum_norm and not spec.targeted
    assert spec.norms == ("l2", "linf")


@pytest.mark.parametrize(("norm", "dual"), [("l2", 2.0), ("linf", 1.0)])
def test_deepfool_finds_the_exact_distance_to_an_affine_boundary(norm: str, dual: float) -> None:
    target, x, y, distance = affine_problem(dual)
    overshoot = 0.02
    result = deepfool(target, x, y, norm=norm, overshoot=overshoot)
    assert result.success.all()
    # one step onto the nearest hyperplane and the overshoot past it, then the pull back
    # finds the step without the overshoot still adversarial: the exact distance, plus at most
    # the slack
    assert (result.norms >= distance * (1 - 1e-4)).all()
    assert (result.norms <= (distance + STEP_SLACK) * (1 + 1e-4)).all()
    assert result.queries == (2 + PULL_BACK_STEPS) * len(x)


def test_deepfool_pull_back_shrinks_curved_steps_on_a_binary_model(
    cancer_model: Any, cancer_target: TorchTarget
) -> None:
    x, y = cancer_model.x_test, cancer_model.y_test
    result = deepfool(cancer_target, x, y, overshoot=0.02, candidates=2)
    with torch.no_grad():
        logits = cancer_model.model(torch.from_numpy(result.x_adv)).numpy()
    fooled = result.success & (result.clean_predictions == y)
    assert (logits.argmax(axis=1)[fooled] != y[fooled]).all()
    plain = deepfool(cancer_target, x, y, overshoot=0.02, candidates=2, pull_back=False)
    assert (result.norms[fooled] <= plain.norms[fooled] + 1e-6).all()
    assert np.median(result.norms[fooled]) < 0.995 * np.median(plain.norms[fooled])


def test_deepfool_without_overshoot_still_crosses_the_boundary() -> None:
    target, x, y, distance = affine_problem(2.0)
    result = deepfool(target, x, y, overshoot=0.0)
    assert result.success.all()
    np.testing.assert_allclose(result.norms, distance + STEP_SLACK, rtol=1e-4)


def test_deepfool_median_norm_is_below_the_eps_at_which_pgd_fools_the_same_samples(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    pgd_eps = np.full(len(x), np.inf)
    for eps in np.arange(1.2, 0.35, -0.1):
        fooled = pgd(digits_target, x, y, eps=float(eps), norm="l2", steps=20).success
        pgd_eps[fooled] = eps
    result = deepfool(digits_target, x, y)
    both = result.success & (result.clean_predictions == y) & np.isfinite(pgd_eps)
    assert both.sum() >= 0.8 * N
    assert np.median(result.norms[both]) < np.median(pgd_eps[both])


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_deepfool_fools_every_digit_and_retires_them_early(
    norm: str, digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    steps = 50
    result = deepfool(digits_target, x, y, norm=norm, steps=steps)
    assert result.success.all()
    assert result.n_projected == 0
    attacked = int((result.clean_predictions == y).sum())
    # a handful of linearisation steps per sample and the pull back, far from the 51 passes
    # of a full run
    assert result.queries <= (10 + PULL_BACK_STEPS) * attacked


def test_deepfool_with_a_budget_stays_inside_it(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = deepfool(digits_target, x, y, eps=0.5)
    assert result.threat.inside(result.x_adv, result.x).all()
    assert result.norms.max() <= 0.5 * (1 + 1e-5)
    assert 0 < result.robust_accuracy < result.clean_accuracy


def test_deepfool_works_on_a_binary_model(cancer_model: Any, cancer_target: TorchTarget) -> None:
    x, y = cancer_model.x_test, cancer_model.y_test
    result = deepfool(cancer_target, x, y)
    assert result.success.all()
    assert result.robust_accuracy_at(0.0) == pytest.approx(result.clean_accuracy)


def test_fewer_candidates_cost_fewer_gradients_but_still_fool(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    narrow = deepfool(digits_target, x, y, candidates=3)
    assert narrow.success_rate >= 0.9


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"y_target": np.zeros(N, dtype=np.int64)}, "targeted"),
        ({"candidates": 1}, "candidates"),
        ({"steps": 0}, "steps"),
        ({"overshoot": -0.1}, "overshoot"),
        ({"norm": "l1"}, "norms"),
    ],
)
def test_deepfool_rejects_nonsense(
    params: dict[str, Any],
    message: str,
    digits_target: TorchTarget,
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = digits
    with pytest.raises(InputError, match=message):
        deepfool(digits_target, x, y, **params)
