"""DeepFool (Moosavi-Dezfooli et al. 2016): walk to the nearest linearised decision boundary.

At each step the model is linearised around the current point; among the top ``candidates``
classes, the one whose boundary with the true class is nearest (under L2, or under Linf through
the dual L1 norm of the gradients) is chosen and the point jumps just past it. A few forward
passes then shrink each result along its own direction back toward the boundary (`pull_back`),
which the overshoot and curved boundaries leave it past. Fast and minimum-norm, with no eps to
tune: ``eps=None`` gives each sample's smallest perturbation found
(`AttackResult.minimal_norms`). Untargeted only. Not for: a fixed budget (PGD) or the smallest
L2 perturbation at any cost (C&W, which usually finds smaller ones).
"""

from __future__ import annotations

import numpy as np
import torch

from mlwarden.attacks.evasion._torch import (
    batches,
    check_count,
    check_positive,
    labels_tensor,
    per_sample,
    to_tensor,
)
from mlwarden.attacks.evasion.base import (
    AttackResult,
    AttackSpec,
    AttackState,
    Norm,
    ProgressFn,
    register_attack,
    run_attack,
)
from mlwarden.targets.base import Target, WhiteBoxTarget

SPEC = AttackSpec(
    name="deepfool",
    title="DeepFool",
    white_box=True,
    norms=("l2", "linf"),
    minimum_norm=True,
    targeted=False,
)

STEP_SLACK = 1e-4
"""Added to each step's distance (input units) so a step lands past the boundary, not on it."""
NORM_FLOOR = 1e-8
PULL_BACK_STEPS = 5
"""Forward passes spent per batch walking each result back toward its clean input (see
`_pull_back`)."""


def _deepfool(
    state: AttackState,
    target: WhiteBoxTarget,
    /,
    *,
    steps: int,
    overshoot: float,
    candidates: int,
    pull_back: bool,
) -> None:
    n = len(state.x)
    total = steps * n
    done = steps * int(state.found.sum())
    count = min(candidates, target.n_classes)
    for index in batches(state, target):
        _attack_batch(state, target, index, steps, overshoot, count, done, total)
        if pull_back:
            _pull_back(state, target, index, overshoot)
        done += steps * len(index)
    state.tick(total, total)


def _attack_batch(
    state: AttackState,
    target: WhiteBoxTarget,
    index: np.ndarray,
    steps: int,
    overshoot: float,
    count: int,
    done: int,
    total: int,
) -> None:
    low, high = state.threat.input_range
    norm = state.threat.norm
    x0 = to_tensor(state.x[index], target)
    labels = labels_tensor(state.y[index], target)
    rows = torch.arange(len(index), device=x0.device)
    x = x0.clone()
    walked = torch.zeros_like(x0)
    rivals: torch.Tensor | None = None
    for step in range(steps + 1):
        last = step == steps
        x.requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            logits = target.logits(x)
        if rivals is None:
            # the classes to consider are fixed once, from the clean logits
            others = logits.detach().scatter(1, labels[:, None], float("-inf"))
            rivals = others.topk(count - 1, dim=1).indices
        with torch.no_grad():
            fooled = logits.argmax(dim=1) != labels
            if bool(fooled.any()):
                chosen = index[rows[fooled].cpu().numpy()]
                state.record_smaller(chosen, x.detach()[fooled].cpu().numpy())
        if last or bool(fooled.all()):
            return
        direction = _nearest_boundary_step(logits, x, labels, rivals, norm)
        with torch.no_grad():
            alive = ~fooled
            walked = walked[alive] + direction[alive]
            x0, labels, rivals, rows = x0[alive], labels[alive], rivals[alive], rows[alive]
            x = (x0 + (1 + overshoot) * walked).clamp_(low, high)
        state.tick(done + (step + 1) * len(index), total)


