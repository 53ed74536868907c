"""APGD (Croce & Hein 2020): PGD that sets its own step size, the white-box core of AutoAttack.

Three attacks share one search: ``apgd`` (cross-entropy), ``apgd_dlr`` (the difference of logits
ratio, immune to logit scaling) and ``apgd_t`` (targeted DLR toward each of the top other
classes in turn; success is any misclassification, as in AutoAttack). The search keeps momentum
0.75, starts with step 2 * eps, and halves a sample's step at checkpoints (after 22% of the
steps, then at shrinking intervals of at least 6%) when the loss rose in too few of the last
steps or neither the step nor the best loss changed since the previous checkpoint; a halved
sample restarts from its best point. Samples leave the batch as soon as they are
misclassified, which does not change the search of the others. Linf and L2 balls. Not for:
L1 (use `pgd` with ``norm="l1"``) or minimum-norm questions.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from mlwarden.attacks.evasion._torch import (
    Loss,
    batches,
    check_count,
    generator,
    hits,
    labels_tensor,
    objective,
    per_sample,
    project_threat,
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

SPEC_CE = AttackSpec(name="apgd", title="APGD-CE", white_box=True, norms=("linf", "l2"))
SPEC_DLR = AttackSpec(name="apgd_dlr", title="APGD-DLR", white_box=True, norms=("linf", "l2"))
SPEC_TARGETED = AttackSpec(
    name="apgd_t", title="APGD-T", white_box=True, norms=("linf", "l2"), targeted=False
)

MOMENTUM = 0.75
"""Weight of the new step against the previous one (alpha in the paper)."""
RHO = 0.75
"""A checkpoint halves the step when the loss rose in at most this fraction of the last steps."""
INITIAL_STEP_PER_EPS = 2.0
FIRST_CHECKPOINT = 0.22
CHECKPOINT_SHRINK = 0.03
MIN_CHECKPOINT_GAP = 0.06


def checkpoint_schedule(steps: int) -> dict[int, int]:
    """Iteration index (0-based) of each checkpoint -> the number of steps since the last one.

    The checkpoints sit at p_j * steps with p_0 = 0, p_1 = 0.22 and
    p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), rounded down as AutoAttack does.
    """
    gap = max(int(FIRST_CHECKPOINT * steps), 1)
    shrink = max(int(CHECKPOINT_SHRINK * steps), 1)
    smallest = max(int(MIN_CHECKPOINT_GAP * steps), 1)
    schedule: dict[int, int] = {}
    done = gap
    while done <= steps:
        schedule[done - 1] = gap
        gap = max(gap - shrink, smallest)
        done += gap
    return schedule


def should_halve(
    increases: torch.Tensor,
    since: int,
    halved_last: torch.Tensor,
    best_at_last_check: torch.Tensor,
    best: torch.Tensor,
) -> torch.Tensor:
    """Which samples halve their step at a checkpoint `since` steps after the previous one.

    Condition 1: the loss rose in at most ``RHO * since`` of those steps (`increases`).
    Condition 2: the step was not halved at the previous checkpoint (`halved_last`) and the
    best loss has not improved since (`best_at_last_check` >= `best`).
    """
    return (increases <= RHO * since) | (~halved_last & (best_at_last_check >= best))


@dataclass(frozen=True)
class _Goal:
    """What one APGD run optimises and what counts as success."""

    loss: Loss
    wanted: np.ndarray | None
    """Per sample, the class the loss pulls toward (targeted losses), else None."""
    success: np.ndarray
    """Per sample, the label to reach (`reach`) or to leave."""
    reach: bool


@dataclass
class _Batch:
    """APGD's per-sample state for the samples of one batch still under attack, row-aligned."""

    rows: torch.Tensor
    x0: torch.Tensor
    labels: torch.Tensor
    wanted: torch.Tensor | None
    success: torch.Tensor
    low: torch.Tensor
    """Lowest value each input may take (linf ball and range), for the linf projection."""
    high: torch.Tensor
    x: torch.Tensor
    x_old: torch.Tensor
    grad: torch.Tensor
    x_best: torch.Tensor
    grad_best: torch.Tensor
    loss_best: torch.Tensor
    loss_prev: torch.Tensor
    loss_at_check: torch.Tensor
    increases: torch.Tensor
    step: torch.Tensor
    reduced: torch.Tensor

    def keep(self, mask: torch.Tensor) -> _Batch:
        """The same state restricted to the rows in `mask`."""
        kept = {
            f.name: value[mask]
            for f in fields(self)
            if isinstance(value := getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **kept)


class _Search:
    """One APGD run over the samples of one batch."""

    def __init__(
        self,
        state: AttackState,
        target: WhiteBoxTarget,
        index: np.ndarray,
        goal: _Goal,
        steps: int,
    ) -> None:
        self.state = state
        self.target = target
        self.index = index
        self.goal = goal
        self.steps = steps
        threat = state.threat
        self.norm, self.eps = threat.norm, float(threat.eps or 0.0)
        self.range = threat.input_range

    def run(self, noise: torch.Generator, done: int, total: int) -> None:
        """Search from a random start; record every sample as soon as it is adversarial.

        Progress goes to the state as ``done`` plus the sample-steps of this batch.
        """
        batch = self._start(noise)
        logits, loss, grad = self._evaluate(batch.x, batch, with_grad=True)
        alive = self._record_hits(batch, logits)
        if not bool(alive.any()):
            return
        if not bool(alive.all()):
            batch, loss, grad = batch.keep(alive), loss[alive], grad[alive]
        batch.grad, batch.grad_best = grad, grad.clone()
        batch.loss_best, batch.loss_prev = loss, loss.clone()
        batch.loss_at_check = loss.clone()
        schedule = checkpoint_schedule(self.steps)
        for i in range(self.steps):
            last = i == self.steps - 1
            with torch.no_grad():
                self._step(batch, MOMENTUM if i > 0 else 1.0)
            logits, loss, grad = self._evaluate(batch.x, batch, with_grad=not last)
            alive = self._record_hits(batch, logits)
            self.state.tick(done + (i + 1) * len(self.index), total)
            if last or not bool(alive.any()):
                return
            if not bool(alive.all()):
                batch, loss, grad = batch.keep(alive), loss[alive], grad[alive]
            with torch.no_grad():
                self._update_best(batch, loss, grad)
                if i in schedule:
                    self._checkpoint(batch, schedule[i])

    def _start(self, noise: torch.Generator) -> _Batch:
        state, target, index = self.state, self.target, self.index
        low, high = self.range
        x0 = to_tensor(state.x[index], target)
        if self.norm == "linf":
            direction = torch.rand(x0.shape, generator=noise) * 2 - 1
            scale = direction.flatten(1).abs().amax(dim=1)
        else:
            direction = torch.randn(x0.shape, generator=noise)
            scale = direction.flatten(1).norm(dim=1)
        direction = direction.to(x0.device) / per_sample(scale.to(x0.device) + 1e-12, x0)
        x = (x0 + self.eps * direction).clamp_(low, high)
        n = len(index)
        empty = torch.zeros(n, device=x0.device)
        wanted = None if self.goal.wanted is None else labels_tensor(self.goal.wanted, target)
        return _Batch(
            rows=torch.arange(n, device=x0.device),
            x0=x0,
            labels=labels_tensor(state.y[index], target),
            wanted=wanted,
            success=labels_tensor(self.goal.success, target),
            low=(x0 - self.eps).clamp_(low, high),
            high=(x0 + self.eps).clamp_(low, high),
            x=x,
            x_old=x.clone(),
            grad=torch.zeros_like(x0),
            x_best=x.clone(),
            grad_best=torch.zeros_like(x0),
            loss_best=empty,
            loss_prev=empty.clone(),
            loss_at_check=empty.clone(),
            increases=empty.clone(),
            step=torch.full((n,), INITIAL_STEP_PER_EPS * self.eps, device=x0.device),
            reduced=torch.ones(n, dtype=torch.bool, device=x0.device),
        )

    def _evaluate(
        self, x: torch.Tensor, batch: _Batch, *, with_grad: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits, per-sample loss and (if asked) its input gradient, from one pass."""
        if not with_grad:
            with torch.no_grad():
                logits = self.target.logits(x)
                loss = objective(self.goal.loss, logits, batch.labels, batch.wanted)
            return logits, loss, torch.empty(0)
        point = x.detach().requires_grad_(True)
        logits = self.target.logits(point)
        loss = objective(self.goal.loss, logits, batch.labels, batch.wanted)
        (grad,) = torch.autograd.grad(loss.sum(), point)
        return logits.detach(), loss.detach(), grad

    def _record_hits(self, batch: _Batch, logits: torch.Tensor) -> torch.Tensor:
        """Record the rows that are adversarial; the mask of the others."""
        hit = hits(logits.argmax(dim=1), batch.success, targeted=self.goal.reach)
        if bool(hit.any()):
            chosen = self.index[batch.rows[hit].cpu().numpy()]
            self.state.record(chosen, batch.x[hit].cpu().numpy())
        return ~hit

    def _project(self, x: torch.Tensor, batch: _Batch) -> torch.Tensor:
        if self.norm == "linf":
            return torch.minimum(torch.maximum(x, batch.low), batch.high)
        return project_threat(x, batch.x0, self.norm, self.eps, *self.range)

    def _step(self, batch: _Batch, momentum: float) -> None:
        grad = batch.grad
        if self.norm == "linf":
            direction = grad.sign()
        else:
            direction = grad / per_sample(grad.flatten(1).norm(dim=1) + 1e-12, grad)
        z = self._project(batch.x + per_sample(batch.step, grad) * direction, batch)
        moved = batch.x + momentum * (z - batch.x) + (1 - momentum) * (batch.x - batch.x_old)
        batch.x_old = batch.x
        batch.x = self._project(moved, batch)

    def _update_best(self, batch: _Batch, loss: torch.Tensor, grad: torch.Tensor) -> None:
        batch.grad = grad
        batch.increases += (loss > batch.loss_prev).float()
        batch.loss_prev = loss
        better = loss > batch.loss_best
        batch.x_best[better] = batch.x[better]
        batch.grad_best[better] = grad[better]
        batch.loss_best = torch.where(better, loss, batch.loss_best)

    def _checkpoint(self, batch: _Batch, since: int) -> None:
        halve = should_halve(
            batch.increases, since, batch.reduced, batch.loss_at_check, batch.loss_best
        )
        batch.reduced = halve
        batch.loss_at_check = batch.loss_best.clone()
        batch.increases.zero_()
        if bool(halve.any()):
            batch.step = torch.where(halve, batch.step / 2, batch.step)
            batch.x = torch.where(per_sample(halve, batch.x), batch.x_best, batch.x)
            batch.grad = torch.where(per_sample(halve, batch.grad), batch.grad_best, batch.grad)


def _run_all(
    state: AttackState,
    target: WhiteBoxTarget,
    goals: list[_Goal],
    *,
    steps: int,
    restarts: int,
) -> None:
    """Run APGD once per goal and restart, each time on the samples not fooled yet."""
    n = len(state.x)
    runs = len(goals) * restarts
    total = runs * steps * n
    for run, goal in enumerate(g for g in goals for _ in range(restarts)):
        noise = generator(state, run)
        done = run * steps * n + steps * int(state.found.sum())
        for index in batches(state, target):
            search = _Search(state, target, index, _subset(goal, index), steps)
            search.run(noise, done, total)
            done += steps * len(index)
        state.tick(min((run + 1) * steps * n, total), total)


def _subset(goal: _Goal, index: np.ndarray) -> _Goal:
    wanted = None if goal.wanted is None else goal.wanted[index]
    return _Goal(goal.loss, wanted, goal.success[index], goal.reach)


def _apgd(
    state: AttackState, target: WhiteBoxTarget, /, *, loss: Loss, steps: int, restarts: int
) -> None:
    wanted = state.y_target
    goal = _Goal(loss, wanted, state.goal, state.targeted)
    _run_all(state, target, [goal], steps=steps, restarts=restarts)


def _apgd_t(
    state: AttackState,
    target: WhiteBoxTarget,
    /,
    *,
    steps: int,
    restarts: int,
    n_target_classes: int,
) -> None:
    ranking = _clean_ranking(state, target)
    count = min(n_target_classes, target.n_classes - 1)
    goals = [_Goal("dlr", ranking[:, rank], state.y, False) for rank in range(1, count + 1)]
    _run_all(state, target, goals, steps=steps, restarts=restarts)


def _clean_ranking(state: AttackState, target: WhiteBoxTarget) -> np.ndarray:
    """Classes of each sample by descending clean logit (rows of fooled samples stay zero)."""
    ranking = np.zeros((len(state.x), target.n_classes), dtype=np.int64)
    with torch.no_grad():
        for index in batches(state, target):
            logits = target.logits(to_tensor(state.x[index], target))
            ranking[index] = logits.argsort(dim=1, descending=True).cpu().numpy()
    return ranking


def _public_params(steps: int, restarts: int) -> dict[str, int]:
    return {"steps": check_count(steps, "steps"), "restarts": check_count(restarts, "restarts")}


@register_attack(SPEC_CE)
def apgd(
    target: Target,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float,
    norm: Norm = "linf",
    steps: int = 100,
    restarts: int = 1,
    y_target: np.ndarray | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> AttackResult:
    """APGD on the cross-entropy loss (APGD-CE); no step size to tune.

    Args:
        target: a white-box target (`mlwarden.target(torch_model, ...)`).
        x: clean inputs ``(n, *input_shape)`` inside the target's input range.
        y: true labels ``(n,)``.
        eps: perturbation budget in input units under `norm` (e.g. 8/255 for linf on [0, 1]).
        norm: ``linf`` or ``l2``.
        steps: iterations per run, >= 1 (100, as AutoAttack).
        restarts: runs per sample from random starts, >= 1; only samples not yet fooled rerun.
        y_target: labels to reach (the loss becomes the target's cross-entropy); None for
            untargeted.
        seed: seeds the random starts.
        progress: ``progress(done, total)`` callback in sample-steps.
    """
    params = {"loss": "ce", **_public_params(steps, restarts)}
    return run_attack(
        _apgd,
        SPEC_CE,
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


@register_attack(SPEC_DLR)
def apgd_dlr(
    target: Target,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float,
    norm: Norm = "linf",
    steps: int = 100,
    restarts: int = 1,
    y_target: np.ndarray | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> AttackResult:
    """APGD on the difference of logits ratio (APGD-DLR), robust to rescaled logits.

    With two classes the ratio is undefined and the plain logit margin is used instead.

    Args:
        target: a white-box target (`mlwarden.target(torch_model, ...)`).
        x: clean inputs ``(n, *input_shape)`` inside the target's input range.
        y: true labels ``(n,)``.
        eps: perturbation budget in input units under `norm` (e.g. 8/255 for linf on [0, 1]).
        norm: ``linf`` or ``l2``.
        steps: iterations per run, >= 1 (100, as AutoAttack).
        restarts: runs per sample from random starts, >= 1; only samples not yet fooled rerun.
        y_target: labels to reach (the loss becomes the targeted DLR); None for untargeted.
        seed: seeds the random starts.
        progress: ``progress(done, total)`` callback in sample-steps.
    """
    params = {"loss": "dlr", **_public_params(steps, restarts)}
    return run_attack(
        _apgd,
        SPEC_DLR,
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


@register_attack(SPEC_TARGETED)
def apgd_t(
    target: Target,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float,
    norm: Norm = "linf",
    steps: int = 100,
    restarts: int = 1,
    n_target_classes: int = 9,
    y_target: np.ndarray | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> AttackResult:
    """Targeted APGD-DLR toward each of the most likely other classes (AutoAttack's APGD-T).

    For each sample, one run per target class, taken in order of the clean logits; a sample
    counts as fooled when it is misclassified as anything, and later targets only run on the
    samples still standing. Costs up to ``n_target_classes * restarts * steps`` passes.

    Args:
        target: a white-box target (`mlwarden.target(torch_model, ...)`).
        x: clean inputs ``(n, *input_shape)`` inside the target's input range.
        y: true labels ``(n,)``.
        eps: perturbation budget in input units under `norm` (e.g. 8/255 for linf on [0, 1]).
        norm: ``linf`` or ``l2``.
        steps: iterations per run, >= 1 (100, as AutoAttack).
        restarts: runs per target class, >= 1.
        n_target_classes: how many of the top other classes to target, >= 1 (9, as
            AutoAttack); capped at the number of classes minus one.
        y_target: must be None: the targets are chosen per sample (use `apgd_dlr` with
            ``y_target`` to reach given labels); kept for a uniform signature.
        seed: seeds the random starts.
        progress: ``progress(done, total)`` callback in sample-steps.
    """
    params = {
        **_public_params(steps, restarts),
        "n_target_classes": check_count(n_target_classes, "n_target_classes"),
    }
    return run_attack(
        _apgd_t,
        SPEC_TARGETED,
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
