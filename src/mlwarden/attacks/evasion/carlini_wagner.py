"""Carlini & Wagner L2 (2017): the smallest L2 perturbation found by optimisation.

Minimises ``||x' - x||_2^2 + c * max(margin + kappa, 0)`` with Adam over a tanh change of
variables that keeps ``x'`` inside the input range, and binary-searches the trade-off constant
``c`` per sample. Every iterate that is adversarial with a smaller perturbation than the best so
far is recorded at once, so the result is the smallest adversarial input seen and an interrupted
run keeps what it found. Minimum-norm: with ``eps=None`` one run answers robust accuracy at every
eps (`AttackResult.robust_accuracy_at`). Not for: a fixed budget at the lowest cost (PGD), or
other norms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mlwarden.attacks.evasion._torch import (
    batches,
    check_count,
    check_positive,
    labels_tensor,
    margin_loss,
    to_tensor,
)
from mlwarden.attacks.evasion.base import (
    AttackResult,
    AttackSpec,
    AttackState,
    ProgressFn,
    register_attack,
    run_attack,
)
from mlwarden.targets.base import Target, WhiteBoxTarget

SPEC = AttackSpec(name="cw", title="C&W L2", white_box=True, norms=("l2",), minimum_norm=True)

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
TANH_LIMIT = 1 - 1e-6
"""Clean inputs on the edge of the range map to atanh of this, not to infinity."""
UNBOUNDED_CONST = 1e10
ABORT_CHECKS = 10
"""With early abort, the loss is checked this many times per binary-search step."""
ABORT_TOLERANCE = 0.9999
"""A check aborts the step when the loss did not fall below this fraction of the last check."""


@dataclass(frozen=True)
class _Settings:
    steps: int
    binary_search_steps: int
    initial_const: float
    confidence: float
    learning_rate: float
    abort_early: bool


def _cw(
    state: AttackState,
    target: WhiteBoxTarget,
    /,
    *,
    steps: int,
    binary_search_steps: int,
    initial_const: float,
    confidence: float,
    learning_rate: float,
    abort_early: bool,
) -> None:
    settings = _Settings(
        steps, binary_search_steps, initial_const, confidence, learning_rate, abort_early
    )
    n = len(state.x)
    total = binary_search_steps * n
    done = binary_search_steps * int(state.found.sum())
    for index in batches(state, target):
        _attack_batch(state, target, index, settings, done, total)
        done += binary_search_steps * len(index)
    state.tick(total, total)


def _attack_batch(
    state: AttackState,
    target: WhiteBoxTarget,
    index: np.ndarray,
    settings: _Settings,
    done: int,
    total: int,
) -> None:
    low, high = state.threat.input_range
    middle, half = (high + low) / 2, (high - low) / 2
    x0 = to_tensor(state.x[index], target)
    goal = labels_tensor(state.goal[index], target)
    w_clean = torch.atanh(((x0 - middle) / half).clamp(-TANH_LIMIT, TANH_LIMIT))
    n = len(index)
    const = torch.full((n,), settings.initial_const, device=x0.device)
    lower = torch.zeros(n, device=x0.device)
    upper = torch.full((n,), UNBOUNDED_CONST, device=x0.device)
    best = torch.full((n,), math.inf, device=x0.device)
    start = w_clean.clone()
    for search_step in range(settings.binary_search_steps):
        succeeded = _optimise(state, target, index, settings, x0, goal, start, const, best)
        # a sample not fooled yet continues from where it got to (with a larger c) instead of
        # starting over from the clean input: at few steps per search step, restarting throws
        # away the progress through the flat edges of tanh; fooled ones restart from clean to
        # look for a smaller perturbation
        start = torch.where(_per_row(succeeded, start), w_clean, start)
        upper = torch.where(succeeded, torch.minimum(upper, const), upper)
        lower = torch.where(succeeded, lower, torch.maximum(lower, const))
        bounded = upper < UNBOUNDED_CONST
        const = torch.where(bounded, (lower + upper) / 2, const * 10)
        state.tick(done + (search_step + 1) * n, total)


def _optimise(
    state: AttackState,
    target: WhiteBoxTarget,
    index: np.ndarray,
    settings: _Settings,
    x0: torch.Tensor,
    goal: torch.Tensor,
    w_clean: torch.Tensor,
    const: torch.Tensor,
    best: torch.Tensor,
) -> torch.Tensor:
    """One binary-search step of Adam from `w_clean` (the clean input, or where a sample's
    previous step ended); which samples it fooled. `w_clean` is updated in place to where each
    sample's search ends.

    Updates `best` (squared L2 of the best adversarial input per sample) and records every
    improvement in `state`. With early abort, a sample whose loss stopped falling leaves the
    batch for the rest of the step, so converged samples cost nothing.
    """
    low, high = state.threat.input_range
    middle, half = (high + low) / 2, (high - low) / 2
    w = w_clean.clone()
    final = w_clean  # updated in place below: where each sample's search ended
    first, second = torch.zeros_like(w), torch.zeros_like(w)
    beta1, beta2 = ADAM_BETAS
    rows = torch.arange(len(index), device=x0.device)
    succeeded = torch.zeros(len(index), dtype=torch.bool, device=x0.device)
    previous = torch.full((len(index),), math.inf, device=x0.device)
    check_every = max(settings.steps // ABORT_CHECKS, 1)
    for step in range(1, settings.steps + 1):
        w.requires_grad_(True)
        x = torch.tanh(w) * half + middle
        logits = target.logits(x)
        distance = (x - x0).flatten(1).pow(2).sum(dim=1)
        lead = _lead(logits, goal, targeted=state.targeted)
        loss = distance + const * (settings.confidence - lead).clamp_min(0)
        (grad,) = torch.autograd.grad(loss.sum(), w)
        with torch.no_grad():
            w = w.detach()
            adversarial = lead > settings.confidence
            succeeded[rows[adversarial]] = True
            improved = adversarial & (distance < best[rows])
            if bool(improved.any()):
                best[rows[improved]] = distance[improved]
                chosen = index[rows[improved].cpu().numpy()]
                state.record_smaller(chosen, x.detach()[improved].cpu().numpy())
            first.mul_(beta1).add_(grad, alpha=1 - beta1)
            second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            scale = settings.learning_rate * math.sqrt(1 - beta2**step) / (1 - beta1**step)
            w.addcdiv_(first, second.sqrt().add_(ADAM_EPS), value=-scale)
            final[rows] = w
            if settings.abort_early and step % check_every == 0:
                value = loss.detach()
                going = value <= previous * ABORT_TOLERANCE
                if not bool(going.any()):
                    break
                previous = value
                if not bool(going.all()):
                    w, first, second, x0, goal, const, rows, previous = (
                        t[going] for t in (w, first, second, x0, goal, const, rows, previous)
                    )
    return succeeded


def _per_row(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`mask` ``(n,)`` broadcastable against `like` ``(n, ...)``."""
    return mask.view(-1, *([1] * (like.ndim - 1)))


