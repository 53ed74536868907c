"""PGD (Madry et al. 2018): projected gradient ascent on a loss inside an eps ball.

Linf, L2 and L1 balls (L1 with the sparse steps of Tramer & Boneh 2019 and an exact projection),
random starts and restarts, cross-entropy, DLR or margin loss, targeted or not. A run costs at
most ``steps`` gradient passes per sample and no other pass: each step's logits also say who is
adversarial already, and the last iterate is judged by the runner's verification. Samples retire
from the batch as soon as they are adversarial (``early_stop``), so a run usually costs less.
Not for: parameter-free evaluation (APGD in `auto_pgd` adapts its step size) or minimum-norm
questions (`carlini_wagner`, `deep_fool`).
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
    labels_tensor,
    model_view,
    objective,
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

TRAIL_BYTES = 32 * 2**20
"""Without early stop, the iterates a batch keeps before it settles which rows they fooled
(`_Batch._settle`): at most this many bytes, and at least one step's."""

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
        # only a run that another follows checks its last iterate: the next run needs to know
        # who is still standing; after the last run, the runner's verification is that check
        judge_last = restart < restarts - 1
        todo = np.flatnonzero(~state.found)
        done = restart * steps * n + steps * (n - len(todo))
        for index in batches(state, target):
            _Batch(state, target, index, settings, noise).run(done, total, judge_last=judge_last)
            done += steps * len(index)
        state.tick(min(done, total), total)


