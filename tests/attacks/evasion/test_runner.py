"""The shared runner: it validates once, never trusts the attack, and keeps partial results."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import mlwarden.targets
from mlwarden.attacks.evasion import apgd, pgd
from mlwarden.attacks.evasion.base import AttackSpec, AttackState, run_attack
from mlwarden.errors import InputError
from mlwarden.targets.base import Target
from mlwarden.targets.torch import TorchTarget

N = 64
SPEC = AttackSpec(name="test", title="test attack", white_box=True, norms=("linf", "l2"))


class ScoresOnly(Target):
    """A black-box target over the same network: probabilities, no gradients."""

    def __init__(self, model: torch.nn.Module, input_shape: tuple[int, ...]) -> None:
        super().__init__(n_classes=10, input_shape=input_shape)
        self.model = model

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(self.model(torch.from_numpy(x)), dim=1).numpy()


@pytest.fixture
def digits(digits_model: Any) -> tuple[np.ndarray, np.ndarray]:
    return digits_model.x_test[:N], digits_model.y_test[:N]


def test_a_spent_query_budget_returns_what_was_found_so_far(
    digits_model: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    budget = 6 * N
    limited = mlwarden.targets.target(
        digits_model.model, input_shape=digits_model.input_shape, query_budget=budget
    )
    result = pgd(limited, x, y, eps=0.3, steps=40, early_stop=False)
    assert result.interrupted
    assert limited.queries <= budget
    assert result.queries <= budget
    fooled_by_attack = result.success & (result.clean_predictions == y)
    assert fooled_by_attack.sum() > 0
    assert result.threat.inside(result.x_adv, result.x).all()


def test_ctrl_c_inside_an_attack_keeps_what_it_recorded(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits

    def interrupted_attack(state: AttackState, target: Any) -> None:
        state.record(np.arange(5), np.clip(state.x[:5] + 0.2, 0, 1))
        raise KeyboardInterrupt

    result = run_attack(interrupted_attack, SPEC, digits_target, x, y, eps=0.2, norm="linf")
    assert result.interrupted
    assert result.threat.inside(result.x_adv, result.x).all()


def test_the_runner_projects_a_sloppy_attack_back_into_the_ball(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    eps = 0.1

    def sloppy(state: AttackState, target: Any) -> None:
        # steps three times too far and out of the input range, then claims everything
        noise = state.rng().choice([-1.0, 1.0], size=state.x.shape).astype(np.float32)
        todo = np.flatnonzero(~state.found)
        state.record(todo, state.x[todo] + 3 * eps * noise[todo])

    result = run_attack(sloppy, SPEC, digits_target, x, y, eps=eps, norm="linf")
    assert result.n_projected == int((result.clean_predictions == y).sum())
    assert result.threat.inside(result.x_adv, result.x).all()
    assert np.abs(result.x_adv - x).max() <= eps + 1e-6
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1


def test_success_is_verified_with_a_fresh_query_not_taken_from_the_attack(
    digits_model: Any, digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits

    def liar(state: AttackState, target: Any) -> None:
        # claims the clean inputs, barely moved, are adversarial
        todo = np.flatnonzero(~state.found)
        state.record(todo, np.clip(state.x[todo] + 1e-3, 0, 1))

    result = run_attack(liar, SPEC, digits_target, x, y, eps=0.01, norm="linf")
    with torch.no_grad():
        truth = digits_model.model(torch.from_numpy(result.x_adv)).argmax(dim=1).numpy()
    correct = result.clean_predictions == y
    assert not result.success[correct].any()
    np.testing.assert_array_equal(result.x_adv[correct], x[correct])
    np.testing.assert_array_equal(result.predictions, truth)
    # the runner's own checks are not charged to the attack
    assert result.queries == 0


def test_clean_misclassified_samples_count_as_fooled_with_norm_zero(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    wrong = y.copy()
    wrong[:10] = (y[:10] + 1) % 10  # the model is right on these, so the labels make it wrong
    seen: dict[str, np.ndarray] = {}

    def watcher(state: AttackState, target: Any) -> None:
        seen["found"] = state.found.copy()
        seen["best_norm"] = state.best_norm.copy()

    result = run_attack(watcher, SPEC, digits_target, x, wrong, eps=0.1, norm="linf")
    misclassified = result.clean_predictions != wrong
    assert misclassified[:10].all()
    np.testing.assert_array_equal(seen["found"], misclassified)
    assert (seen["best_norm"][misclassified] == 0).all()
    assert result.success[misclassified].all()
    assert (result.norms[misclassified] == 0).all()
    np.testing.assert_array_equal(result.x_adv[misclassified], x[misclassified])
    assert (result.minimal_norms()[misclassified] == 0).all()


def test_a_proposal_is_judged_by_the_runner_and_never_replaces_a_recorded_find(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    genuine = pgd(digits_target, x, y, eps=0.3, steps=20)
    hit = np.flatnonzero(genuine.success & (genuine.clean_predictions == y))
    assert len(hit) >= 10
    seen: dict[str, np.ndarray] = {}

    def proposer(state: AttackState, target: Any) -> None:
        state.record(hit[:3], genuine.x_adv[hit[:3]])
        state.propose(np.arange(N), np.clip(state.x + 1e-3, 0, 1))  # harmless, for everyone
        state.propose(hit[3:], genuine.x_adv[hit[3:]])
        seen["found"] = state.found.copy()

    result = run_attack(proposer, SPEC, digits_target, x, y, eps=0.3, norm="linf")
    misclassified = result.clean_predictions != y
    expected_found = misclassified.copy()
    expected_found[hit[:3]] = True
    np.testing.assert_array_equal(seen["found"], expected_found)  # proposals claim nothing
    np.testing.assert_array_equal(result.x_adv[hit], genuine.x_adv[hit])
    assert result.success[hit].all()
    others = np.setdiff1d(np.flatnonzero(~misclassified), hit)
    assert not result.success[others].any()
    np.testing.assert_array_equal(result.x_adv[others], x[others])


def test_an_attack_meant_to_supply_clean_predictions_that_did_not_gets_them_from_the_runner(
    digits_model: Any, digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    spec = AttackSpec(
        name="test", title="test attack", white_box=True, norms=("linf",), clean_pass=True
    )
    seen: dict[str, np.ndarray] = {}

    def idle(state: AttackState, target: Any) -> None:
        seen["known"] = state.clean_known.copy()
        seen["found"] = state.found.copy()

    result = run_attack(idle, spec, digits_target, x, y, eps=0.1, norm="linf")
    assert not seen["known"].any() and not seen["found"].any()
    with torch.no_grad():
        truth = digits_model.model(torch.from_numpy(x)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(result.clean_predictions, truth)
    np.testing.assert_array_equal(result.success, truth != y)
    assert result.queries == 0


def test_the_model_is_attacked_in_eval_mode_and_restored_untouched(
    digits_model: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    model = digits_model.model
    target = mlwarden.targets.target(model, input_shape=digits_model.input_shape)
    before = [p.detach().clone() for p in model.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    modes: list[bool] = []

    def probe(state: AttackState, target: Any) -> None:
        modes.append(model.training)
        modes.extend(p.requires_grad for p in model.parameters())

    model.train()
    try:
        run_attack(probe, SPEC, target, x, y, eps=0.1, norm="linf")
        pgd(target, x, y, eps=0.1, steps=3)
        assert model.training
    finally:
        model.eval()
    assert not any(modes)
    assert all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    for grad, p in zip(grads, model.parameters(), strict=True):
        if grad is None or p.grad is None:
            assert grad is None and p.grad is None
        else:
            assert torch.equal(grad, p.grad)


@pytest.mark.parametrize("attack", [pgd, apgd])
def test_attacks_are_deterministic_under_a_seed(
    attack: Any, digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    first = attack(digits_target, x, y, eps=0.1, steps=5, seed=11)
    again = attack(digits_target, x, y, eps=0.1, steps=5, seed=11)
    np.testing.assert_array_equal(first.x_adv, again.x_adv)
    np.testing.assert_array_equal(first.success, again.success)
    assert first.queries == again.queries


def test_a_white_box_attack_refuses_a_black_box_target(
    digits_model: Any, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    target = ScoresOnly(digits_model.model, digits_model.input_shape)
    with pytest.raises(InputError, match="black-box"):
        pgd(target, x, y, eps=0.1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("nan", "NaN"),
        ("shape", "shape"),
        ("empty", "empty"),
        ("range", "input_range"),
        ("labels_high", r"\[0, 9\]"),
        ("labels_negative", r"\[0, 9\]"),
        ("labels_count", "labels have shape"),
        ("eps_negative", "eps"),
        ("eps_huge", "exceeds"),
        ("eps_nan", "eps"),
        ("eps_text", "eps"),
        ("target_is_label", "differ"),
        ("target_out_of_range", "target labels"),
    ],
)
def test_bad_inputs_raise_input_errors_that_say_what_to_do(
    change: str,
    message: str,
    digits_target: TorchTarget,
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = digits
    x, y = x.copy(), y.copy()
    options: dict[str, Any] = {"eps": 0.1}
    if change == "nan":
        x[3, 0, 2, 2] = np.nan
    elif change == "shape":
        x = x.reshape(N, -1)
    elif change == "empty":
        x, y = x[:0], y[:0]
    elif change == "range":
        x = x * 255
    elif change == "labels_high":
        y[0] = 10
    elif change == "labels_negative":
        y[0] = -1
    elif change == "labels_count":
        y = y[:-1]
    elif change == "eps_negative":
        options["eps"] = -0.1
    elif change == "eps_huge":
        options["eps"] = 2.0
    elif change == "eps_nan":
        options["eps"] = float("nan")
    elif change == "eps_text":
        options["eps"] = "big"
    elif change == "target_is_label":
        options["y_target"] = y.copy()
    elif change == "target_out_of_range":
        options["y_target"] = np.full(N, 12)
    with pytest.raises(InputError, match=message):
        pgd(digits_target, x, y, **options)