def _lead(logits: torch.Tensor, goal: torch.Tensor, *, targeted: bool) -> torch.Tensor:
    """How far the goal is met, in logits: > 0 exactly when the input is adversarial."""
    return -margin_loss(logits, goal) if targeted else margin_loss(logits, goal)


@register_attack(SPEC)
def cw(
    target: Target,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float | None = None,
    steps: int = 100,
    binary_search_steps: int = 9,
    initial_const: float = 1e-3,
    confidence: float = 0.0,
    learning_rate: float = 0.01,
    abort_early: bool = True,
    y_target: np.ndarray | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> AttackResult:
    """The smallest L2 perturbation Carlini & Wagner's optimisation finds.

    Args:
        target: a white-box target (`mlwarden.target(torch_model, ...)`).
        x: clean inputs ``(n, *input_shape)`` inside the target's input range.
        y: true labels ``(n,)``.
        eps: L2 budget in input units, or None (default) for unbounded: the result then gives
            the minimal perturbation per sample (`minimal_norms()`); with a budget, larger
            perturbations count as failures.
        steps: Adam steps per binary-search step, >= 1.
        binary_search_steps: rounds of the search for the constant c, >= 1.
        initial_const: starting c (weight of the misclassification term against the squared
            distance), > 0; multiplied by 10 until a sample is fooled, then bisected.
        confidence: kappa, the logit margin by which an input must be adversarial, >= 0.
        learning_rate: Adam's step size in the tanh space, > 0. Values at the edge of the
            input range sit where tanh is flat and take many steps to move; on data with many
            such values (digit images) 0.05 finds markedly smaller perturbations.
        abort_early: end a binary-search step when the loss stops falling (checked 10 times
            per step), as in the original attack.
        y_target: labels to reach for a targeted attack; None for untargeted.
        seed: unused (the attack is deterministic); kept for a uniform signature.
        progress: ``progress(done, total)`` callback in sample-binary-search-steps.
    """
    params = {
        "steps": check_count(steps, "steps"),
        "binary_search_steps": check_count(binary_search_steps, "binary_search_steps"),
        "initial_const": check_positive(initial_const, "initial_const"),
        "confidence": check_positive(confidence, "confidence", allow_zero=True),
        "learning_rate": check_positive(learning_rate, "learning_rate"),
        "abort_early": bool(abort_early),
    }
    return run_attack(
        _cw,
        SPEC,
        target,
        x,
        y,
        eps=eps,
        norm="l2",
        y_target=y_target,
        seed=seed,
        progress=progress,
        params=params,
    )
