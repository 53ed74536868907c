"""Square attack (Andriushchenko et al. 2020): score-based black-box evasion by random search.

Every iteration proposes, for each input not yet fooled, a change confined to one random square
window (linf: ±eps per channel over the window; l2: a pair of pseudo-Gaussian bumps that moves
budget between two windows) and keeps it when it lowers the loss: the margin between the true
class and the runner-up (untargeted) or the cross-entropy of the target class (targeted). The
window shrinks over the queries on the paper's schedule. It needs only class probabilities
(`Target.predict_proba`), so it attacks any model, and it is AutoAttack's check for gradient
masking: a white-box attack that loses to it was misled by the gradients. Not for: targets that
return labels only (use ``hopskipjump``), or finding minimal perturbations.
"""

from __future__ import annotations

import numpy as np

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
from mlwarden.targets.base import Target

SPEC = AttackSpec(name="square", title="Square attack", white_box=False, norms=("linf", "l2"))

DEFAULT_QUERIES = 5000
"""AutoAttack's budget per sample; inputs that are fooled early stop costing queries."""

_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64))
_SCHEDULE_TAIL = ((6000, 128), (8000, 256))
_LOG_FLOOR = float(np.log(np.finfo(np.float32).tiny))


def p_schedule(p_init: float, iteration: int, n_iterations: int) -> float:
    """Fraction of the input a window covers at `iteration` of `n_iterations` (the paper's steps).

    The schedule is piecewise constant on a 10 000-iteration scale, halving `p_init` at
    iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000, rescaled to `n_iterations`.
    """
    position = int(iteration / max(n_iterations, 1) * 10000)
    for bound, divisor in _SCHEDULE + _SCHEDULE_TAIL:
        if position <= bound:
            return p_init / divisor
    return p_init / 512


