"""PGD under feature constraints: every result is a valid tabular input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from mlwarden.attacks.evasion import FeatureConstraints, get_attack, tabular_pgd
from mlwarden.errors import InputError
from mlwarden.targets.base import Target
from mlwarden.targets.torch import TorchTarget

# columns of the synthetic "transactions": 0-2 amounts in [0, 1], 3 account age (immutable),
# 4-5 whole counts in 0..5, 6-8 one-hot channel
IMMUTABLE, INTEGER, CHANNEL = [3], [4, 5], [6, 7, 8]
RULES = FeatureConstraints.build(
    immutable=IMMUTABLE,
    integer=INTEGER,
    one_hot=[CHANNEL],
    lower=[0.0] * 9,
    upper=[1.0, 1.0, 1.0, 1.0, 5.0, 5.0, 1.0, 1.0, 1.0],
)


@dataclass
class Transactions:
    model: torch.nn.Module
    x: np.ndarray
    y: np.ndarray

    def target(self, **options: Any) -> TorchTarget:
        return TorchTarget(self.model, input_shape=(9,), input_range=(0.0, 5.0), **options)


@pytest.fixture(scope="module")
def transactions() -> Transactions:
    """Synthetic fraud-style data and an MLP that reads every kind of column (trains in < 1 s)."""
    rng = np.random.default_rng(0)
    n = 400
    amounts = rng.uniform(0, 1, (n, 4))
    counts = rng.integers(0, 6, (n, 2)).astype(np.float64)
    channel = rng.integers(0, 3, n)
    x = np.concatenate([amounts, counts, np.eye(3)[channel]], axis=1).astype(np.float32)
    score = amounts[:, 0] - amounts[:, 1] + amounts[:, 3] + 0.3 * counts[:, 0]
    score += np.array([0.0, 1.0, -1.0])[channel] - 0.2 * counts[:, 1]
    y = (score > np.median(score)).astype(np.int64)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(9, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    features, labels = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(150):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(features), labels).backward()
        optimiser.step()
    model.eval()
    return Transactions(model, x[:150], y[:150])


def _assert_valid(x_adv: np.ndarray, x: np.ndarray) -> None:
    np.testing.assert_array_equal(x_adv[:, IMMUTABLE], x[:, IMMUTABLE])
    np.testing.assert_array_equal(x_adv[:, INTEGER], np.round(x_adv[:, INTEGER]))
    block = x_adv[:, CHANNEL]
    assert np.isin(block, (0.0, 1.0)).all()
    np.testing.assert_array_equal(block.sum(axis=1), 1.0)
    assert (x_adv >= 0).all()
    assert (x_adv[:, :4] <= 1).all() and (x_adv[:, INTEGER] <= 5).all()


def test_tabular_pgd_is_registered_as_white_box() -> None:
    spec, fn = get_attack("tabular_pgd")
    assert fn is tabular_pgd
    assert spec.white_box
    assert spec.norms == ("linf", "l2")


def test_tabular_pgd_keeps_every_constraint(transactions: Transactions) -> None:
    x, y = transactions.x, transactions.y
    result = tabular_pgd(transactions.target(), x, y, eps=1.0, constraints=RULES)
    assert result.success_rate > 0.5
    _assert_valid(result.x_adv, x)
    assert np.abs(result.x_adv - x).max() <= 1.0 + 1e-6
    # the attack's own outputs were valid: the runner had nothing to repair
    assert result.n_projected == 0
    assert result.threat.constraints is RULES


def test_tabular_pgd_switches_categories_when_the_budget_allows(
    transactions: Transactions,
) -> None:
    x, y = transactions.x, transactions.y
    result = tabular_pgd(transactions.target(), x, y, eps=1.0, constraints=RULES)
    switched = result.x_adv[:, CHANNEL].argmax(axis=1) != x[:, CHANNEL].argmax(axis=1)
    assert switched[result.success].any()


def test_tabular_pgd_never_switches_categories_beyond_the_budget(
    transactions: Transactions,
) -> None:
    x, y = transactions.x, transactions.y
    result = tabular_pgd(transactions.target(), x, y, eps=0.6, constraints=RULES)
    assert result.success.any()
    np.testing.assert_array_equal(result.x_adv[:, CHANNEL], x[:, CHANNEL])
    # nor move a whole count by a rounding that leaves the linf ball
    np.testing.assert_array_equal(result.x_adv[:, INTEGER], x[:, INTEGER])
    _assert_valid(result.x_adv, x)


def test_tabular_pgd_l2_counts_category_switches_in_the_budget(
    transactions: Transactions,
) -> None:
    x, y = transactions.x, transactions.y
    result = tabular_pgd(transactions.target(), x, y, eps=1.6, norm="l2", constraints=RULES)
    assert result.success_rate > 0.5
    _assert_valid(result.x_adv, x)
    norms = np.sqrt(((result.x_adv - x).astype(np.float64) ** 2).sum(axis=1))
    assert norms.max() <= 1.6 * (1 + 1e-5)
    assert result.n_projected == 0


def test_constraints_cost_the_attacker_success(transactions: Transactions) -> None:
    x, y = transactions.x, transactions.y
    free = tabular_pgd(transactions.target(), x, y, eps=0.6)
    bound = tabular_pgd(transactions.target(), x, y, eps=0.6, constraints=RULES)
    assert free.success_rate > bound.success_rate


def test_tabular_pgd_respects_immutable_breast_cancer_features(
    cancer_model: Any, cancer_target: TorchTarget
) -> None:
    x, y = cancer_model.x_test, cancer_model.y_test
    rules = FeatureConstraints.build(immutable=range(5))
    result = tabular_pgd(cancer_target, x, y, eps=0.1, constraints=rules)
    assert result.robust_accuracy < result.clean_accuracy - 0.3
    np.testing.assert_array_equal(result.x_adv[:, :5], x[:, :5])
    assert np.abs(result.x_adv - x).max() <= 0.1 + 1e-6


def test_tabular_pgd_targeted_reaches_the_target_class(transactions: Transactions) -> None:
    x, y = transactions.x, transactions.y
    goal = 1 - y
    result = tabular_pgd(transactions.target(), x, y, eps=1.0, constraints=RULES, y_target=goal)
    assert result.success_rate > 0.5
    np.testing.assert_array_equal(result.predictions[result.success], goal[result.success])


def test_tabular_pgd_reports_progress_in_steps(transactions: Transactions) -> None:
    seen: list[tuple[int, int]] = []
    tabular_pgd(
        transactions.target(),
        transactions.x,
        transactions.y,
        eps=0.3,
        steps=4,
        restarts=2,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[:4] == [(1, 8), (2, 8), (3, 8), (4, 8)]
    assert seen[-1] == (8, 8)


def test_random_restarts_are_deterministic_under_a_seed(transactions: Transactions) -> None:
    x, y = transactions.x, transactions.y
    options: dict[str, Any] = {"eps": 0.5, "constraints": RULES, "steps": 10, "restarts": 3}
    first = tabular_pgd(transactions.target(), x, y, seed=4, **options)
    again = tabular_pgd(transactions.target(), x, y, seed=4, **options)
    np.testing.assert_array_equal(first.x_adv, again.x_adv)
    one = tabular_pgd(transactions.target(), x, y, seed=4, **{**options, "restarts": 1})
    assert first.success.sum() >= one.success.sum()
    _assert_valid(first.x_adv, x)


def test_tabular_pgd_budget_interruption_returns_valid_partial_results(
    transactions: Transactions,
) -> None:
    x, y = transactions.x, transactions.y
    target = transactions.target(query_budget=len(x) * 5)
    result = tabular_pgd(target, x, y, eps=0.6, constraints=RULES)
    assert result.interrupted
    assert result.queries <= len(x) * 5
    assert result.success.any()
    _assert_valid(result.x_adv, x)


def test_tabular_pgd_refuses_images(digits_model: Any, digits_target: TorchTarget) -> None:
    with pytest.raises(InputError, match="flat inputs"):
        tabular_pgd(digits_target, digits_model.x_test[:4], digits_model.y_test[:4], eps=0.1)


def test_tabular_pgd_refuses_black_box_targets(transactions: Transactions) -> None:
    class ScoresOnly(Target):
        def _predict_batch(self, x: np.ndarray) -> np.ndarray:
            return np.full((len(x), 2), 0.5, np.float32)

    with pytest.raises(InputError, match="gradients"):
        tabular_pgd(
            ScoresOnly(n_classes=2, input_shape=(9,), input_range=(0, 5)),
            transactions.x,
            transactions.y,
            eps=0.5,
        )


def test_tabular_pgd_refuses_clean_data_that_breaks_the_constraints(
    transactions: Transactions,
) -> None:
    x = transactions.x.copy()
    x[0, 4] = 2.5
    with pytest.raises(InputError, match="integer"):
        tabular_pgd(transactions.target(), x, transactions.y, eps=0.5, constraints=RULES)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"steps": 0}, "steps"),
        ({"restarts": 0}, "restarts"),
        ({"step_size": -0.1}, "step_size"),
        ({"norm": "l1"}, "norms"),
        ({"eps": float("inf")}, "eps"),
        ({"eps": "large"}, "eps"),
        ({"constraints": {"immutable": [3]}}, "FeatureConstraints"),
        ({"constraints": FeatureConstraints.build(immutable=[12])}, "index"),
    ],
)
def test_tabular_pgd_rejects_nonsense_parameters(
    transactions: Transactions, options: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"eps": 0.5, **options}
    with pytest.raises(InputError, match=message):
        tabular_pgd(transactions.target(), transactions.x, transactions.y, **arguments)
