"""HopSkipJump (Chen, Jordan, Wainwright 2020): decision-based, minimum-norm black-box evasion.

It sees only the predicted label. From an adversarial starting point it walks along the decision
boundary toward the clean input: a binary search puts the point on the boundary, the sign of the
boundary's normal is estimated from the labels of random points around it, a geometric step
search moves along that estimate while staying adversarial, and the binary search runs again.
Every sample keeps the smallest perturbation found so far, so one run gives robust accuracy at
every eps. All samples advance together: the gradient-estimation probes of every active sample
go to the target back to back, in calls of about 2**16 input values (at least 16 inputs) that
are built and summed in cache. Not for: targets that give probabilities, when the faster
``square`` attack fits a fixed budget.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from mlwarden.attacks.evasion.base import (
    AttackResult,
    AttackSpec,
    AttackState,
    Norm,
    ProgressFn,
    perturbation_norms,
    register_attack,
    run_attack,
)
from mlwarden.errors import InputError
from mlwarden.targets.base import Target, validate_batch

SPEC = AttackSpec(
    name="hopskipjump",
    title="HopSkipJump",
    white_box=False,
    norms=("l2", "linf"),
    minimum_norm=True,
)

_MAX_HALVINGS = 25
"""Step-size halvings before a sample gives up moving this iteration (2**-25 of the distance)."""
_CALL_VALUES = 1 << 16
"""Input values per gradient-estimation call (256 KiB of float32). The probes of a call are
built, queried and summed while they sit in cache, and a model's activations for a call of this
size stay small enough that the allocator tends to reuse them instead of mapping (and
page-faulting) fresh memory on every forward pass: with glibc, a 28x28 CNN on CPU cost up to 1.5x
more per image in calls of 256 images than in calls of 100."""
_MIN_CALL_ROWS = 16
"""Fewest probes per call whatever the input size."""
_INITIAL_DELTA = 0.1
"""First iteration's probe radius, as a fraction of the input range (the paper's choice)."""


class _Walk:
    """The boundary walk of every sample of one run, with each sample's query count."""

    def __init__(self, state: AttackState, target: Target, max_queries: int, gamma: float) -> None:
        self.state = state
        self.target = target
        self.max_queries = max_queries
        self.norm = state.threat.norm
        self.low, self.high = state.threat.input_range
        n = len(state.x)
        self.x = state.x.reshape(n, -1)
        self.dim = self.x.shape[1]
        self.theta = (
            gamma / (self.dim * math.sqrt(self.dim)) if self.norm == "l2" else gamma / self.dim**2
        )
        self.used = np.zeros(n, dtype=np.int64)
        self.points = self.x.copy()
        self.started = np.zeros(n, dtype=bool)
        self.rng = state.rng(0)
        # the target splits a call into its own batches; small inputs get many rows per call
        # so that the per-call NumPy work is spread over them
        self.call_rows = max(_MIN_CALL_ROWS, _CALL_VALUES // self.dim)
        self._buffer = np.empty(self.call_rows * self.dim, dtype=np.float32)
        self._scratch = np.empty(self.call_rows * self.dim + 1, dtype=np.float32)

    # -- the oracle --------------------------------------------------------------------------

    def adversarial(self, owners: np.ndarray, points: np.ndarray) -> np.ndarray:
        """Ask the target for labels of `points` (row i belongs to sample ``owners[i]``)."""
        if len(owners) == 0:
            return np.zeros(0, dtype=bool)
        labels = self.target.predict(points.reshape(len(points), *self.state.x.shape[1:]))
        self.used += np.bincount(owners, minlength=len(self.used))
        hit: np.ndarray = self.state.is_adversarial(labels, owners)
        return hit

    def remaining(self, index: np.ndarray) -> np.ndarray:
        return np.asarray(self.max_queries - self.used[index])

    def distance(self, index: np.ndarray, points: np.ndarray) -> np.ndarray:
        return perturbation_norms(points - self.x[index], self.norm)

    def keep(self, index: np.ndarray) -> None:
        self.state.record_smaller(
            index, self.points[index].reshape(len(index), *self.state.x.shape[1:])
        )

    # -- starting points ---------------------------------------------------------------------

    def start(self, index: np.ndarray, candidates: np.ndarray) -> None:
        """Check `candidates` for samples `index`; the adversarial ones become starting points."""
        affordable = self.remaining(index) > 0
        index, candidates = index[affordable], candidates[affordable]
        ok = self.adversarial(index, candidates)
        self.points[index[ok]] = candidates[ok]
        self.started[index[ok]] = True

    def nearest_in_batch(self, index: np.ndarray) -> np.ndarray:
        """Per sample, the closest other clean input already meeting its goal (-1 for none)."""
        predictions = self.state.clean_predictions
        goal = self.state.goal
        choice = np.full(len(index), -1, dtype=np.int64)
        for row, i in enumerate(index):
            meets = predictions == goal[i] if self.state.targeted else predictions != goal[i]
            meets[i] = False
            if meets.any():
                pool = np.flatnonzero(meets)
                choice[row] = pool[np.argmin(self.distance(np.full(len(pool), i), self.x[pool]))]
        return choice

    def initialise(self, x_init: np.ndarray | None, init_tries: int) -> np.ndarray:
        todo = np.flatnonzero(~self.state.found)
        if x_init is not None:
            self.start(todo, x_init.reshape(len(self.x), -1)[todo])
        todo = todo[~self.started[todo]]
        partner = self.nearest_in_batch(todo)
        has = partner >= 0
        self.start(todo[has], self.x[partner[has]])
        for _ in range(init_tries):
            todo = todo[~self.started[todo] & (self.remaining(todo) > 0)]
            if len(todo) == 0:
                break
            noise = self.rng.uniform(self.low, self.high, size=(len(todo), self.dim))
            self.start(todo, noise.astype(np.float32))
        ready = np.flatnonzero(self.started)
        # a blend toward the clean input first: the box search alone starts far from it
        self.binary_search(ready, self.points[ready], blend=True)
        if self.norm == "linf":
            self.binary_search(ready, self.points[ready], blend=False)
        self.keep(ready)
        return ready

    # -- the three moves ---------------------------------------------------------------------

    def _project(
        self, index: np.ndarray, points: np.ndarray, alpha: np.ndarray, blend: bool
    ) -> np.ndarray:
        clean = self.x[index]
        if blend:
            mixed = (1.0 - alpha[:, None]) * clean + alpha[:, None] * points
            return np.asarray(np.clip(mixed, self.low, self.high), dtype=np.float32)
        box = np.clip(points, clean - alpha[:, None], clean + alpha[:, None])
        return np.asarray(box, dtype=np.float32)

    def binary_search(self, index: np.ndarray, points: np.ndarray, *, blend: bool) -> None:
        """Move each of `points` (adversarial) to the boundary on its way to the clean input."""
        if len(index) == 0:
            return
        lows = np.zeros(len(index))
        if blend:
            highs = np.ones(len(index))
            thresholds = np.full(len(index), self.theta)
        else:
            highs = perturbation_norms(points - self.x[index], "linf")
            thresholds = np.minimum(highs * self.theta, self.theta)
        thresholds = np.maximum(thresholds, 1e-12)
        while True:
            going = ((highs - lows) / thresholds > 1) & (self.remaining(index) > 0)
            if not going.any():
                break
            rows = np.flatnonzero(going)
            mids = (highs[rows] + lows[rows]) / 2
            ok = self.adversarial(
                index[rows], self._project(index[rows], points[rows], mids, blend)
            )
            highs[rows[ok]] = mids[ok]
            lows[rows[~ok]] = mids[~ok]
        self.points[index] = self._project(index, points, highs, blend)

    def gradient(self, index: np.ndarray, evals: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """Unit estimate of the boundary normal at each sample's point (toward adversarial).

        Sample ``index[j]`` gets ``evals[j]`` probes of radius ``delta[j]`` around its point.
        The probes of all samples go to the target back to back, in calls of `call_rows`; each
        call's probes are summed per sample (weighted by their votes, and unweighted) as soon as
        the target answers, so only one call's probes exist at a time.
        """
        n = len(index)
        owner = np.repeat(np.arange(n), evals)
        votes = np.zeros(n)
        weighted = np.zeros((n, self.dim))
        summed = np.zeros((n, self.dim))
        radius = delta.astype(np.float32)
        for begin in range(0, len(owner), self.call_rows):
            rows = owner[begin : begin + self.call_rows]
            base = self.points[index[rows]]
            steps = self._unit_probes(len(rows))
            steps *= radius[rows, None]
            steps += base
            np.clip(steps, self.low, self.high, out=steps)
            signs = np.where(self.adversarial(index[rows], steps), 1.0, -1.0)
            # the step each probe really took, after clipping to the input range
            steps -= base
            # rows are grouped by sample: one segment per sample, summed without BLAS calls
            starts = np.flatnonzero(np.diff(rows, prepend=-1))
            owners = rows[starts]
            summed[owners] += np.add.reduceat(steps, starts, axis=0)
            steps *= signs.astype(np.float32)[:, None]
            weighted[owners] += np.add.reduceat(steps, starts, axis=0)
            votes += np.bincount(rows, weights=signs, minlength=n)
        mean = votes / evals
        # centring the votes reduces variance, unless they all agree (the paper's baseline);
        # every probe of a sample has the same radius, so dividing by it would not change the
        # direction
        centre = np.where(np.abs(mean) < 1.0, mean, 0.0)
        estimate = weighted - centre[:, None] * summed
        scale = np.sqrt((estimate**2).sum(axis=1, keepdims=True))
        return np.asarray(estimate / np.maximum(scale, 1e-30))

    def _unit_probes(self, rows: int) -> np.ndarray:
        """`rows` random unit-l2 directions, float32, in the walk's reused buffer.

        l2: normalised Gaussians (uniform on the sphere); linf: normalised uniform(-1, 1).
        Gaussians come from the Box-Muller transform on float32 uniforms, about three times
        faster than NumPy's ziggurat sampler at float32.
        """
        size = rows * self.dim
        flat = self._buffer[:size]
        if self.norm == "l2":
            half = (size + 1) // 2
            uniform = self._scratch[: 2 * half]
            self.rng.random(out=uniform, dtype=np.float32)
            radius, angle = uniform[:half], uniform[half:]
            # 1 - u lies in (0, 1], so the log is finite
            np.subtract(np.float32(1.0), radius, out=radius)
            np.log(radius, out=radius)
            radius *= np.float32(-2.0)
            np.sqrt(radius, out=radius)
            angle *= np.float32(2.0 * math.pi)
            np.cos(angle[:half], out=flat[:half])
            flat[:half] *= radius
            rest = size - half
            np.sin(angle[:rest], out=flat[half:])
            flat[half:] *= radius[:rest]
        else:
            self.rng.random(out=flat, dtype=np.float32)
            flat *= np.float32(2.0)
            flat -= np.float32(1.0)
        probes = flat.reshape(rows, self.dim)
        lengths = np.sqrt(np.einsum("ij,ij->i", probes, probes))
        probes /= np.maximum(lengths, np.float32(1e-12))[:, None]
        return probes

    def step(self, index: np.ndarray, direction: np.ndarray, iteration: int) -> np.ndarray:
        """Geometric step search from each point along `direction`; returns the new points."""
        size = self.distance(index, self.points[index]) / math.sqrt(iteration)
        result: np.ndarray = self.points[index].copy()
        pending = np.arange(len(index))
        for _ in range(_MAX_HALVINGS):
            pending = pending[self.remaining(index[pending]) > 0]
            if len(pending) == 0:
                break
            candidate = np.clip(
                self.points[index[pending]] + size[pending, None] * direction[pending],
                self.low,
                self.high,
            ).astype(np.float32)
            ok = self.adversarial(index[pending], candidate)
            result[pending[ok]] = candidate[ok]
            size[pending[~ok]] /= 2
            pending = pending[~ok]
        return result


def _hopskipjump(
    state: AttackState,
    target: Target,
    /,
    *,
    max_queries: int,
    steps: int,
    init_evals: int,
    max_evals: int,
    gamma: float,
    init_tries: int,
    x_init: np.ndarray | None,
) -> None:
    walk = _Walk(state, target, max_queries, gamma)
    ready = walk.initialise(x_init, init_tries)
    eps = state.threat.eps
    # the binary searches' cost, kept in reserve so a sample never stops half-way through one
    reserve = math.ceil(math.log2(1.0 / walk.theta)) + 2
    for iteration in range(1, steps + 1):
        active = ready[walk.remaining(ready) > reserve]
        if eps is not None:
            active = active[state.best_norm[active] > eps]
        if len(active) == 0:
            break
        distance = walk.distance(active, walk.points[active])
        if iteration == 1:
            delta = np.full(len(active), _INITIAL_DELTA * (walk.high - walk.low))
        else:
            scale = math.sqrt(walk.dim) if walk.norm == "l2" else walk.dim
            delta = np.maximum(scale * walk.theta * distance, 1e-12)
        wanted = int(min(init_evals * math.sqrt(iteration), max_evals))
        evals = np.minimum(wanted, walk.remaining(active) - reserve)
        direction = walk.gradient(active, evals, delta)
        if walk.norm == "linf":
            direction = np.sign(direction)
        moved = walk.step(active, direction, iteration)
        walk.binary_search(active, moved, blend=walk.norm == "l2")
        walk.keep(active)
        state.tick(iteration, steps)


@register_attack(SPEC)
def hopskipjump(
    target: Target,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float | None = None,
    norm: Norm = "l2",
    max_queries: int = 1000,
    steps: int = 64,
    init_evals: int = 100,
    max_evals: int = 10000,
    gamma: float = 1.0,
    init_tries: int = 100,
    x_init: np.ndarray | None = None,
    y_target: np.ndarray | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> AttackResult:
    """HopSkipJump: the smallest perturbation found from labels alone.

    Starting points, in order: `x_init` where it is adversarial; the nearest other sample of
    `x` whose clean prediction already meets the goal (no query needed); uniform noise, drawn
    up to `init_tries` times. A sample with none of these is left unfooled.

    Args:
        target: any target, labels are enough.
        x: clean inputs ``(n, *input_shape)`` inside the target's input range.
        y: true labels ``(n,)``.
        eps: perturbation budget in input units under `norm`: a sample stops once within it.
            None (default) searches for the smallest perturbation until the queries run out;
            ``result.minimal_norms()`` then gives robust accuracy at every eps.
        norm: ``l2`` or ``linf``.
        max_queries: queries per sample, >= 1, starting points and binary searches included.
        steps: boundary-walk iterations per sample, >= 1.
        init_evals: probes for the first gradient estimate, >= 1; iteration t uses
            ``init_evals * sqrt(t)``, at most `max_evals`.
        max_evals: largest number of probes per gradient estimate.
        gamma: binary-search precision; the search stops at ``gamma / d**1.5`` of the way (l2)
            or ``gamma / d**2`` (linf) for d input values, > 0.
        init_tries: uniform-noise draws per sample when no starting point is known, >= 0.
        x_init: optional adversarial starting points ``(n, *input_shape)`` (for a targeted
            attack, samples of the target classes).
        y_target: labels to reach for a targeted attack; None for untargeted.
        seed: seeds the probes and the noise.
        progress: ``progress(done, total)`` callback in iterations.
    """
    counts = {
        "max_queries": (max_queries, 1),
        "steps": (steps, 1),
        "init_evals": (init_evals, 1),
        "max_evals": (max_evals, 1),
        "init_tries": (init_tries, 0),
    }
    for name, (value, least) in counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise InputError(f"{name} must be a whole number >= {least}, got {value!r}")
    if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma > 0):
        raise InputError(f"gamma must be a positive number, got {gamma!r}")
    start = None
    if x_init is not None:
        start = validate_batch(target, x_init, what="x_init")
        if len(start) != len(np.asarray(x)):
            raise InputError(
                f"x_init needs one starting point per sample ({len(np.asarray(x))}), "
                f"got {len(start)}"
            )
    return run_attack(
        # the starting points go in by closure: params are the run's settings, not its data
        functools.partial(_hopskipjump, x_init=start),
        SPEC,
        target,
        x,
        y,
        eps=eps,
        norm=norm,
        y_target=y_target,
        seed=seed,
        progress=progress,
        params={
            "max_queries": int(max_queries),
            "steps": int(steps),
            "init_evals": int(init_evals),
            "max_evals": int(max_evals),
            "gamma": float(gamma),
            "init_tries": int(init_tries),
        },
    )
