"""The shared types of model inversion: the problem a method solves, what it returns, and the
image priors (total variation, L2) both methods add to the target's cost.

A method (`mi_face`, `zeroth_order`) gets an `InversionProblem` (the target, the classes, the
neutral start, the step settings) and returns its best input per class in an `InversionSearch`;
`runner.invert` validates, picks the method, re-queries the target on every reconstruction and
measures it against the reference data. Not for: running an inversion (`runner.invert`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from mlwarden.audit.runner import ProgressFn
    from mlwarden.targets.base import Target

Method = Literal["mi-face", "black-box"]
Cost = Literal["log", "probability"]
"""``log``: -log p(class), strong gradients even when p is tiny; ``probability``: 1 - p(class),
Fredrikson et al.'s original cost, which stalls where the softmax saturates near 0."""

METHOD_MODULES: dict[str, str] = {
    "mi-face": "mlwarden.attacks.inversion.mi_face",
    "black-box": "mlwarden.attacks.inversion.zeroth_order",
}
"""Method name -> the module whose ``search(problem)`` implements it (imported when chosen, so
black-box inversion never imports torch)."""

LOG_FLOOR = 1e-12
"""Probabilities are floored here before taking logs: a zero from the target is a huge but
finite cost."""


@dataclass(frozen=True)
class InversionProblem:
    """Everything a method needs; validated by `runner.invert` before a method sees it."""

    target: Target
    classes: np.ndarray
    """``(k,)`` int64 class indices to reconstruct, distinct."""
    start: np.ndarray
    """``input_shape`` float32: the neutral input every class starts from, inside the range."""
    steps: int
    """Maximum optimisation steps per class."""
    lr: float
    """Step size of the Adam update, in input units."""
    cost: Cost
    tv_weight: float
    """Weight of the total-variation prior (0 for inputs that are not images)."""
    l2_weight: float
    """Weight of the L2 prior that keeps the input near `start`."""
    patience: int
    """A class stops after this many steps without its cost improving by `tolerance`."""
    tolerance: float
    max_queries: int | None
    """Samples the target may answer per class (gradient passes included); None: no cap."""
    samples: int
    """Black-box only: antithetic direction pairs per gradient estimate."""
    sigma: float
    """Black-box only: finite-difference radius, in input units."""
    seed: int
    progress: ProgressFn | None = field(default=None, repr=False)

    @property
    def image_shaped(self) -> bool:
        """True when a sample has at least two spatial dimensions (the TV prior applies)."""
        return len(self.target.input_shape) >= 2


@dataclass
class InversionSearch:
    """What a method found: the best input per class and what it cost to find."""

    images: np.ndarray
    """``(k, *input_shape)`` float32, the lowest-cost input seen for each class."""
    costs: np.ndarray
    """``(k,)`` the cost of each image (model cost plus priors), inf if never evaluated."""
    steps: np.ndarray
    """``(k,)`` optimisation steps taken per class."""
    queries: np.ndarray
    """``(k,)`` samples the target answered per class."""
    interrupted: bool = False
    """True when the query budget or Ctrl-C stopped the search early."""
    notes: list[str] = field(default_factory=list)


SearchFn = Callable[[InversionProblem], InversionSearch]


@dataclass(frozen=True)
class Reconstruction:
    """One class's reconstruction and how much it reveals."""

    label: int
    """The class it reconstructs."""
    image: np.ndarray
    """The reconstructed input, ``input_shape`` float32 inside the target's input range."""
    confidence: float
    """The target's probability of `label` on `image`, from a fresh query, in [0, 1]."""
    predicted: int
    """The class the target predicts for `image`."""
    distance_to_class_mean: float | None
    """L2 distance (input units) to the mean reference record of `label`; None without
    reference data for that class."""
    distance_to_other_means: float | None
    """Average L2 distance to the mean records of the other classes in the reference data."""
    baseline_distance: float | None
    """L2 distance from the class-agnostic mean record (what an attacker knows without the
    model) to the class mean: a reconstruction closer than this learned something about
    the class from the model."""
    nearest_class: int | None
    """The class whose mean record is nearest to `image`."""
    distance_to_nearest_record: float | None
    """L2 distance to the closest reference record of `label` (the nearest individual)."""
    nearest_record: int | None
    """Index into the reference data of that record."""
    steps: int
    queries: int

    @property
    def recovered(self) -> bool:
        """The target classifies the reconstruction as its class."""
        return self.predicted == self.label

    @property
    def closer_than_baseline(self) -> bool | None:
        """Closer to the class mean than the class-agnostic baseline is; None without data."""
        if self.distance_to_class_mean is None or self.baseline_distance is None:
            return None
        return self.distance_to_class_mean < self.baseline_distance