def _image_view(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(channels, height, width) the windows live in; flat inputs are one row of features."""
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    return 1, 1, int(np.prod(shape))


def _window(p: float, height: int, width: int, *, smallest: int, margin: int) -> tuple[int, int]:
    """Window (rows, columns) covering about a fraction `p` of each channel.

    Images get square windows of side at most ``min(height, width) - margin``; a row of
    features gets windows one row high and at most ``width - margin`` long.
    """
    if height == 1:
        extent, side = width, round(p * width)
    else:
        extent, side = min(height, width), round(np.sqrt(p * height * width))
    largest = max(extent - margin, 1)
    side = int(np.clip(side, min(smallest, largest), largest))
    return (1, side) if height == 1 else (side, side)


def _window_index(
    n: int, channels: int, shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fancy index of one window per sample, selecting ``(n, channels, *shape)``."""
    sample = np.arange(n)[:, None, None, None]
    channel = np.arange(channels)[None, :, None, None]
    row = rows[:, None, None, None] + np.arange(shape[0])[None, None, :, None]
    col = cols[:, None, None, None] + np.arange(shape[1])[None, None, None, :]
    return sample, channel, row, col


def _random_corners(
    rng: np.random.Generator, n: int, height: int, width: int, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    rows = rng.integers(0, height - shape[0] + 1, size=n)
    cols = rng.integers(0, width - shape[1] + 1, size=n)
    return rows, cols


def _losses(probs: np.ndarray, goal: np.ndarray, targeted: bool) -> tuple[np.ndarray, np.ndarray]:
    """(loss to minimise, predicted labels) from probabilities; log-probabilities act as logits."""
    logp = np.log(np.maximum(probs.astype(np.float64), np.finfo(np.float32).tiny))
    logp = np.maximum(logp, _LOG_FLOOR)
    rows = np.arange(len(goal))
    own = logp[rows, goal]
    if targeted:
        loss = -own
    else:
        others = logp.copy()
        others[rows, goal] = -np.inf
        loss = own - others.max(axis=1)
    return loss, probs.argmax(axis=1)


def _rectangle_bump(rows: int, cols: int) -> np.ndarray:
    """The paper's pseudo-Gaussian: nested rectangles weighted 1/k**2, unit l2 norm."""
    bump = np.zeros((rows, cols))
    if rows == 0 or cols == 0:
        return bump
    centre_r, centre_c = rows // 2, cols // 2
    for k in range(max(centre_r, centre_c) + 1):
        bump[
            max(centre_r - k, 0) : min(centre_r + k + 1, rows),
            max(centre_c - k, 0) : min(centre_c + k + 1, cols),
        ] += 1.0 / (k + 1) ** 2
    return np.asarray(bump / np.sqrt((bump**2).sum()))


def _split_bump(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Two opposite-signed bumps side by side: moves mass within a window, unit l2 norm."""
    rows, cols = shape
    bump = np.zeros(shape)
    if rows >= 2:
        bump[: rows // 2] = _rectangle_bump(rows // 2, cols)
        bump[rows // 2 :] = -_rectangle_bump(rows - rows // 2, cols)
    else:
        bump[:, : cols // 2] = _rectangle_bump(1, cols // 2)
        bump[:, cols // 2 :] = -_rectangle_bump(1, cols - cols // 2)
    bump /= np.sqrt((bump**2).sum())
    if rows == cols and rng.random() > 0.5:
        bump = bump.T
    return bump


class _Search:
    """The random search over the samples of one run; `propose` differs per norm."""

    def __init__(self, state: AttackState, target: Target, view: tuple[int, int, int]) -> None:
        self.state = state
        self.target = target
        self.view = view
        self.eps = float(state.threat.eps or 0.0)
        self.low, self.high = state.threat.input_range
        n = len(state.x)
        self.x = state.x.reshape(n, *view)
        self.best = self.x.copy()
        self.loss = np.full(n, np.inf)
        self.rng = state.rng(0)

    def evaluate(self, index: np.ndarray, candidates: np.ndarray) -> None:
        """Query `candidates` for samples `index`; keep improvements, record what fools."""
        probs = self.target.predict_proba(candidates.reshape(len(index), *self.state.x.shape[1:]))
        loss, predictions = _losses(probs, self.state.goal[index], self.state.targeted)
        improved = loss < self.loss[index]
        self.loss[index[improved]] = loss[improved]
        self.best[index[improved]] = candidates[improved]
        fooled = self.state.is_adversarial(predictions, index)
        self.state.record(index[fooled], candidates[fooled].reshape(-1, *self.state.x.shape[1:]))

    def active(self) -> np.ndarray:
        return np.flatnonzero(~self.state.found)

    def _signs(self, shape: tuple[int, ...]) -> np.ndarray:
        """Random -1 / +1 of `shape`."""
        return np.asarray(self.rng.integers(0, 2, size=shape) * 2.0 - 1.0)


class _LinfSearch(_Search):
    def _other_pattern(self, signs: np.ndarray) -> np.ndarray:
        """Per row, a sign pattern drawn uniformly among those that differ from `signs`."""
        if signs.shape[1] == 1:
            return -signs
        fresh = self._signs(signs.shape) * self.eps
        while (repeat := (fresh == signs).reshape(len(signs), -1).all(axis=1)).any():
            fresh[repeat] = self._signs(fresh[repeat].shape) * self.eps
        return fresh

    def initial(self, index: np.ndarray) -> np.ndarray:
        channels, _, width = self.view
        # vertical stripes: one random sign per column and channel, the paper's initialisation
        stripes = self._signs((len(index), channels, 1, width)) * self.eps
        return np.asarray(np.clip(self.x[index] + stripes, self.low, self.high), dtype=np.float32)

    def propose(self, index: np.ndarray, p: float) -> np.ndarray:
        channels, height, width = self.view
        shape = _window(p, height, width, smallest=1, margin=1)
        n = len(index)
        rows, cols = _random_corners(self.rng, n, height, width, shape)
        where = _window_index(n, channels, shape, rows, cols)
        in_run = (index[:, None, None, None], *where[1:])
        clean = self.x[in_run]
        current = self.best[in_run]
        signs = self._signs((n, channels, 1, 1)) * self.eps
        proposal = np.clip(clean + signs, self.low, self.high)
        same = (np.abs(proposal - current) < 1e-7).reshape(n, -1).all(axis=1)
        if same.any():
            # a proposal that leaves the window as it is would waste a query; the paper draws
            # again until it differs. Only the current sign pattern is unchanged, so any other
            # pattern, drawn uniformly, gives the same distribution
            signs[same] = self._other_pattern(signs[same])
            proposal[same] = np.clip(clean[same] + signs[same], self.low, self.high)
        candidates: np.ndarray = self.best[index]
        candidates[where] = proposal
        return candidates


class _L2Search(_Search):
    def initial(self, index: np.ndarray) -> np.ndarray:
        channels, height, width = self.view
        n = len(index)
        delta = np.zeros((n, channels, height, width))
        tile_rows = max(height // 5, 1)
        tile_cols = max(width // 5, 1) if height == 1 else tile_rows
        bump = _rectangle_bump(tile_rows, tile_cols)
        start_r = max((height - 5 * tile_rows) // 2, 0)
        start_c = max((width - 5 * tile_cols) // 2, 0)
        # the paper's grid: as many whole tiles as fit, centred
        for top in range(start_r, start_r + (height // tile_rows) * tile_rows, tile_rows):
            for left in range(start_c, start_c + (width // tile_cols) * tile_cols, tile_cols):
                part = bump[: height - top, : width - left]
                signs = self._signs((n, channels, 1, 1))
                delta[:, :, top : top + tile_rows, left : left + tile_cols] += part * signs
        return self._rescaled(self.x[index], delta)

    def _rescaled(self, clean: np.ndarray, delta: np.ndarray) -> np.ndarray:
        norms = np.sqrt((delta**2).sum(axis=(1, 2, 3), keepdims=True))
        scaled = delta * (self.eps / np.maximum(norms, 1e-12))
        return np.asarray(np.clip(clean + scaled, self.low, self.high), dtype=np.float32)

    def propose(self, index: np.ndarray, p: float) -> np.ndarray:
        channels, height, width = self.view
        shape = _window(p, height, width, smallest=3, margin=0)
        if height > 1 and shape[0] % 2 == 0 and shape[0] < min(height, width):
            shape = (shape[0] + 1, shape[1] + 1)
        n = len(index)
        clean = self.x[index].astype(np.float64)
        delta = self.best[index] - clean
        first = _window_index(
            n, channels, shape, *_random_corners(self.rng, n, height, width, shape)
        )
        second = _window_index(
            n, channels, shape, *_random_corners(self.rng, n, height, width, shape)
        )
        in_first = delta[first]
        first_norm = np.sqrt((in_first**2).sum(axis=(2, 3), keepdims=True))
        image_norm = np.sqrt((delta**2).sum(axis=(1, 2, 3), keepdims=True))
        covered = np.zeros_like(delta, dtype=bool)
        covered[first] = True
        covered[second] = True
        windows_norm = np.sqrt(((delta * covered) ** 2).sum(axis=(2, 3), keepdims=True))
        signs = self._signs((n, channels, 1, 1))
        update = _split_bump(shape, self.rng) * signs + in_first / (1e-10 + first_norm)
        # the new window takes the mass of both windows plus whatever budget is still unused
        mass = np.sqrt(np.maximum(self.eps**2 - image_norm**2, 0.0) / channels + windows_norm**2)
        update *= mass / np.maximum(np.sqrt((update**2).sum(axis=(2, 3), keepdims=True)), 1e-12)
        delta[second] = 0.0
        delta[first] = update
        return self._rescaled(clean, delta)


def _square(state: AttackState, target: Target, /, *, queries: int, p_init: float) -> None:
    if not state.threat.eps:
        return
    view = _image_view(target.input_shape)
    search: _Search
    if state.threat.norm == "linf":
        search = _LinfSearch(state, target, view)
    else:
        search = _L2Search(state, target, view)
    index = search.active()
    if len(index):
        search.evaluate(index, search.initial(index))
    state.tick(1, queries)
    for iteration in range(queries - 1):
        index = search.active()
        if len(index) == 0:
            break
        p = p_schedule(p_init, iteration, queries)
        search.evaluate(index, search.propose(index, p))
        state.tick(iteration + 2, queries)


@register_attack(SPEC)
def square(
    target: Target,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float,
    norm: Norm = "linf",
    queries: int = DEFAULT_QUERIES,
    p_init: float = 0.8,
    y_target: np.ndarray | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> AttackResult:
    """Square attack: random search over square windows, using only class probabilities.

    Args:
        target: any target that returns probabilities (black-box is enough).
        x: clean inputs ``(n, *input_shape)`` inside the target's input range; images are
            ``(C, H, W)`` or ``(H, W)``, any other shape is searched as one row of features.
        y: true labels ``(n,)``.
        eps: perturbation budget in input units under `norm` (e.g. 8/255 for linf on [0, 1]).
        norm: ``linf`` or ``l2``.
        queries: queries per sample, >= 1 (the first one scores the initial perturbation);
            a sample stops as soon as it is fooled.
        p_init: fraction of each channel the first windows cover, in (0, 1]; halved on the
            paper's schedule as queries are spent.
        y_target: labels to reach for a targeted attack; None for untargeted.
        seed: seeds the windows and signs.
        progress: ``progress(done, total)`` callback in queries per sample.
    """
    if target.output == "labels":
        raise InputError(
            f"square needs class probabilities; {target.name} answers labels only. "
            "Use hopskipjump, which needs only labels"
        )
    if isinstance(queries, bool) or not isinstance(queries, (int, np.integer)) or queries < 1:
        raise InputError(f"queries must be a whole number >= 1 per sample, got {queries!r}")
    if not (isinstance(p_init, (int, float)) and 0.0 < p_init <= 1.0):
        raise InputError(f"p_init must be a fraction in (0, 1], got {p_init!r}")
    return run_attack(
        _square,
        SPEC,
        target,
        x,
        y,
        eps=eps,
        norm=norm,
        y_target=y_target,
        seed=seed,
        progress=progress,
        params={"queries": int(queries), "p_init": float(p_init)},
    )
