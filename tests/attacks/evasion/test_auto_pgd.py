"""APGD-CE, APGD-DLR and APGD-T: AutoAttack's step-size-free white-box attacks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from mlwarden.attacks.evasion import apgd, apgd_dlr, apgd_t, get_attack, pgd
from mlwarden.attacks.evasion.auto_pgd import checkpoint_schedule, should_halve
from mlwarden.errors import InputError
from mlwarden.targets.torch import TorchTarget

N = 100


@pytest.fixture
def digits(digits_model: Any) -> tuple[np.ndarray, np.ndarray]:
    return digits_model.x_test[:N], digits_model.y_test[:N]


def test_three_apgd_attacks_are_registered_from_one_module() -> None:
    specs = {name: get_attack(name) for name in ("apgd", "apgd_dlr", "apgd_t")}
    assert [fn for _, fn in specs.values()] == [apgd, apgd_dlr, apgd_t]
    assert all(spec.white_box and spec.norms == ("linf", "l2") for spec, _ in specs.values())
    assert specs["apgd"][0].targeted and specs["apgd_dlr"][0].targeted
    assert not specs["apgd_t"][0].targeted


def test_checkpoints_follow_the_paper_for_100_steps() -> None:
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99
    schedule = checkpoint_schedule(100)
    assert [i + 1 for i in schedule] == [22, 41, 57, 70, 80, 87, 93, 99]
    assert list(schedule.values()) == [22, 19, 16, 13, 10, 7, 6, 6]


def test_checkpoints_exist_for_tiny_step_counts() -> None:
    assert checkpoint_schedule(1) == {0: 1}
    assert all(gap >= 1 for gap in checkpoint_schedule(7).values())


def test_step_halves_when_the_loss_rose_too_rarely_or_stalled() -> None:
    since = 10
    increases = torch.tensor([7.0, 8.0, 8.0, 8.0])
    halved_last = torch.tensor([False, False, False, True])
    best_at_last_check = torch.tensor([1.0, 1.0, 2.0, 2.0])
    best = torch.tensor([2.0, 2.0, 2.0, 2.0])
    halve = should_halve(increases, since, halved_last, best_at_last_check, best)
    # 7 <= 7.5 rises: condition 1; no rise in the best loss without a halving: condition 2;
    # the last one stalled too but was just halved, so it gets another chance
    assert halve.tolist() == [True, False, True, False]


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.15), ("l2", 0.8)])
@pytest.mark.parametrize("attack", [apgd, apgd_dlr])
def test_apgd_fools_digits_inside_the_ball(
    attack: Any,
    norm: str,
    eps: float,
    digits_target: TorchTarget,
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = digits
    result = attack(digits_target, x, y, eps=eps, norm=norm, steps=30)
    assert result.robust_accuracy <= 0.5 * result.clean_accuracy
    assert result.threat.inside(result.x_adv, result.x).all()
    assert result.n_projected == 0


def test_apgd_is_at_least_as_strong_as_fixed_step_pgd_at_equal_budget(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    auto = apgd(digits_target, x, y, eps=0.1, steps=50)
    fixed = pgd(digits_target, x, y, eps=0.1, steps=50)
    assert auto.robust_accuracy <= fixed.robust_accuracy + 0.01


@pytest.mark.slow
def test_apgd_t_is_at_least_as_strong_as_pgd_with_equal_budget(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    steps, targets = 20, 9
    targeted = apgd_t(digits_target, x, y, eps=0.1, steps=steps, n_target_classes=targets)
    plain = pgd(digits_target, x, y, eps=0.1, steps=steps, restarts=targets)
    assert targeted.robust_accuracy <= plain.robust_accuracy + 0.01
    assert targeted.queries <= plain.queries * 1.2


def test_apgd_t_success_is_any_misclassification(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    result = apgd_t(digits_target, x, y, eps=0.15, steps=10, n_target_classes=3)
    assert not result.targeted
    assert result.success.sum() > 0
    assert np.all(result.predictions[result.success] != y[result.success])


def test_apgd_t_caps_target_classes_at_the_number_of_other_classes(
    cancer_model: Any, cancer_target: TorchTarget
) -> None:
    x, y = cancer_model.x_test, cancer_model.y_test
    seen: list[tuple[int, int]] = []
    result = apgd_t(
        cancer_target, x, y, eps=0.1, steps=5, progress=lambda d, t: seen.append((d, t))
    )
    # nine targets asked, one other class exists: one run
    assert seen[-1][1] == 5 * len(x)
    assert result.robust_accuracy < result.clean_accuracy


def test_apgd_dlr_works_on_a_binary_model(cancer_model: Any, cancer_target: TorchTarget) -> None:
    x, y = cancer_model.x_test, cancer_model.y_test
    result = apgd_dlr(cancer_target, x, y, eps=0.1, steps=20)
    assert result.robust_accuracy <= result.clean_accuracy - 0.5


@pytest.mark.parametrize("attack", [apgd, apgd_dlr])
def test_targeted_apgd_reaches_the_target(
    attack: Any, digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    wanted = (y + 5) % 10
    result = attack(digits_target, x, y, eps=0.3, steps=30, y_target=wanted)
    assert result.success_rate >= 0.9
    np.testing.assert_array_equal(result.predictions[result.success], wanted[result.success])


def test_apgd_is_deterministic_under_a_seed(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    first = apgd(digits_target, x, y, eps=0.1, steps=10, seed=5)
    again = apgd(digits_target, x, y, eps=0.1, steps=10, seed=5)
    np.testing.assert_array_equal(first.x_adv, again.x_adv)


def test_apgd_restarts_only_rerun_samples_still_standing(
    digits_target: TorchTarget, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = digits
    once = apgd(digits_target, x, y, eps=0.08, steps=10)
    twice = apgd(digits_target, x, y, eps=0.08, steps=10, restarts=2)
    assert np.all(twice.success[once.success])
    assert twice.queries < 2 * once.queries


@pytest.mark.parametrize(
    ("attack", "params", "message"),
    [
        (apgd, {"norm": "l1"}, "norms"),
        (apgd, {"steps": 0}, "steps"),
        (apgd_dlr, {"restarts": -1}, "restarts"),
        (apgd_t, {"n_target_classes": 0}, "n_target_classes"),
        (apgd_t, {"y_target": np.zeros(N, dtype=np.int64)}, "targeted"),
    ],
)
def test_apgd_rejects_nonsense(
    attack: Any,
    params: dict[str, Any],
    message: str,
    digits_target: TorchTarget,
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = digits
    with pytest.raises(InputError, match=message):
        attack(digits_target, x, y, eps=0.1, **params)
