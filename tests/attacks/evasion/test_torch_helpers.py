"""The torch pieces white-box attacks share: losses, balls, projections and steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlwarden.attacks.evasion._torch import (
    check_count,
    check_loss,
    check_positive,
    dlr_loss,
    margin_loss,
    objective,
    project_l1_ball,
    project_threat,
    random_in_ball,
    sparse_l1_direction,
    targeted_dlr_loss,
)
from mlwarden.errors import InputError


def l1_projection_by_sorting(v: np.ndarray, eps: float) -> np.ndarray:
    """Duchi et al.'s projection, one sample at a time, in float64."""
    if np.abs(v).sum() <= eps:
        return v
    u = np.sort(np.abs(v))[::-1]
    cumulative = np.cumsum(u)
    rho = max(j for j in range(1, len(u) + 1) if u[j - 1] > (cumulative[j - 1] - eps) / j)
    theta = (cumulative[rho - 1] - eps) / rho
    return np.asarray(np.sign(v) * np.maximum(np.abs(v) - theta, 0.0))


def l1_projection_by_bisection(v: np.ndarray, eps: float) -> np.ndarray:
    """The same projection found by bisection on the soft threshold: no sorting at all."""
    if np.abs(v).sum() <= eps:
        return v
    low, high = 0.0, float(np.abs(v).max())
    for _ in range(200):
        theta = (low + high) / 2
        if np.maximum(np.abs(v) - theta, 0.0).sum() > eps:
            low = theta
        else:
            high = theta
    return np.asarray(np.sign(v) * np.maximum(np.abs(v) - high, 0.0))


def norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1).double()
    if norm == "linf":
        size: torch.Tensor = flat.abs().amax(dim=1)
    elif norm == "l2":
        size = flat.norm(dim=1)
    else:
        size = flat.abs().sum(dim=1)
    return size


def test_l1_projection_matches_sorting_and_bisection_references() -> None:
    rng = np.random.default_rng(0)
    v = (rng.standard_normal((40, 3, 5)) * rng.uniform(0.1, 3, (40, 1, 1))).astype(np.float32)
    eps = 4.0
    projected = project_l1_ball(torch.from_numpy(v), eps).double().numpy()
    for row, got in zip(v.astype(np.float64), projected, strict=True):
        flat = row.ravel()
        np.testing.assert_allclose(got.ravel(), l1_projection_by_sorting(flat, eps), atol=1e-5)
        np.testing.assert_allclose(got.ravel(), l1_projection_by_bisection(flat, eps), atol=1e-5)
    assert np.abs(projected).reshape(40, -1).sum(axis=1).max() <= eps * (1 + 1e-6)


def test_l1_projection_leaves_points_inside_the_ball_unchanged() -> None:
    inside = torch.tensor([[0.5, -0.25, 0.0], [1.0, 0.0, 0.0]])
    assert torch.equal(project_l1_ball(inside, 1.0), inside)


def test_l1_projection_onto_a_zero_ball_is_zero() -> None:
    assert torch.equal(project_l1_ball(torch.ones(2, 4), 0.0), torch.zeros(2, 4))


def test_random_linf_starts_fill_the_cube_without_leaving_it() -> None:
    noise = random_in_ball(torch.zeros(500, 1, 6, 6), "linf", 0.3, torch.Generator().manual_seed(0))
    size = norms(noise, "linf")
    assert float(size.max()) <= 0.3
    # uniform in a 36-dimensional cube: some coordinate is almost always near a face
    assert float(size.median()) > 0.9 * 0.3
    assert float(noise.flatten(1).std(dim=0).min()) > 0


@pytest.mark.parametrize(("norm", "eps"), [("l2", 2.0), ("l1", 5.0)])
def test_random_l2_and_l1_starts_spread_over_the_radii_in_every_direction(
    norm: str, eps: float
) -> None:
    noise = random_in_ball(torch.zeros(2000, 1, 6, 6), norm, eps, torch.Generator().manual_seed(0))
    size = norms(noise, norm)
    assert float(size.max()) <= eps * (1 + 1e-5)
    # radius uniform in [0, eps], not in volume (which would put nearly all of them at the
    # surface of a 36-dimensional ball)
    quartiles = torch.quantile(size.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.double))
    assert torch.allclose(
        quartiles, torch.tensor([0.25, 0.5, 0.75], dtype=torch.double) * eps, atol=0.05 * eps
    )
    # every coordinate moves, both ways
    flat = noise.flatten(1)
    assert float(flat.std(dim=0).min()) > 0
    assert bool(((flat > 0).any(dim=0) & (flat < 0).any(dim=0)).all())


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.1), ("l2", 0.5), ("l1", 2.0)])
def test_project_threat_lands_inside_the_ball_and_the_range(norm: str, eps: float) -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(50, 1, 6, 6, generator=generator)
    wild = x + 3 * torch.randn(50, 1, 6, 6, generator=generator)
    projected = project_threat(wild, x, norm, eps, 0.0, 1.0)
    assert float(projected.min()) >= 0 and float(projected.max()) <= 1
    assert float(norms(projected - x, norm).max()) <= eps * (1 + 1e-5)
    # a point already inside stays where it is
    assert torch.allclose(project_threat(projected, x, norm, eps, 0.0, 1.0), projected, atol=1e-6)


