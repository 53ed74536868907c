"""FGSM / FGM (Goodfellow et al. 2015): one gradient step of size eps. Fast, weak, a baseline.

Not for: measuring robustness (use PGD or the `standard` suite); it is here because it is the
cheapest sanity check and the first thing users try.
"""

from __future__ import annotations

import numpy as np
import torch

from mlwarden.attacks.evasion._torch import batches, lp_normalise, to_tensor
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

SPEC = AttackSpec(name="fgsm", title="FGSM", white_box=True, norms=("linf", "l2", "l1"))


def _fgsm(state: AttackState, target: WhiteBoxTarget, /) -> None:
    eps = float(state.threat.eps or 0.0)
    low, high = state.threat.input_range
    sign = -1.0 if state.targeted else 1.0
    for index in batches(state, target):
        x = to_tensor(state.x[index], target).requires_grad_(True)
        goal = torch.from_numpy(state.goal[index]).to(target.device)
        loss = torch.nn.functional.cross_entropy(target.logits(x), goal, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
        x_adv = (x.detach() + sign * eps * lp_normalise(grad, state.threat.norm)).clamp(low, high)
        with torch.no_grad():
            predictions = target.logits(x_adv).argmax(dim=1).cpu().numpy()
        fooled = state.is_adversarial(predictions, index)
        state.record(index[fooled], x_adv.cpu().numpy()[fooled])
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
