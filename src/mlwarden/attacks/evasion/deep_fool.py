"""DeepFool (Moosavi-Dezfooli et al. 2016): walk to the nearest linearised decision boundary.

At each step the model is linearised around the current point; among the top ``candidates``
classes, the one whose boundary with the true class is nearest (under L2, or under Linf through
the dual L1 norm of the gradients) is chosen and the point jumps just past it. Fast and
minimum-norm, with no eps to tune: ``eps=None`` gives each sample's smallest perturbation found
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


def _deepfool(
    state: AttackState,
    target: WhiteBoxTarget,
    /,
    *,
    steps: int,
    overshoot: float,
    candidates: int,
) -> None:
    n = len(state.x)
    total = steps * n
    done = steps * int(state.found.sum())
    count = min(candidates, target.n_classes)
    for index in batches(state, target):
        _attack_batch(state, target, index, steps, overshoot, count, done, total)
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
        y_target: must be None: DeepFool is untargeted; kept for a uniform signature.
        seed: unused (the attack is deterministic); kept for a uniform signature.
        progress: ``progress(done, total)`` callback in sample-steps.
    """
    params = {
        "steps": check_count(steps, "steps"),
        "overshoot": check_positive(overshoot, "overshoot", allow_zero=True),
        "candidates": check_count(candidates, "candidates", minimum=2),
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
