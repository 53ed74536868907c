"""PGD: projected gradient ascent in linf / l2 / l1 balls, restarts, early stop, targets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import mlwarden.targets
from mlwarden.attacks.evasion import fgsm, get_attack, pgd
from mlwarden.errors import InputError
from mlwarden.targets.torch import TorchTarget

N = 100
BUDGETS = [("linf", 0.1), ("l2", 0.6), ("l1", 3.0)]


@pytest.fixture
def digits(digits_model: Any) -> tuple[np.ndarray, np.ndarray]:
    return digits_model.x_test[:N], digits_model.y_test[:N]


def test_pgd_is_registered_for_three_norms() -> None:
    spec, fn = get_attack("pgd")
    assert fn is pgd
    assert spec.white_box and spec.targeted
    assert spec.norms == ("linf", "l2", "l1")


def test_pgd_linf_at_0_3_drives_digits_robust_accuracy_far_below_clean(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = pgd(digits_target, x, y, eps=0.3)
    assert result.clean_accuracy >= 0.9
    assert result.robust_accuracy <= 0.05
    assert result.interrupted is False


@pytest.mark.parametrize(("norm", "eps"), BUDGETS)
def test_pgd_respects_its_budget_without_help_from_the_runner(
    norm: str, eps: float, digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = pgd(digits_target, x, y, eps=eps, norm=norm, steps=20)
    assert result.threat.inside(result.x_adv, result.x).all()
    assert result.n_projected == 0
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    assert result.norms.max() <= eps * (1 + 1e-5)
    assert result.robust_accuracy < result.clean_accuracy - 0.2


@pytest.mark.parametrize(("norm", "eps"), BUDGETS)
def test_pgd_is_at_least_as_strong_as_fgsm(
    norm: str, eps: float, digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    strong = pgd(digits_target, x, y, eps=eps, norm=norm, steps=20)
    weak = fgsm(digits_target, x, y, eps=eps, norm=norm)
    assert strong.robust_accuracy <= weak.robust_accuracy


def test_pgd_restarts_keep_every_sample_the_first_run_fooled(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    once = pgd(digits_target, x, y, eps=0.08, steps=10)
    thrice = pgd(digits_target, x, y, eps=0.08, steps=10, restarts=3)
    assert np.all(thrice.success[once.success])
    assert thrice.success.sum() > once.success.sum()
    # later restarts only run on the samples still standing
    assert thrice.queries < 3 * once.queries


def test_pgd_more_steps_is_not_weaker(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    short = pgd(digits_target, x, y, eps=0.08, steps=3)
    long = pgd(digits_target, x, y, eps=0.08, steps=40)
    assert long.robust_accuracy <= short.robust_accuracy


def test_pgd_without_early_stop_runs_every_sample_every_step(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    steps = 10
    full = pgd(digits_target, x, y, eps=0.1, steps=steps, early_stop=False)
    attacked = int((full.clean_predictions == y).sum())
    # one gradient pass per step and no more: the runner's verification judges the last iterate
    assert full.queries == attacked * steps
    early = pgd(digits_target, x, y, eps=0.1, steps=steps)
    assert early.queries < full.queries
    assert abs(early.robust_accuracy - full.robust_accuracy) <= 0.02


@pytest.mark.parametrize(("norm", "eps"), BUDGETS)
@pytest.mark.parametrize("slots", [1, 3])
def test_pgd_every_step_settles_a_short_trail_as_it_goes_with_the_same_result(
    norm: str,
    eps: float,
    slots: int,
    digits_target: TorchTarget,
    digits: tuple[np.ndarray, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlwarden.attacks.evasion import projected_gradient

    x, y = digits[0][:40], digits[1][:40]
    whole = pgd(digits_target, x, y, eps=eps, norm=norm, steps=7, restarts=2, early_stop=False)
    # room for `slots` iterates of the batch: settled every `slots` steps (7 is no multiple)
    monkeypatch.setattr(projected_gradient, "TRAIL_BYTES", slots * x[0].size * 4 * len(x))
    short = pgd(digits_target, x, y, eps=eps, norm=norm, steps=7, restarts=2, early_stop=False)
    np.testing.assert_array_equal(short.success, whole.success)
    np.testing.assert_array_equal(short.x_adv, whole.x_adv)
    assert whole.success.sum() > (whole.clean_predictions != y).sum()  # the attack found some


class InterruptedAt(torch.nn.Module):
    """The model, raising KeyboardInterrupt (Ctrl-C) once, at its `call`-th forward pass."""

    def __init__(self, inner: torch.nn.Module, call: int) -> None:
        super().__init__()
        self.inner, self.call, self.calls = inner, call, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.call:
            raise KeyboardInterrupt
        out: torch.Tensor = self.inner(x)
        return out


@pytest.mark.parametrize("early_stop", [True, False])
def test_pgd_stopped_by_ctrl_c_keeps_every_point_it_had_found(
    early_stop: bool, digits_model: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    model = digits_model.model
    # the runner's clean pass is call 1, step k's pass is call k + 2: stopped in step 4, the
    # run has judged the iterates of steps 0-3, as a 3-step run does with its verification
    stopped = mlwarden.targets.target(InterruptedAt(model, 6), input_shape=(1, 8, 8), n_classes=10)
    kwargs: dict[str, Any] = {"eps": 0.1, "step_size": 0.025, "seed": 2}
    result = pgd(stopped, x, y, steps=10, early_stop=early_stop, **kwargs)
    short = pgd(mlwarden.targets.target(model, input_shape=(1, 8, 8)), x, y, steps=3, **kwargs)
    assert result.interrupted
    np.testing.assert_array_equal(result.success, short.success)
    np.testing.assert_array_equal(result.x_adv, short.x_adv)
    assert result.threat.inside(result.x_adv, result.x).all()
    assert short.success.sum() > (short.clean_predictions != y).sum()


class Counting(torch.nn.Module):
    """The model, counting the samples of every forward pass (metered by the target or not)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.samples = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.samples += int(x.shape[0])
        out: torch.Tensor = self.inner(x)
        return out


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_every_step_runs_the_model_once_per_step_plus_the_runners_two_checks(
    norm: str, digits_model: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    counting = Counting(digits_model.model)
    target = mlwarden.targets.target(counting, input_shape=digits_model.input_shape)
    counting.samples = 0  # the target's probe for the number of classes
    steps = 7
    result = pgd(target, x, y, eps=0.5, norm=norm, steps=steps, early_stop=False)
    attacked = int((result.clean_predictions == y).sum())
    # the runner's clean pass and verification, and one pass per sample and step: the last
    # iterate is not checked twice
    assert counting.samples == 2 * N + steps * attacked


def test_pgd_one_step_is_judged_by_the_runner_and_matches_an_independent_step(
    digits_model: Any, digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    eps, size = 0.1, 0.05
    model = digits_model.model
    inputs = torch.from_numpy(x).requires_grad_(True)
    logits = model(inputs)
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y), reduction="sum")
    (grad,) = torch.autograd.grad(loss, inputs)
    stepped = np.clip(x + size * np.sign(grad.numpy()), 0, 1)
    with torch.no_grad():
        clean_wrong = logits.argmax(dim=1).numpy() != y
        fooled = model(torch.from_numpy(stepped)).argmax(dim=1).numpy() != y

    result = pgd(digits_target, x, y, eps=eps, steps=1, step_size=size, random_start=False)

    # no pass checked the one step: only the runner's verification can have found these
    assert (fooled & ~clean_wrong).sum() >= 5
    np.testing.assert_array_equal(result.success, fooled | clean_wrong)
    step_taken = result.success & ~clean_wrong
    np.testing.assert_allclose(result.x_adv[step_taken], stepped[step_taken], atol=1e-6)
    assert result.queries == int((~clean_wrong).sum())


