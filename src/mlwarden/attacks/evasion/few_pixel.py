"""Few-pixel attack (Su, Vargas, Sakurai 2019): black-box l0 evasion by differential evolution.

A candidate sets `pixels` pixels of the image to chosen values; it is encoded as (row, column,
one value per channel) per pixel. A population of candidates per input evolves by DE/rand/1 with
F = 0.5 and no crossover, as in the paper; a child replaces its parent when it lowers the
probability of the true class (untargeted) or raises that of the target class (targeted). The
population of every input is scored in one batch per generation, and an input stops as soon as
one candidate fools the model. It needs only probabilities. Not for: perturbations spread over
the whole input (use ``square``), or inputs without a pixel layout where one feature per "pixel"
is too coarse a model of the attacker.
"""

from __future__ import annotations

import numpy as np

from mlwarden.attacks.evasion.base import (
    AttackResult,
    AttackSpec,
    AttackState,
    Norm,
    ProgressFn,
    check_eps,
    register_attack,
    run_attack,
)
from mlwarden.errors import InputError
from mlwarden.targets.base import Target

SPEC = AttackSpec(name="pixel", title="Few-pixel attack", white_box=False, norms=("l0",))

MUTATION = 0.5
"""DE's differential weight F, the paper's value."""
DEFAULT_POPULATION = 100
"""Candidates per input. The paper's 400 serves 32x32 colour images; on small inputs 100
finds the same one-pixel examples at a quarter of the queries per generation."""
DEFAULT_GENERATIONS = 100
"""The paper's number of generations."""
_BATCH_VALUES = 1 << 23
"""Input values per scoring batch (32 MiB of float32): bounds memory on large images."""