def _pull_back(
    state: AttackState, target: WhiteBoxTarget, index: np.ndarray, overshoot: float
) -> None:
    """Shrink each fooled sample's perturbation toward the boundary along its own direction.

    The overshoot carries the last linearised step past the boundary by a fraction of the
    whole perturbation, and a linearised step can land well past a curved boundary. This tries
    the perturbation scaled by ``1 / (1 + overshoot)`` (the walk without the overshoot), then
    bisects below that scale where it is adversarial, above it where it is not. The smallest
    adversarial scale found is recorded; `PULL_BACK_STEPS` forward passes.
    """
    norms = state.best_norm[index]
    done = index[(norms > 0) & np.isfinite(norms)]
    if len(done) == 0:
        return
    x0 = to_tensor(state.x[done], target)
    delta = to_tensor(state.best[done], target) - x0
    labels = labels_tensor(state.y[done], target)

    def fooled_at(scale: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits = target.logits(x0 + per_sample(scale, delta) * delta)
        return logits.argmax(dim=1) != labels

    without = torch.full((len(done),), 1 / (1 + overshoot), device=x0.device)
    # fooled without the overshoot: the boundary lies below that scale (a linearised step can
    # land well past a curved boundary); otherwise between it and the full perturbation
    fooled = fooled_at(without)
    low = torch.where(fooled, torch.zeros_like(without), without)
    high = torch.where(fooled, without, torch.ones_like(without))
    for _ in range(PULL_BACK_STEPS - 1):
        middle = (low + high) / 2
        fooled = fooled_at(middle)
        high = torch.where(fooled, middle, high)
        low = torch.where(fooled, low, middle)
    # every scale below 1 in `high` was checked adversarial by a forward pass
    shrunk = high < 1
    if bool(shrunk.any()):
        x = x0[shrunk] + per_sample(high[shrunk], delta[shrunk]) * delta[shrunk]
        state.record_smaller(done[shrunk.cpu().numpy()], x.cpu().numpy())


def _nearest_boundary_step(
    logits: torch.Tensor,
    x: torch.Tensor,
    labels: torch.Tensor,
    rivals: torch.Tensor,
    norm: str,
) -> torch.Tensor:
    """The step onto the nearest linearised boundary between the label and a rival class.

    One backward pass per rival through the same graph; only the nearest rival's gradient is
    kept, so memory stays at one gradient per sample.
    """
    gaps = logits.gather(1, rivals) - logits.gather(1, labels[:, None])
    best_distance = torch.full((len(x),), float("inf"), device=x.device)
    best_grad = torch.zeros_like(x)
    best_scale = torch.ones(len(x), device=x.device)
    # distances to a linear boundary are measured in the dual norm of its normal
    dual = 1 if norm == "linf" else 2
    for j in range(rivals.shape[1]):
        (grad,) = torch.autograd.grad(gaps[:, j].sum(), x, retain_graph=j < rivals.shape[1] - 1)
        with torch.no_grad():
            size = grad.flatten(1).norm(p=dual, dim=1) + NORM_FLOOR
            distance = gaps[:, j].detach().abs() / size
            nearer = distance < best_distance
            best_distance = torch.where(nearer, distance, best_distance)
            best_grad[nearer] = grad[nearer]
            best_scale = torch.where(nearer, size, best_scale)
    reach = per_sample(best_distance + STEP_SLACK, x)
    if norm == "linf":
        return reach * best_grad.sign()
    return reach * best_grad / per_sample(best_scale, x)


@register_attack(SPEC)
def deepfool(
    target: Target,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float | None = None,
    norm: Norm = "l2",
    steps: int = 50,
    overshoot: float = 0.02,
    candidates: int = 10,
    pull_back: bool = True,
    y_target: np.ndarray | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> AttackResult:
    """The smallest perturbation DeepFool's linearised steps find (untargeted).

    Args:
        target: a white-box target (`mlwarden.target(torch_model, ...)`).
        x: clean inputs ``(n, *input_shape)`` inside the target's input range.
        y: true labels ``(n,)``.
        eps: budget in input units under `norm`, or None (default) for unbounded: the result
            then gives the minimal perturbation per sample (`minimal_norms()`).
        norm: ``l2`` or ``linf``.
        steps: linearisation steps at most, >= 1; a sample stops as soon as it is fooled.
        overshoot: relative distance to go past the boundary, >= 0 (0.02: 2%).
        candidates: how many of the most likely classes (the true one included) to consider,
            >= 2; capped at the number of classes. Each step costs one backward pass per
            candidate.
        pull_back: after the walk, spend 5 forward passes per sample shrinking each
            perturbation along its own direction toward the boundary (the walk's last step,
            with the overshoot, lands past it); only smaller inputs checked adversarial are
            kept. False gives the walk's result as in the paper.
        y_target: must be None: DeepFool is untargeted; kept for a uniform signature.
        seed: unused (the attack is deterministic); kept for a uniform signature.
        progress: ``progress(done, total)`` callback in sample-steps.
    """
    params = {
        "steps": check_count(steps, "steps"),
        "overshoot": check_positive(overshoot, "overshoot", allow_zero=True),
        "candidates": check_count(candidates, "candidates", minimum=2),
        "pull_back": bool(pull_back),
    }
    return run_attack(
        _deepfool,
        SPEC,
        target,
        x,
        y,
        eps=eps,
        norm=norm,
        y_target=y_target,
        seed=seed,
        progress=progress,
        params=params,
    )
