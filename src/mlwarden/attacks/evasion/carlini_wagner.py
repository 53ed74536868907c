"""Carlini & Wagner L2 (2017): the smallest L2 perturbation found by optimisation.

Minimises ``||x' - x||_2^2 + c * max(margin + kappa, 0)`` with Adam over a tanh change of
variables that keeps ``x'`` inside the input range, and searches the trade-off constant ``c``
per sample. Every iterate that is adversarial with a smaller perturbation than the best so far is
recorded at once, so the result is the smallest adversarial input seen and an interrupted run
keeps what it found. Minimum-norm: with ``eps=None`` one run answers robust accuracy at every eps
(`AttackResult.robust_accuracy_at`). Not for: a fixed budget at the lowest cost (PGD), or other
norms.

Unlike the paper, which restarts each binary-search step from the clean input, every step here
continues from where the previous one ended (with fresh Adam moments), so a few short steps add
up: the first step gets a double share of the steps to reach the boundary, a sample whose loss
was still falling continues with twice the step size (0.7 times when it was not), and ``c`` is
raised tenfold only after a step that brought the sample no nearer the boundary (else twofold).
At the benchmark's 5 x 20 steps this matters most: see `benchmarks/evasion/RESULTS.md`.
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
FIRST_SHARE = 2
"""The first binary-search step gets this many shares of the total steps, each later one gets
one: it has to travel from the clean input to the boundary, the later ones only refine."""
CONST_GROWTH = 10.0
"""c is multiplied by this after a search step that neither fooled a sample nor brought it
nearer the boundary, while no c that fooled it is known (the paper's rule)."""
CONST_GROWTH_APPROACHING = 2.0
"""... and by this when the step brought it nearer: it mostly lacked steps, not weight."""
APPROACHING = 0.9
"""A sample is approaching the boundary when its logit gap to it at the end of a search step is
below this fraction of the gap half-way through."""
CONST_SHRINK = 0.7
"""c is multiplied by this after a search step that fooled a sample while no c that failed is
known (then it is bisected)."""
RATE_GROWTH = 2.0
"""A sample's Adam step size is multiplied by this after a search step in whose second half its
loss still fell: it was still travelling, not circling a minimum."""
RATE_SHRINK = 0.7
"""... and by this after one in whose second half it did not: it was circling a minimum."""
FALLING = 0.9999
"""The loss "fell" when it ended below this fraction of an earlier value (abort and rate)."""
ABORT_CHECKS = 10
"""With early abort, the loss is checked this many times per binary-search step ..."""
ABORT_MIN_INTERVAL = 5
"""... but no more often than every this many steps: over fewer, the loss of a sample circling
the boundary rises and falls by chance."""


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


def stage_lengths(steps: int, binary_search_steps: int) -> list[int]:
    """Adam steps in each binary-search step: ``steps * binary_search_steps`` in all, the first
    step `FIRST_SHARE` times as long as the others (never shorter than `steps`), each >= 1."""
    total = steps * binary_search_steps
    if binary_search_steps == 1:
        return [total]
    later = binary_search_steps - 1
    first = round(FIRST_SHARE * total / (binary_search_steps + FIRST_SHARE - 1))
    first = max(steps, min(first, total - later))
    share, extra = divmod(total - first, later)
    return [first] + [share + (1 if i < extra else 0) for i in range(later)]


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
    # every sample continues from where its previous search step ended: at few steps per
    # search step, restarting from the clean input throws away the progress through the flat
    # edges of tanh, and a fooled sample refines its perturbation from there with a smaller c
    w = torch.atanh(((x0 - middle) / half).clamp(-TANH_LIMIT, TANH_LIMIT))
    n = len(index)
    const = torch.full((n,), settings.initial_const, device=x0.device)
    rate = torch.full((n,), settings.learning_rate, device=x0.device)
    lower = torch.zeros(n, device=x0.device)
    upper = torch.full((n,), UNBOUNDED_CONST, device=x0.device)
    best = torch.full((n,), math.inf, device=x0.device)
    lengths = stage_lengths(settings.steps, settings.binary_search_steps)
    for search_step, length in enumerate(lengths):
        run = _optimise(state, target, index, settings, length, x0, goal, w, const, rate, best)
        # the step size grows for samples still travelling when the search step ended
        rate = torch.where(run.loss_falling, rate * RATE_GROWTH, rate * RATE_SHRINK)
        upper = torch.where(run.succeeded, torch.minimum(upper, const), upper)
        lower = torch.where(run.succeeded, lower, torch.maximum(lower, const))
        growth = torch.where(
            run.approaching,
            torch.full_like(const, CONST_GROWTH_APPROACHING),
            torch.full_like(const, CONST_GROWTH),
        )
        bisected = torch.where(lower > 0, (lower + upper) / 2, upper * CONST_SHRINK)
        const = torch.where(upper < UNBOUNDED_CONST, bisected, const * growth)
        state.tick(done + (search_step + 1) * n, total)


@dataclass(frozen=True)
class _Run:
    """How one binary-search step went, per sample."""

    succeeded: torch.Tensor
    """Fooled at some step."""
    approaching: torch.Tensor
    """Its logit gap to the goal shrank by `APPROACHING` over the second half."""
    loss_falling: torch.Tensor
    """Its loss fell over the second half."""


def _optimise(
    state: AttackState,
    target: WhiteBoxTarget,
    index: np.ndarray,
    settings: _Settings,
    length: int,
    x0: torch.Tensor,
    goal: torch.Tensor,
    w_start: torch.Tensor,
    const: torch.Tensor,
    rate: torch.Tensor,
    best: torch.Tensor,
) -> _Run:
    """One binary-search step: `length` Adam steps (fresh moments) from `w_start`, which is
    updated in place to where each sample's search ends.

    Updates `best` (squared L2 of the best adversarial input per sample) and records every
    improvement in `state` at once. With early abort, a sample whose loss stopped falling
    leaves the batch for the rest of the step, so converged samples cost nothing.
    """
    low, high = state.threat.input_range
    middle, half = (high + low) / 2, (high - low) / 2
    n = len(index)
    device = x0.device
    w = w_start.clone()
    first, second = torch.zeros_like(w), torch.zeros_like(w)
    beta1, beta2 = ADAM_BETAS
    rows = torch.arange(n, device=device)
    succeeded = torch.zeros(n, dtype=torch.bool, device=device)
    # snapshots half-way and at each sample's last step; NaN (never "falling") for a sample
    # that left before half-way
    middle_loss = torch.full((n,), math.nan, device=device)
    middle_gap = torch.full((n,), math.nan, device=device)
    last_loss = torch.full((n,), math.nan, device=device)
    last_gap = torch.full((n,), math.nan, device=device)
    previous = torch.full((n,), math.inf, device=device)
    check_every = max(length // ABORT_CHECKS, ABORT_MIN_INTERVAL)
    halfway = max(length // 2, 1)
    step_rate = rate.view(-1, *([1] * (w.ndim - 1)))
    # per sample still in the batch (aligned with `rows`), written back as samples leave
    smallest = best.clone()
    hit = torch.zeros(n, dtype=torch.bool, device=device)
    for step in range(1, length + 1):
        w.requires_grad_(True)
        x = torch.tanh(w) * half + middle
        logits = target.logits(x)
        distance = (x - x0).flatten(1).pow(2).sum(dim=1)
        lead = _lead(logits, goal, targeted=state.targeted)
        gap = (settings.confidence - lead).clamp_min(0)
        loss = distance + const * gap
        (grad,) = torch.autograd.grad(loss.sum(), w)
        with torch.no_grad():
            w = w.detach()
            value = loss.detach()
            gap = gap.detach()
            adversarial = lead.detach() > settings.confidence
            hit |= adversarial
            improved = adversarial & (distance < smallest)
            if bool(improved.any()):
                smallest = torch.where(improved, distance, smallest)
                chosen = index[rows[improved].cpu().numpy()]
                state.record_smaller(chosen, x.detach()[improved].cpu().numpy())
            if step == halfway:
                middle_loss[rows], middle_gap[rows] = value, gap
            first.mul_(beta1).add_(grad, alpha=1 - beta1)
            second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            correction = math.sqrt(1 - beta2**step) / (1 - beta1**step)
            w.addcdiv_(first * step_rate, second.sqrt().add_(ADAM_EPS), value=-correction)
            if settings.abort_early and step % check_every == 0 and step < length:
                going = value <= previous * FALLING
                if not bool(going.any()):
                    break
                previous = value
                if not bool(going.all()):
                    left = ~going
                    gone = rows[left]
                    w_start[gone], best[gone], succeeded[gone] = w[left], smallest[left], hit[left]
                    last_loss[gone], last_gap[gone] = value[left], gap[left]
                    w, first, second, x0, goal, const, step_rate, rows, previous = (
                        t[going]
                        for t in (w, first, second, x0, goal, const, step_rate, rows, previous)
                    )
                    smallest, hit = smallest[going], hit[going]
    w_start[rows], best[rows], succeeded[rows] = w, smallest, hit
    last_loss[rows], last_gap[rows] = value, gap
    return _Run(
        succeeded=succeeded,
        approaching=last_gap < middle_gap * APPROACHING,
        loss_falling=last_loss < middle_loss * FALLING,
    )


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
        steps: Adam steps per binary-search step on average, >= 1; ``steps *
            binary_search_steps`` in all, the first binary-search step taking a double share.
        binary_search_steps: rounds of the search for the constant c, >= 1; each continues
            from where the previous one ended.
        initial_const: starting c (weight of the misclassification term against the squared
            distance), > 0; until a sample is fooled it is multiplied by 10 after a round that
            brought the sample no nearer the boundary (by 2 after one that did); once fooled,
            it shrinks by 0.7 per fooling round until a failing c is known, then is bisected.
        confidence: kappa, the logit margin by which an input must be adversarial, >= 0.
        learning_rate: Adam's starting step size in the tanh space, > 0. Per sample it doubles
            after a round in whose second half the loss still fell, and shrinks by 0.7 after
            one in which it did not, so a small rate with few steps still travels far enough.
        abort_early: a sample leaves a binary-search step when its loss stops falling
            (checked 10 times per step, at most every 5 steps), as in the original attack.
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
