"""PGD (Madry et al. 2018): projected gradient ascent on a loss inside an eps ball.

Linf, L2 and L1 balls (L1 with the sparse steps of Tramer & Boneh 2019 and an exact projection),
random starts and restarts, cross-entropy, DLR or margin loss, targeted or not. Samples retire
from the batch as soon as they are adversarial (``early_stop``), so a run costs less than
``steps`` gradient passes per sample. Not for: parameter-free evaluation (APGD in `auto_pgd`
adapts its step size) or minimum-norm questions (`carlini_wagner`, `deep_fool`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mlwarden.attacks.evasion._torch import (
    Loss,
    batches,
    check_count,
    check_loss,
    check_positive,
    generator,
    hits,
    labels_tensor,
    objective,
    per_sample,
    project_threat,
    random_in_ball,
    sparse_l1_direction,
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
from mlwarden.errors import InputError
from mlwarden.targets.base import Target, WhiteBoxTarget

SPEC = AttackSpec(name="pgd", title="PGD", white_box=True, norms=("linf", "l2", "l1"))

STEP_SIZE_PER_EPS: dict[str, float] = {"linf": 2.5, "l2": 2.5, "l1": 10.0}
"""Default step size is ``factor * eps / steps``. Linf and l2: 2.5 (Madry et al.), enough to
cross the ball from any start with room to spare. L1: each sparse step lands on a few
coordinates and the projection onto the ball takes much of it back, so longer steps pay (on
the digits models, 10 beat 2.5 and matched 5 to 40)."""


@dataclass(frozen=True)
class _Settings:
    steps: int
    step_size: float
    early_stop: bool
    loss: Loss
    l1_quantile: float


def _pgd(
    state: AttackState,
    target: WhiteBoxTarget,
    /,
    *,
    steps: int,
    step_size: float | None,
    restarts: int,
    random_start: bool,
    early_stop: bool,
    loss: Loss,
    l1_quantile: float,
) -> None:
    eps = float(state.threat.eps or 0.0)
    factor = STEP_SIZE_PER_EPS[state.threat.norm]
    size = step_size if step_size is not None else factor * eps / steps
    settings = _Settings(steps, size, early_stop, loss, l1_quantile)
    n = len(state.x)
    total = restarts * steps * n
    for restart in range(restarts):
        noise = generator(state, restart) if random_start or restart > 0 else None
        todo = np.flatnonzero(~state.found)
        done = restart * steps * n + steps * (n - len(todo))
        for index in batches(state, target):
            _attack_batch(state, target, index, settings, noise, done, total)
            done += steps * len(index)
        state.tick(min(done, total), total)


@dataclass
class _Active:
    """The samples of one batch still under attack, row-aligned."""

    rows: torch.Tensor
    """Position of each sample in the batch."""
    x0: torch.Tensor
    labels: torch.Tensor
    goal: torch.Tensor
    found: torch.Tensor
    """Already recorded as adversarial (only matters without early stop)."""
    box: tuple[torch.Tensor, torch.Tensor] | None
    """Linf only: the intersection of the ball and the input range, as lower and upper bounds."""

    def keep(self, mask: torch.Tensor) -> _Active:
        """The same samples restricted to the rows in `mask`."""
        box = None if self.box is None else (self.box[0][mask], self.box[1][mask])
        return _Active(
            self.rows[mask],
            self.x0[mask],
            self.labels[mask],
            self.goal[mask],
            self.found[mask],
            box,
        )


def _attack_batch(
    state: AttackState,
    target: WhiteBoxTarget,
    index: np.ndarray,
    settings: _Settings,
    noise: torch.Generator | None,
    done: int,
    total: int,
) -> None:
    threat = state.threat
    norm, eps = threat.norm, float(threat.eps or 0.0)
    low, high = threat.input_range
    x0 = to_tensor(state.x[index], target)
    box = None
    if norm == "linf":
        box = ((x0 - eps).clamp_(low, high), (x0 + eps).clamp_(low, high))
    batch = _Active(
        rows=torch.arange(len(index), device=x0.device),
        x0=x0,
        labels=labels_tensor(state.y[index], target),
        goal=labels_tensor(state.goal[index], target),
        found=torch.zeros(len(index), dtype=torch.bool, device=x0.device),
        box=box,
    )
    if noise is not None:
        start = x0 + random_in_ball(x0, norm, eps, noise)
        x_adv = project_threat(start, x0, norm, eps, low, high)
    else:
        x_adv = x0.clone()
    x_adv.requires_grad_(True)
    for step in range(settings.steps + 1):
        last = step == settings.steps
        with torch.set_grad_enabled(not last):
            logits = target.logits(x_adv)
        with torch.no_grad():
            hit = hits(logits.argmax(dim=1), batch.goal, targeted=state.targeted)
            new = hit & ~batch.found
            if bool(new.any()):
                chosen = batch.rows[new].cpu().numpy()
                state.record(index[chosen], x_adv.detach()[new].cpu().numpy())
                batch.found |= new
        if last or (settings.early_stop and bool(hit.all())):
            return
        wanted = batch.goal if state.targeted else None
        value = objective(settings.loss, logits, batch.labels, wanted).sum()
        (grad,) = torch.autograd.grad(value, x_adv)
        with torch.no_grad():
            if settings.early_stop and bool(hit.any()):
                batch, grad = batch.keep(~hit), grad[~hit]
                x_adv = x_adv.detach()[~hit].requires_grad_(True)
            _ascend(x_adv, grad, batch, settings, norm, eps, (low, high))
        state.tick(done + (step + 1) * len(index), total)


def _ascend(
    x_adv: torch.Tensor,
    grad: torch.Tensor,
    batch: _Active,
    settings: _Settings,
    norm: str,
    eps: float,
    bounds: tuple[float, float],
) -> None:
    """One projected step, in place on `x_adv` (the gradient buffer `grad` is consumed)."""
    if batch.box is not None:
        x_adv.add_(grad.sign_(), alpha=settings.step_size)
        torch.maximum(x_adv, batch.box[0], out=x_adv)
        torch.minimum(x_adv, batch.box[1], out=x_adv)
        return
    low, high = bounds
    if norm == "l2":
        length = grad.flatten(1).norm(dim=1).clamp_min_(1e-12)
        direction = grad.div_(per_sample(length, grad))
    else:
        direction = sparse_l1_direction(grad, x_adv, low, high, settings.l1_quantile)
    x_adv.add_(direction, alpha=settings.step_size)
    x_adv.copy_(project_threat(x_adv, batch.x0, norm, eps, low, high))


@register_attack(SPEC)
def pgd(
    target: Target,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float,
    norm: Norm = "linf",
    steps: int = 40,
    step_size: float | None = None,
    restarts: int = 1,
    random_start: bool = True,
    early_stop: bool = True,
    loss: Loss = "ce",
    l1_quantile: float = 0.99,
    y_target: np.ndarray | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> AttackResult:
    """Projected gradient ascent on `loss` inside the `norm` ball of radius `eps`.

    Args:
        target: a white-box target (`mlwarden.target(torch_model, ...)`).
        x: clean inputs ``(n, *input_shape)`` inside the target's input range.
        y: true labels ``(n,)``.
        eps: perturbation budget in input units under `norm` (e.g. 8/255 for linf on [0, 1]).
        norm: ``linf``, ``l2`` or ``l1``.
        steps: gradient steps per restart, >= 1 (40, as Madry et al. and foolbox).
        step_size: length of one step in input units under `norm`; None for
            ``2.5 * eps / steps`` (linf, l2) or ``10 * eps / steps`` (l1).
        restarts: runs per sample, >= 1; each run after the first starts from a uniformly random
            point of the ball, and only samples not yet fooled run again.
        random_start: start the first run from a random point of the ball instead of `x`.
        early_stop: retire a sample from the batch as soon as it is adversarial (faster; the
            result is the same adversarial input). False runs every sample every step.
        loss: ``ce`` (cross-entropy), ``dlr`` (difference of logits ratio, Croce & Hein 2020)
            or ``margin`` (logit margin, Carlini & Wagner).
        l1_quantile: for ``l1``, the fraction in [0, 1) of coordinates left still by a step:
            only gradients at or above this quantile move (0.99: the top 1%).
        y_target: labels to reach for a targeted attack; None for untargeted.
        seed: seeds the random starts.
        progress: ``progress(done, total)`` callback in sample-steps.
    """
    params = {
        "steps": check_count(steps, "steps"),
        "step_size": check_positive(step_size, "step_size"),
        "restarts": check_count(restarts, "restarts"),
        "random_start": bool(random_start),
        "early_stop": bool(early_stop),
        "loss": check_loss(loss),
        "l1_quantile": _check_quantile(l1_quantile),
    }
    return run_attack(
        _pgd,
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


def _check_quantile(value: float) -> float:
    number = check_positive(value, "l1_quantile", allow_zero=True)
    if number is None or number >= 1:
        raise InputError(f"l1_quantile must lie in [0, 1), got {value!r}")
    return number
