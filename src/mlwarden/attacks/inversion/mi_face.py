"""MI-Face (Fredrikson, Jha & Ristenpart, CCS 2015): reconstruct a class's typical input by
gradient descent on the white-box target's cost for that class.

Every class starts from the same neutral input and follows Adam steps on the cost
``-log p(class | x)`` (or ``1 - p``) ``+ tv_weight * TV(x) + l2_weight * ||x - start||^2``,
projected into the input range after each step; a class stops when its cost has not improved for
`patience` steps, or at `steps`. All classes run as one batch. Not for: black-box targets
(`zeroth_order`).
"""

from __future__ import annotations

import numpy as np
import torch

from mlwarden.attacks.inversion.base import (
    LOG_FLOOR,
    InversionProblem,
    InversionSearch,
    Tracker,
    stop_note,
)
from mlwarden.errors import QueryBudgetExceeded
from mlwarden.targets.base import WhiteBoxTarget


def search(problem: InversionProblem) -> InversionSearch:
    """Run MI-Face for every class of `problem`; stops cleanly on the query budget or Ctrl-C."""
    target = problem.target
    if not isinstance(target, WhiteBoxTarget):
        raise TypeError("mi_face.search needs a WhiteBoxTarget (runner.invert checks this)")
    tracker = Tracker(problem)
    low, high = target.input_range
    start = torch.from_numpy(problem.start).to(target.device)
    labels = torch.from_numpy(problem.classes).to(target.device)
    x = torch.from_numpy(tracker.images.copy()).to(target.device).requires_grad_(True)
    optimiser = torch.optim.Adam([x], lr=problem.lr)
    interrupted = False
    with target.session():
        try:
            while len(index := tracker.affordable(1)):
                rows = torch.from_numpy(index).to(target.device)
                optimiser.zero_grad()
                batch = x[rows]
                cost = _cost(problem, target.logits(batch), labels[rows], batch, start)
                cost.sum().backward()  # type: ignore[no-untyped-call]
                tracker.observe(index, batch.detach().cpu().numpy(), cost.detach().cpu().numpy(), 1)
                optimiser.step()
                with torch.no_grad():
                    x.clamp_(low, high)
                tracker.tick()
        except (QueryBudgetExceeded, KeyboardInterrupt) as stop:
            interrupted = True
            tracker.notes.append(stop_note(stop))
    return tracker.result(interrupted=interrupted)


def _cost(
    problem: InversionProblem,
    logits: torch.Tensor,
    labels: torch.Tensor,
    x: torch.Tensor,
    start: torch.Tensor,
) -> torch.Tensor:
    """Per-class cost of `x`: the model term plus the image priors (mean over values)."""
    log_p = torch.log_softmax(logits.float(), dim=1).gather(1, labels[:, None]).squeeze(1)
    if problem.cost == "log":
        cost = -log_p.clamp_min(float(np.log(LOG_FLOOR)))
    else:
        cost = 1.0 - log_p.exp()
    size = x[0].numel()
    if problem.l2_weight:
        cost = cost + problem.l2_weight * (x - start).square().flatten(1).sum(1) / size
    if problem.tv_weight and problem.image_shaped:
        down = x.diff(dim=-2).square().flatten(1).sum(1)
        right = x.diff(dim=-1).square().flatten(1).sum(1)
        cost = cost + problem.tv_weight * (down + right) / size
    return cost
