"""FGSM: one signed-gradient step, checked against an independent computation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import mlwarden.targets
from mlwarden.attacks.evasion import fgsm, get_attack
from mlwarden.errors import InputError, TargetError
from mlwarden.targets.torch import TorchTarget

N = 100


@pytest.fixture
def digits(digits_model: Any) -> tuple[np.ndarray, np.ndarray]:
    return digits_model.x_test[:N], digits_model.y_test[:N]


def predict(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.asarray(model(torch.from_numpy(x)).argmax(dim=1).numpy())


def test_fgsm_is_registered_as_white_box() -> None:
    spec, fn = get_attack("fgsm")
    assert fn is fgsm
    assert spec.white_box
    assert spec.norms == ("linf", "l2", "l1")


def test_fgsm_equals_x_plus_eps_sign_gradient_computed_independently(
    digits_model: Any, digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    eps = 0.1
    model = digits_model.model
    inputs = torch.from_numpy(x).requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(inputs), torch.from_numpy(y), reduction="sum")
    (grad,) = torch.autograd.grad(loss, inputs)
    expected = np.clip(x + eps * np.sign(grad.numpy()), 0, 1)
    clean_wrong = predict(model, x) != y
    fooled = predict(model, expected) != y

    result = fgsm(digits_target, x, y, eps=eps)

    np.testing.assert_array_equal(result.success, fooled | clean_wrong)
    step_taken = result.success & ~clean_wrong
    assert step_taken.sum() >= 10
    np.testing.assert_allclose(result.x_adv[step_taken], expected[step_taken], atol=1e-6)
    np.testing.assert_array_equal(result.x_adv[~result.success], x[~result.success])


def test_fgsm_lowers_accuracy_and_stays_in_the_ball(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = fgsm(digits_target, x, y, eps=0.2)
    assert result.clean_accuracy >= 0.9
    assert result.robust_accuracy <= 0.3
    assert result.threat.inside(result.x_adv, result.x).all()
    assert result.n_projected == 0


@pytest.mark.parametrize(("norm", "eps"), [("l2", 1.0), ("l1", 4.0)])
def test_fgsm_other_norms_respect_their_budget(
    norm: str, eps: float, digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = fgsm(digits_target, x, y, eps=eps, norm=norm)
    assert result.threat.inside(result.x_adv, result.x).all()
    assert result.robust_accuracy < result.clean_accuracy
    assert result.norms.max() <= eps * (1 + 1e-5)


def test_fgsm_targeted_steps_toward_the_target(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    wanted = (y + 1) % 10
    result = fgsm(digits_target, x, y, eps=0.3, y_target=wanted)
    assert result.success.sum() >= 5
    np.testing.assert_array_equal(result.predictions[result.success], wanted[result.success])


def test_fgsm_refuses_nan_eps(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    with pytest.raises(InputError, match="eps"):
        fgsm(digits_target, x, y, eps=float("nan"))


class Counting(torch.nn.Module):
    """The model, counting the samples of every forward pass (metered by the target or not)."""

    def __init__(self, inner: torch.nn.Module, *, poison: bool = False) -> None:
        super().__init__()
        self.inner = inner
        self.samples = 0
        self.poison = poison

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.samples += int(x.shape[0])
        out: torch.Tensor = self.inner(x)
        return out * float("nan") if self.poison else out


def test_fgsm_costs_one_gradient_pass_whose_logits_are_the_clean_predictions(
    digits_model: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    counting = Counting(digits_model.model)
    target = mlwarden.targets.target(counting, input_shape=digits_model.input_shape, n_classes=10)
    result = fgsm(target, x, y, eps=0.1)
    # one forward and backward pass, then the runner's verification: no separate clean pass,
    # no check of the step inside the attack
    assert counting.samples == 2 * N
    assert result.queries == N
    np.testing.assert_array_equal(result.clean_predictions, predict(digits_model.model, x))
    with torch.no_grad():
        probs = torch.softmax(digits_model.model(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(result.clean_confidence, probs.max(axis=1), rtol=1e-5)


def test_fgsm_stopped_by_the_budget_still_reports_every_clean_prediction(
    digits_model: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    model = digits_model.model
    limited = mlwarden.targets.target(
        model, input_shape=digits_model.input_shape, batch_size=32, query_budget=40
    )
    result = fgsm(limited, x, y, eps=0.2)
    assert result.interrupted
    assert limited.queries == 32
    clean = predict(model, x)
    np.testing.assert_array_equal(result.clean_predictions, clean)
    # the batches the budget cut off were never attacked: only their misclassified samples count
    np.testing.assert_array_equal(result.success[32:], clean[32:] != y[32:])
    assert result.success[:32].sum() > (clean[:32] != y[:32]).sum()


def test_fgsm_refuses_a_model_that_answers_nan_on_the_clean_inputs(
    digits_model: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    poisoned = Counting(digits_model.model, poison=True)
    target = mlwarden.targets.target(poisoned, input_shape=digits_model.input_shape, n_classes=10)
    with pytest.raises(TargetError, match="NaN"):
        fgsm(target, x, y, eps=0.1)