class _Batch:
    """One batch under attack: flat ``(m, d)`` tensors of the samples still running, row-aligned.

    A step costs one forward and backward pass, three tensor operations for the projected step
    (linf) and one or two to note who is adversarial from the same logits; what was found
    reaches `state` once, at the end (or on interruption). Without early stop, each step writes
    its iterate into the next slot of a trail and its labels beside it, and the rows they
    fooled first are settled when the trail is full or the run ends, in one go (`_settle`).
    """

    def __init__(
        self,
        state: AttackState,
        target: WhiteBoxTarget,
        index: np.ndarray,
        settings: _Settings,
        noise: torch.Generator | None,
    ) -> None:
        threat = state.threat
        self.state, self.target, self.index, self.settings = state, target, index, settings
        self.norm, self.eps = threat.norm, float(threat.eps or 0.0)
        self.low, self.high = threat.input_range
        self.flat = state.x.ndim == 2
        """Samples are vectors already: the flat rows go to the model as they are."""
        self.targeted = state.targeted
        # targeted cross-entropy is minimised: step down its gradient rather than negate it
        self.descend = self.targeted and settings.loss == "ce"
        x0 = to_tensor(state.x[index].reshape(len(index), -1), target)
        self.device = x0.device
        self.positions = np.arange(len(index))
        """Row of each running sample in `index`."""
        self.goal = labels_tensor(state.goal[index], target)
        self.labels = labels_tensor(state.y[index], target) if self.targeted else None
        """True labels, kept where the loss needs them besides the goal."""
        self.x0: torch.Tensor | None = None
        self.lower: torch.Tensor | None = None
        self.upper: torch.Tensor | None = None
        if self.norm == "linf":
            # the intersection of the ball and the input range, once: each step is one clamp
            self.lower = (x0 - self.eps).clamp_(self.low, self.high)
            self.upper = (x0 + self.eps).clamp_(self.low, self.high)
            start = x0 if noise is None else x0 + random_in_ball(x0, "linf", self.eps, noise)
            self.x_adv = start.clamp(self.lower, self.upper)
        else:
            self.x0 = x0
            self.x_adv = x0.clone()
            if noise is not None:
                start = x0 + random_in_ball(x0, self.norm, self.eps, noise)
                self.x_adv = project_threat(start, x0, self.norm, self.eps, self.low, self.high)
        self.found: list[tuple[np.ndarray, torch.Tensor]] = []
        """Rows fooled (retired, or settled) with their first adversarial points, until
        `_flush`: appended as pairs, so that Ctrl-C cannot leave one without the other."""
        self.open: np.ndarray | None = None
        """Without early stop: which rows nothing has fooled yet, as of the last `_settle`."""
        self.trail: torch.Tensor | None = None
        """Without early stop: ``(slots, m, d)`` iterates since the last `_settle`; `x_adv`
        is one of its slots."""
        self.trail_labels: torch.Tensor | None = None
        """``(slots, m)``: the target's labels at each iterate of the trail."""
        self.slots: list[torch.Tensor] = []
        self.label_slots: list[torch.Tensor] = []
        """The slots of `trail` and `trail_labels`, as views made once (a list lookup a step
        costs less than indexing the tensor)."""
        self.recorded = 0
        """Slots of the trail holding an iterate with its labels (the next one to write)."""
        self.block: torch.Tensor | None = None
        """With early stop: `x_adv` and its bounds (`lower` and `upper`, or `x0`) stacked, so
        that retiring rows takes one selection (`_shrink`); they are views of it."""

    def run(self, done: int, total: int, *, judge_last: bool) -> None:
        """All steps; with `judge_last`, one forward pass more to check the last iterate, else
        the last iterate of every sample still running is proposed to the runner."""
        steps = self.settings.steps
        if self.settings.early_stop:
            self._stack()
        else:
            self._start_trail(steps + 1)
        try:
            for step in range(steps):
                x_in = self.x_adv.detach().requires_grad_(True)
                logits = self.target.logits(x_in if self.flat else model_view(x_in, self.state))
                kept = self._check(logits)
                if kept is not None and len(kept) == 0:
                    return  # every sample of the batch is fooled
                # no grad_outputs: passing one makes torch import sympy on first use (~0.5 s)
                (grad,) = torch.autograd.grad(self._objective(logits), x_in)
                # every row steps, retired ones too: one selection afterwards costs less than
                # selecting the gradient first (the kept rows' values are the same)
                self._ascend(grad)
                if kept is not None:
                    self._shrink(kept)
                self.state.tick(done + (step + 1) * len(self.index), total)
            if judge_last:
                with torch.no_grad():
                    self._check(self.target.logits(model_view(self.x_adv, self.state)))
                return
            if self.open is None:
                rows, points = self.positions, self.x_adv
            else:
                self._settle()
                rows = np.flatnonzero(self.open)
                points = self.x_adv.index_select(0, torch.from_numpy(rows).to(self.device))
            self.state.propose(self.index[rows], self._points(points))
        finally:
            self._flush()

    def _check(self, logits: torch.Tensor) -> np.ndarray | None:
        """Note which rows `logits` (at the current iterate) say are adversarial. With early
        stop, their points are kept and the rows that stay are returned, for `_shrink` after
        the step (None when nobody was fooled); without, the iterate and its labels join the
        trail and None is returned.

        One or two tensor operations a step (with early stop, an argmax and one comparison
        answered on the host until someone succeeds; without, the argmax alone): on a small
        model, every operation more would show against the forward and backward pass.
        """
        if self.open is not None:
            torch.argmax(logits, dim=1, out=self.label_slots[self.recorded])
            self.recorded += 1
            if self.recorded == len(self.slots):
                self._settle()
            return None
        predictions = logits.detach().argmax(dim=1)
        if not self.targeted and torch.equal(predictions, self.goal):
            return None
        return self._retire(self._hits(predictions))

    def _start_trail(self, records: int) -> None:
        """A trail for up to `records` iterates (fewer when they would pass `TRAIL_BYTES`),
        holding the current one in its first slot."""
        slots = max(1, min(records, TRAIL_BYTES // max(1, self.x_adv.numel() * 4)))
        self.trail = torch.empty((slots, *self.x_adv.shape), device=self.device)
        self.trail_labels = torch.empty(
            (slots, len(self.x_adv)), dtype=torch.int64, device=self.device
        )
        self.slots = list(self.trail.unbind(0))
        self.label_slots = list(self.trail_labels.unbind(0))
        self.x_adv = self.slots[0].copy_(self.x_adv)
        self.open = np.ones(len(self.index), dtype=bool)

    def _settle(self) -> None:
        """Find, over the trail, the first iterate that fooled each open row; keep those points
        (`found`), close the rows, and empty the trail."""
        assert self.open is not None and self.trail is not None and self.trail_labels is not None
        if self.recorded:
            labels = self.trail_labels[: self.recorded].cpu().numpy()
            goal = self.goal.cpu().numpy()
            hits = (labels == goal if self.targeted else labels != goal) & self.open
            fooled = hits.any(axis=0)
            if fooled.any():
                rows = np.flatnonzero(fooled)
                first = hits[:, rows].argmax(axis=0)  # the first iterate that fooled each row
                # row `r` of slot `s` is row ``s * m + r`` of the trail seen as one matrix: one
                # selection (indexing with two index tensors costs several times more)
                flat = torch.from_numpy(first * len(self.open) + rows).to(self.device)
                points = self.trail.flatten(0, 1).index_select(0, flat)
                self.found.append((self.positions[rows], points))
                self.open &= ~fooled
        self.recorded = 0

    def _hits(self, predictions: torch.Tensor) -> torch.Tensor:
        """Boolean ``(m,)``: which predictions meet the goal."""
        return predictions == self.goal if self.targeted else predictions != self.goal

    def _objective(self, logits: torch.Tensor) -> torch.Tensor:
        """The summed loss each step climbs (or, with `descend`, goes down)."""
        loss, goal, labels = self.settings.loss, self.goal, self.labels
        if loss == "ce":
            return torch.nn.functional.cross_entropy(logits, goal, reduction="sum")
        if labels is None:
            return objective(loss, logits, goal, None).sum()
        return objective(loss, logits, labels, goal).sum()

    def _retire(self, hit: torch.Tensor) -> np.ndarray | None:
        """Keep the fooled rows' current points; returns the rows that stay (empty when none
        do), None when no row was fooled."""
        mask = np.asarray(hit.cpu().numpy(), dtype=bool)
        gone = mask.nonzero()[0]
        if len(gone) == 0:
            return None
        points = self.x_adv.index_select(0, torch.from_numpy(gone).to(self.device))
        self.found.append((self.positions[gone], points))
        kept: np.ndarray = (~mask).nonzero()[0]
        return kept

    def _stack(self) -> None:
        """Stack `x_adv` and its bounds into `block`, and view them from it."""
        parts = (self.x_adv, self.lower, self.upper, self.x0)
        self.block = torch.stack([part for part in parts if part is not None])
        self._unstack()

    def _unstack(self) -> None:
        assert self.block is not None
        views = iter(self.block.unbind(0))
        self.x_adv = next(views)
        if self.lower is not None:
            self.lower, self.upper = next(views), next(views)
        if self.x0 is not None:
            self.x0 = next(views)

    def _shrink(self, kept: np.ndarray) -> None:
        """Only rows `kept` (positions in the batch) go on: one selection of `block`, and the
        labels."""
        assert self.block is not None
        keep = torch.from_numpy(kept).to(self.device)
        self.block = self.block.index_select(1, keep)
        self._unstack()
        self.goal = self.goal.index_select(0, keep)
        if self.labels is not None:
            self.labels = self.labels.index_select(0, keep)
        self.positions = self.positions[kept]

    def _flush(self) -> None:
        """Hand every point found in this batch to the state, in one go."""
        if self.open is not None:
            self._settle()
        if self.found:
            rows = np.concatenate([rows for rows, _ in self.found])
            points = torch.cat([points for _, points in self.found])
            self.state.record(self.index[rows], self._points(points))
            self.found = []

    def _points(self, flat: torch.Tensor) -> np.ndarray:
        """Flat rows ``(k, d)`` as inputs ``(k, *input_shape)`` in NumPy."""
        return np.asarray(flat.detach().cpu().numpy()).reshape(len(flat), *self.state.x.shape[1:])

    def _ascend(self, grad: torch.Tensor) -> None:
        """One projected step (the gradient buffer `grad` is consumed)."""
        x_adv, size = self.x_adv, self.settings.step_size
        if self.descend:
            size = -size
        # the new iterate: in place, or into the trail's next slot (the previous one stays)
        # (the current iterate's own slot only when the trail has one, after it was settled)
        new = x_adv if self.open is None else self.slots[self.recorded]
        if self.lower is not None and self.upper is not None:
            torch.add(x_adv, grad.sign_(), alpha=size, out=new).clamp_(self.lower, self.upper)
        elif self.norm == "l2":
            assert self.x0 is not None
            length = torch.linalg.vector_norm(grad, dim=1, keepdim=True).clamp_min_(1e-12)
            torch.addcdiv(x_adv, grad, length, value=size, out=new)
            # onto the ball (rows longer than eps shrink toward x0), then into the range
            new.sub_(self.x0).renorm_(2, 0, self.eps).add_(self.x0).clamp_(self.low, self.high)
        else:
            assert self.x0 is not None
            if self.descend:
                grad.neg_()
            direction = sparse_l1_direction(
                grad, x_adv, self.low, self.high, self.settings.l1_quantile
            )
            stepped = torch.add(x_adv, direction, alpha=self.settings.step_size)
            new.copy_(project_threat(stepped, self.x0, "l1", self.eps, self.low, self.high))
        self.x_adv = new


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
        restarts: runs per sample, >= 1; each run after the first starts from a random point of
            the ball, and only samples not yet fooled run again.
        random_start: start the first run from a random point of the ball instead of `x`
            (linf: uniform in the cube; l2, l1: a uniform direction at a radius uniform in
            ``[0, eps]``).
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