def test_sparse_l1_direction_has_unit_l1_norm_and_moves_only_top_coordinates() -> None:
    g = torch.tensor([[0.1, -5.0, 3.0, 0.2, -0.05, 4.0, 0.0, 1.0, -2.0, 0.3]])
    x = torch.full_like(g, 0.5)
    direction = sparse_l1_direction(g, x, 0.0, 1.0, quantile=0.7)
    assert torch.equal(direction.nonzero()[:, 1], torch.tensor([1, 2, 5]))
    assert torch.allclose(direction.abs().sum(), torch.tensor(1.0))
    assert torch.equal(direction[0, [1, 2, 5]].sign(), torch.tensor([-1.0, 1.0, 1.0]))


def test_sparse_l1_direction_ignores_coordinates_pinned_at_the_range() -> None:
    g = torch.tensor([[5.0, -4.0, 1.0, 0.5]])
    x = torch.tensor([[1.0, 0.0, 0.5, 0.5]])  # the two largest gradients push out of [0, 1]
    direction = sparse_l1_direction(g, x, 0.0, 1.0, quantile=0.75)
    assert torch.equal(direction, torch.tensor([[0.0, 0.0, 1.0, 0.0]]))


def test_margin_loss_is_positive_exactly_when_the_label_lost() -> None:
    logits = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.0, 4.0]])
    labels = torch.tensor([0, 0, 2])
    assert torch.allclose(margin_loss(logits, labels), torch.tensor([-2.0, 1.0, -4.0]))


def test_dlr_is_invariant_to_shifting_and_scaling_the_logits() -> None:
    logits = torch.randn(20, 10, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(20) % 10
    wanted = (labels + 3) % 10
    for loss in (dlr_loss(logits, labels), targeted_dlr_loss(logits, labels, wanted)):
        assert loss.abs().max() > 0
    assert torch.allclose(dlr_loss(7 * logits - 3, labels), dlr_loss(logits, labels), atol=1e-5)
    assert torch.allclose(
        targeted_dlr_loss(7 * logits + 1, labels, wanted),
        targeted_dlr_loss(logits, labels, wanted),
        atol=1e-5,
    )


def test_dlr_falls_back_to_the_margin_with_two_classes() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.0, 1.5]])
    labels = torch.tensor([0, 0])
    assert torch.equal(dlr_loss(logits, labels), margin_loss(logits, labels))
    assert torch.equal(
        targeted_dlr_loss(logits, labels, torch.tensor([1, 1])), torch.tensor([-3.0, 1.5])
    )


@pytest.mark.parametrize("loss", ["ce", "dlr", "margin"])
def test_objectives_grow_as_the_attack_succeeds(loss: str) -> None:
    labels, wanted = torch.tensor([0]), torch.tensor([1])
    confident = torch.tensor([[5.0, 0.0, 0.0, -1.0]])
    fooled = torch.tensor([[0.0, 5.0, 0.0, -1.0]])
    name = check_loss(loss)
    assert objective(name, fooled, labels, None) > objective(name, confident, labels, None)
    assert objective(name, fooled, labels, wanted) > objective(name, confident, labels, wanted)


def test_parameter_checks_reject_nonsense_with_the_parameter_name() -> None:
    assert check_count(3, "steps") == 3
    assert check_positive(None, "step_size") is None
    assert check_positive(0, "overshoot", allow_zero=True) == 0.0
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(InputError, match="steps"):
            check_count(bad, "steps")  # type: ignore[arg-type]
    for value in (0.0, -1.0, float("nan"), float("inf"), "fast"):
        with pytest.raises(InputError, match="step_size"):
            check_positive(value, "step_size")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="ce, dlr, margin"):
        check_loss("hinge")