def pixel_layout(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(channels, height, width) of an input: a pixel spans all channels of one position.

    ``(C, H, W)`` images and ``(H, W)`` grey images have pixels; any other input is a row of
    features, each its own "pixel".
    """
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    return 1, 1, int(np.prod(shape))


class _Evolution:
    """The populations of every input of one run."""

    def __init__(self, state: AttackState, target: Target, pixels: int, population: int) -> None:
        self.state = state
        self.target = target
        self.pixels = pixels
        self.size = population
        self.channels, self.height, self.width = pixel_layout(target.input_shape)
        self.low, self.high = state.threat.input_range
        n = len(state.x)
        self.x = state.x.reshape(n, self.channels, self.height, self.width)
        genes = 2 + self.channels
        self.lower = np.array([0.0, 0.0] + [self.low] * self.channels)
        self.upper = np.array([self.height, self.width] + [self.high] * self.channels, float)
        self.genes = np.zeros((n, population, pixels, genes))
        self.fitness = np.full((n, population), np.inf)
        self.rng = state.rng(0)

    def random_genes(self, shape: tuple[int, ...]) -> np.ndarray:
        """Positions uniform; values Gaussian around mid-range, clipped (the paper's start)."""
        positions = self.rng.uniform(0.0, 1.0, size=(*shape, 2)) * self.upper[:2]
        middle, spread = (self.low + self.high) / 2, (self.high - self.low) / 2
        values = self.rng.normal(middle, spread, size=(*shape, self.channels))
        return np.concatenate([positions, np.clip(values, self.low, self.high)], axis=-1)

    def images(self, index: np.ndarray, genes: np.ndarray) -> np.ndarray:
        """Inputs of samples `index`, one per candidate of `genes` ``(m, P, pixels, g)``."""
        m, size = genes.shape[:2]
        out = np.repeat(self.x[index], size, axis=0)
        flat = genes.reshape(m * size, self.pixels, -1)
        rows = np.minimum(flat[..., 0].astype(np.int64), self.height - 1)
        cols = np.minimum(flat[..., 1].astype(np.int64), self.width - 1)
        out[np.arange(m * size)[:, None], :, rows, cols] = flat[..., 2:]
        return out

    def score(self, index: np.ndarray, genes: np.ndarray) -> np.ndarray:
        """Fitness ``(m, P)`` of candidates (lower is better); records and retires the fooled."""
        chunk = max(1, _BATCH_VALUES // (self.size * self.x[0].size))
        parts = [
            self._score(index[i : i + chunk], genes[i : i + chunk])
            for i in range(0, len(index), chunk)
        ]
        return np.concatenate(parts)

    def _score(self, index: np.ndarray, genes: np.ndarray) -> np.ndarray:
        m, size = genes.shape[:2]
        images = self.images(index, genes)
        probs = self.target.predict_proba(images.reshape(m * size, *self.state.x.shape[1:]))
        owners = np.repeat(index, size)
        own = probs[np.arange(m * size), self.state.goal[owners]]
        fitness: np.ndarray = (-own if self.state.targeted else own).reshape(m, size)
        fooled = self.state.is_adversarial(probs.argmax(axis=1), owners).reshape(m, size)
        hits = np.flatnonzero(fooled.any(axis=1))
        if len(hits):
            # among the fooling candidates of a sample, the one that fools it most confidently
            best = np.where(fooled[hits], fitness[hits], np.inf).argmin(axis=1)
            chosen = images.reshape(m, size, *images.shape[1:])[hits, best]
            self.state.record(index[hits], chosen.reshape(len(hits), *self.state.x.shape[1:]))
        return fitness

    def mutants(self, index: np.ndarray) -> np.ndarray:
        """DE/rand/1: ``a + F (b - c)`` from three distinct other members, out-of-range redrawn."""
        m, size = len(index), self.size
        first = self.rng.integers(0, size - 1, size=(m, size))
        second = self.rng.integers(0, size - 2, size=(m, size))
        second += second >= first
        low, high = np.minimum(first, second), np.maximum(first, second)
        third = self.rng.integers(0, size - 3, size=(m, size))
        third += third >= low
        third += third >= high
        members = np.arange(size)[None, :]
        rows = index[:, None]
        picks = [
            self.genes[rows, (members + 1 + offset) % size] for offset in (first, second, third)
        ]
        trial = picks[0] + MUTATION * (picks[1] - picks[2])
        # out-of-range genes are drawn again at random, as scipy's differential evolution does
        outside = (trial < self.lower) | (trial > self.upper)
        outside[..., :2] |= trial[..., :2] >= self.upper[:2]
        return np.where(outside, self.random_genes(trial.shape[:-1]), trial)


def _pixel(
    state: AttackState, target: Target, /, *, pixels: int, population: int, generations: int
) -> None:
    evolution = _Evolution(state, target, pixels, population)
    index = np.flatnonzero(~state.found)
    if len(index) == 0:
        return
    evolution.genes[index] = evolution.random_genes((len(index), population, pixels))
    evolution.fitness[index] = evolution.score(index, evolution.genes[index])
    state.tick(0, generations)
    for generation in range(1, generations + 1):
        index = np.flatnonzero(~state.found)
        if len(index) == 0:
            break
        trial = evolution.mutants(index)
        fitness = evolution.score(index, trial)
        better = fitness < evolution.fitness[index]
        rows, members = np.nonzero(better)
        evolution.genes[index[rows], members] = trial[rows, members]
        evolution.fitness[index[rows], members] = fitness[rows, members]
        state.tick(generation, generations)


def _whole(name: str, value: object, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise InputError(f"{name} must be a whole number >= {least}, got {value!r}")
    return int(value)


def _pixel_count(eps: float | None, pixels: int | None, channels: int, positions: int) -> int:
    """Pixels to change: given, or as many whole pixels as an l0 `eps` (input values) allows."""
    if pixels is None:
        count = 1 if eps is None else int(eps) // channels
        if count < 1:
            raise InputError(
                f"eps={eps:g} under l0 counts input values and one pixel here is {channels}: "
                f"give eps >= {channels}"
            )
        return min(count, positions)
    count = _whole("pixels", pixels, 1)
    if count > positions:
        raise InputError(f"pixels must be at most {positions} (pixel positions), got {count}")
    if eps is not None and count * channels > eps:
        raise InputError(
            f"{count} pixels change {count * channels} input values, more than eps={eps:g}; "
            "give pixels or eps, not both"
        )
    return count


@register_attack(SPEC)
def pixel(
    target: Target,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float | None = None,
    norm: Norm = "l0",
    pixels: int | None = None,
    population: int = DEFAULT_POPULATION,
    generations: int = DEFAULT_GENERATIONS,
    y_target: np.ndarray | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> AttackResult:
    """Change at most `pixels` pixels, found by differential evolution on the probabilities.

    The threat model is l0, counted in input values: for ``(C, H, W)`` images a pixel is one
    position across all C channels (C values); for flat inputs it is one feature.

    Args:
        target: any target that returns probabilities (black-box is enough).
        x: clean inputs ``(n, *input_shape)`` inside the target's input range.
        y: true labels ``(n,)``.
        eps: l0 budget in input values; without `pixels`, the attack changes
            ``eps // C`` whole pixels. None (default): ``pixels * C``.
        norm: ``l0``, the only norm of this attack.
        pixels: pixels changed per input, from 1 to the number of pixel positions;
            1 when neither this nor `eps` is given.
        population: candidates per input, >= 4 (DE/rand/1 mixes three others).
        generations: DE generations after the first population, >= 0; at most
            ``population * (generations + 1)`` queries per input.
        y_target: labels to reach for a targeted attack; None for untargeted.
        seed: seeds the populations and mutations.
        progress: ``progress(done, total)`` callback in generations.
    """
    if target.output == "labels":
        raise InputError(
            f"pixel needs class probabilities; {target.name} answers labels only. "
            "Use hopskipjump, which needs only labels"
        )
    channels, height, width = pixel_layout(target.input_shape)
    budget = check_eps(eps, "l0", target, required=False)
    count = _pixel_count(budget, pixels, channels, height * width)
    _whole("population", population, 4)
    _whole("generations", generations, 0)
    return run_attack(
        _pixel,
        SPEC,
        target,
        x,
        y,
        eps=float(count * channels) if budget is None else budget,
        norm=norm,
        y_target=y_target,
        seed=seed,
        progress=progress,
        params={"pixels": count, "population": int(population), "generations": int(generations)},
    )
