"""FGSM / FGM (Goodfellow et al. 2015): one gradient step of size eps. Fast, weak, a baseline.

One forward and backward pass per sample, at the clean inputs: its logits are also the clean
predictions the runner needs, and the step it gives is left to the runner's verification (one
forward pass) to judge. Not for: measuring robustness (use PGD or the `standard` suite); it is
here because it is the cheapest sanity check and the first thing users try.
"""

from __future__ import annotations

import numpy as np
import torch

from mlwarden.attacks.evasion._torch import batches, clean_pass, labels_tensor, lp_normalise
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
    name="fgsm", title="FGSM", white_box=True, norms=("linf", "l2", "l1"), clean_pass=True
)


def _fgsm(state: AttackState, target: WhiteBoxTarget, /) -> None:
    eps = float(state.threat.eps or 0.0)
    low, high = state.threat.input_range
    step = -eps if state.targeted else eps
    for index in batches(state, target):
        x, logits = clean_pass(state, target, index)
        goal = labels_tensor(state.goal[index], target)
        loss = torch.nn.functional.cross_entropy(logits, goal, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
        direction = lp_normalise(grad, state.threat.norm)
        # x is this batch's own copy of the clean inputs: stepping in place is safe
        x_adv = x.detach().add_(direction, alpha=step).clamp_(low, high)
        state.propose(index, x_adv.cpu().numpy())
        state.tick(int(index[-1]) + 1, len(state.x))


@register_attack(SPEC)
def fgsm(
    target: Target,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float,
    norm: Norm = "linf",
    y_target: np.ndarray | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> AttackResult:
    """One signed-gradient step.

    Args:
        target: a white-box target (`mlwarden.target(torch_model, ...)`).
        x: clean inputs ``(n, *input_shape)`` inside the target's input range.
        y: true labels ``(n,)``.
        eps: perturbation budget in input units under `norm` (e.g. 8/255 for linf on [0, 1]).
        norm: ``linf``, ``l2`` or ``l1``.
        y_target: labels to reach for a targeted attack; None for untargeted.
        seed: unused (FGSM is deterministic); kept for a uniform signature.
        progress: ``progress(done, total)`` callback in samples.
    """
    return run_attack(
        _fgsm,
        SPEC,
        target,
        x,
        y,
        eps=eps,
        norm=norm,
        y_target=y_target,
        seed=seed,
        progress=progress,
    )