@dataclass
class InversionResult:
    """Every class's reconstruction, and what the inversion cost."""

    reconstructions: list[Reconstruction]
    method: Method
    queries: int
    """Samples the target answered during the search (the final check is not counted)."""
    seconds: float
    start: np.ndarray
    """The neutral input the search started from."""
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)

    def images(self) -> np.ndarray:
        """The reconstructions stacked, ``(k, *input_shape)`` float32, for an image grid."""
        return np.stack([r.image for r in self.reconstructions])

    @property
    def success_rate(self) -> float:
        """Fraction of classes whose reconstruction the target assigns to that class."""
        return float(np.mean([r.recovered for r in self.reconstructions]))

    @property
    def mean_confidence(self) -> float:
        """The target's average probability of the reconstructed class."""
        return float(np.mean([r.confidence for r in self.reconstructions]))

    @property
    def identification_rate(self) -> float | None:
        """Fraction of classes whose reconstruction lies nearest to its own class mean (the
        reconstruction is recognisably that class); None without reference data."""
        hits = [
            r.nearest_class == r.label for r in self.reconstructions if r.nearest_class is not None
        ]
        return float(np.mean(hits)) if hits else None


# -- image priors, shared by both methods (NumPy form; mi_face has the torch twin) -----------


def tv_penalty(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared total variation of each image in a batch ``(k, ..., h, w)`` over its last two
    dimensions, per value: ``(penalty (k,), gradient like x)``."""
    size = int(np.prod(x.shape[1:]))
    down = np.diff(x, axis=-2)
    right = np.diff(x, axis=-1)
    penalty = (
        np.square(down).reshape(len(x), -1).sum(axis=1)
        + np.square(right).reshape(len(x), -1).sum(axis=1)
    ) / size
    gradient = np.zeros_like(x)
    gradient[..., 1:, :] += 2.0 * down
    gradient[..., :-1, :] -= 2.0 * down
    gradient[..., :, 1:] += 2.0 * right
    gradient[..., :, :-1] -= 2.0 * right
    return penalty, gradient / size


def l2_penalty(x: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean squared distance of each input in a batch to `start`: ``(penalty (k,), gradient)``."""
    size = int(np.prod(x.shape[1:]))
    offset = x - start[None]
    return np.square(offset).reshape(len(x), -1).sum(axis=1) / size, 2.0 * offset / size


class Tracker:
    """The per-class bookkeeping both methods share: best input and cost, patience, budget."""

    def __init__(self, problem: InversionProblem) -> None:
        k = len(problem.classes)
        self.problem = problem
        self.images = np.repeat(problem.start[None], k, axis=0)
        self.costs = np.full(k, np.inf)
        self.steps = np.zeros(k, dtype=np.int64)
        self.queries = np.zeros(k, dtype=np.int64)
        self.stale = np.zeros(k, dtype=np.int64)
        self.active = np.ones(k, dtype=bool)
        self.capped = np.zeros(k, dtype=bool)
        """Classes stopped by `max_queries` before converging."""
        self.notes: list[str] = []

    def affordable(self, per_class: int) -> np.ndarray:
        """Indices of the classes still searching that can pay `per_class` more samples; the
        others stop here."""
        cap = self.problem.max_queries
        if cap is not None:
            broke = self.active & (self.queries + per_class > cap)
            self.capped |= broke
            self.active &= ~broke
        self.active &= self.steps < self.problem.steps
        return np.flatnonzero(self.active)

    def observe(self, index: np.ndarray, x: np.ndarray, cost: np.ndarray, queries: int) -> None:
        """Record one step for classes `index`: inputs `x` had costs `cost`; `queries` samples
        were spent on each. Keeps the best input and stops classes that ran out of patience."""
        self.steps[index] += 1
        self.queries[index] += queries
        better = cost < self.costs[index]
        self.images[index[better]] = x[better]
        previous = self.costs[index]
        margin = self.problem.tolerance * np.maximum(
            np.abs(np.where(np.isfinite(previous), previous, 0.0)), 1.0
        )
        progressed = ~np.isfinite(previous) | (cost < previous - margin)
        self.costs[index[better]] = cost[better]
        self.stale[index] = np.where(progressed, 0, self.stale[index] + 1)
        self.active[index[self.stale[index] >= self.problem.patience]] = False

    def tick(self) -> None:
        """Report progress: the steps taken by the class furthest along, out of `steps`."""
        if self.problem.progress is not None:
            self.problem.progress("inversion", int(self.steps.max()), self.problem.steps)

    def result(self, *, interrupted: bool) -> InversionSearch:
        """What the search found."""
        if self.capped.any():
            capped = [int(c) for c in self.problem.classes[self.capped]]
            self.notes.append(
                f"class(es) {capped} stopped at max_queries={self.problem.max_queries} per "
                "class before converging"
            )
        return InversionSearch(
            images=self.images.astype(np.float32),
            costs=self.costs.copy(),
            steps=self.steps.copy(),
            queries=self.queries.copy(),
            interrupted=interrupted,
            notes=list(dict.fromkeys(self.notes)),
        )


def stop_note(reason: BaseException) -> str:
    """The note a search leaves when the query budget or Ctrl-C stops it."""
    from mlwarden.errors import QueryBudgetExceeded

    if isinstance(reason, QueryBudgetExceeded):
        return f"stopped early: {reason}; the reconstructions are the best found so far"
    return "interrupted; the reconstructions are the best found so far"