@pytest.mark.parametrize(("norm", "eps"), BUDGETS)
def test_pgd_early_stop_keeps_the_same_first_adversarial_points_as_running_every_step(
    norm: str, eps: float, digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    early = pgd(digits_target, x, y, eps=eps, norm=norm, steps=10, seed=5)
    full = pgd(digits_target, x, y, eps=eps, norm=norm, steps=10, seed=5, early_stop=False)
    np.testing.assert_array_equal(early.success, full.success)
    np.testing.assert_allclose(early.x_adv, full.x_adv, atol=1e-5)
    assert early.queries < full.queries


@pytest.mark.parametrize("early_stop", [True, False])
def test_pgd_in_small_batches_finds_what_one_batch_finds(
    early_stop: bool, digits_model: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    whole = mlwarden.targets.target(digits_model.model, input_shape=digits_model.input_shape)
    small = mlwarden.targets.target(
        digits_model.model, input_shape=digits_model.input_shape, batch_size=16
    )
    # linf random starts are drawn in sample order, so batching changes nothing but the batches
    one = pgd(whole, x, y, eps=0.1, steps=10, early_stop=early_stop)
    many = pgd(small, x, y, eps=0.1, steps=10, early_stop=early_stop)
    np.testing.assert_array_equal(one.success, many.success)
    np.testing.assert_allclose(one.x_adv, many.x_adv, atol=1e-6)
    assert one.queries == many.queries


def test_pgd_targeted_reaches_the_target(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    wanted = (y + 3) % 10
    result = pgd(digits_target, x, y, eps=0.3, y_target=wanted)
    assert result.targeted
    assert result.success_rate >= 0.9
    np.testing.assert_array_equal(result.predictions[result.success], wanted[result.success])


@pytest.mark.parametrize("loss", ["dlr", "margin"])
def test_pgd_other_losses_also_fool_the_model(
    loss: str, digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = pgd(digits_target, x, y, eps=0.2, loss=loss)
    assert result.robust_accuracy <= 0.1


def test_pgd_l1_sparse_steps_beat_a_dense_l1_step(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    sparse = pgd(digits_target, x, y, eps=3.0, norm="l1", steps=20)
    dense = pgd(digits_target, x, y, eps=3.0, norm="l1", steps=20, l1_quantile=0.0)
    assert sparse.robust_accuracy < dense.robust_accuracy


def test_pgd_fools_the_tabular_mlp(cancer_model: Any, cancer_target: TorchTarget) -> None:
    x, y = cancer_model.x_test, cancer_model.y_test
    result = pgd(cancer_target, x, y, eps=0.1)
    assert result.robust_accuracy <= result.clean_accuracy - 0.5
    assert result.threat.inside(result.x_adv, result.x).all()


def test_pgd_is_deterministic_under_a_seed(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    first = pgd(digits_target, x, y, eps=0.1, steps=5, seed=3)
    again = pgd(digits_target, x, y, eps=0.1, steps=5, seed=3)
    other = pgd(digits_target, x, y, eps=0.1, steps=5, seed=4)
    np.testing.assert_array_equal(first.x_adv, again.x_adv)
    assert not np.array_equal(first.x_adv, other.x_adv)


def test_pgd_without_random_start_is_deterministic_whatever_the_seed(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    first = pgd(digits_target, x, y, eps=0.1, steps=5, random_start=False, seed=1)
    other = pgd(digits_target, x, y, eps=0.1, steps=5, random_start=False, seed=2)
    np.testing.assert_array_equal(first.x_adv, other.x_adv)


def test_pgd_reports_progress_up_to_the_total(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    seen: list[tuple[int, int]] = []
    pgd(
        digits_target, x, y, eps=0.1, steps=5, restarts=2, progress=lambda d, t: seen.append((d, t))
    )
    assert seen[-1] == (2 * 5 * N, 2 * 5 * N)
    done = [d for d, _ in seen]
    assert done == sorted(done)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"restarts": 0}, "restarts"),
        ({"step_size": -0.1}, "step_size"),
        ({"step_size": float("nan")}, "step_size"),
        ({"loss": "hinge"}, "loss"),
        ({"l1_quantile": 1.0}, "l1_quantile"),
        ({"l1_quantile": -0.5}, "l1_quantile"),
        ({"norm": "l0"}, "norms"),
    ],
)
def test_pgd_rejects_nonsense_parameters(
    params: dict[str, Any],
    message: str,
    digits_target: TorchTarget,
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = digits
    with pytest.raises(InputError, match=message):
        pgd(digits_target, x, y, eps=0.1, **params)
