"""Reference-model training overhead: `train_reference` against the same training by hand.

The issue's target: training reference models through mlwarden costs under 10% more than plain
training. "Plain" is what a user would write without mlwarden: for each of k models, train on
the same half of the population with the same train_fn and ask it once for its probabilities on
every candidate and population record (the reference outputs the attacks need). "mlwarden" is
`train_reference` for the same k models, offline, one process, first without a cache, then
writing a fresh cache, then reading it back. Two train_fns: a scikit-learn LogisticRegression
and a small PyTorch MLP (`TorchTrainer`) on scikit-learn's digits. Each timing is the best of
``--repeats`` runs, the runs interleaved (and their order alternated) so that load from other
processes hits both sides; CPU time (one thread) is the fair comparison on a shared machine,
wall time is shown too.

    python benchmarks/privacy/overhead.py [--models 8] [--repeats 9]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits
from torch import nn

from mlwarden.attacks.membership.reference import TorchTrainer, as_train_fn, train_reference
from mlwarden.targets import target as as_target

N_CANDIDATES = 400
SEED = 0


def digits_mlp() -> nn.Module:
    """64 pixels -> 128 ReLU -> 10 digits."""
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
"""CPU time of this process (what the comparison is about: one thread, so other processes on a
shared machine barely move it) and wall time (what a user waits)."""


@dataclass
class Timing:
    """Best time of each side, per clock."""

    name: str
    best: dict[tuple[str, str], float] = field(default_factory=dict)

    def keep(self, side: str, clock: str, seconds: float) -> None:
        key = (side, clock)
        self.best[key] = min(self.best.get(key, float("inf")), seconds)

    def row(self, clock: str) -> str:
        plain = self.best[("plain", clock)]
        reference = self.best[("reference", clock)]
        writing = self.best[("writing cache", clock)]
        reading = self.best[("reading cache", clock)]
        return (
            f"| {self.name} | {clock} | {plain:.2f} s | {reference:.2f} s | "
            f"{reference / plain - 1:+.1%} | {writing:.2f} s | {writing / plain - 1:+.1%} "
            f"| {reading:.3f} s |"
        )


@contextlib.contextmanager
def timed(timing: Timing, side: str) -> Iterator[None]:
    started = {clock: read() for clock, read in CLOCKS.items()}
    yield
    for clock, read in CLOCKS.items():
        timing.keep(side, clock, read() - started[clock])


def plain_training(
    train_fn: Callable[[np.ndarray, np.ndarray, int], Any],
    x_everything: np.ndarray,
    population: tuple[np.ndarray, np.ndarray],
    halves: np.ndarray,
) -> None:
    """k models trained by hand on the given halves, each asked once about every record."""
    x_p, y_p = population
    for i, chosen in enumerate(halves):
        model = train_fn(x_p[chosen], y_p[chosen], SEED + i)
        if isinstance(model, nn.Module):
            with torch.inference_mode():
                model(torch.from_numpy(x_everything)).softmax(dim=1).numpy()
        else:
            model.predict_proba(x_everything)


def through_mlwarden(
    train_fn: Any,
    candidates: tuple[np.ndarray, np.ndarray],
    population: tuple[np.ndarray, np.ndarray],
    k: int,
    cache_dir: Path | None,
) -> Any:
    return train_reference(
        train_fn,
        candidates=candidates,
        population=population,
        n_reference=k,
        mode="offline",
        n_classes=10,
        seed=SEED,
        cache_dir=cache_dir,
        n_jobs=1,
        dask=None,
        progress=None,
    )


def measure(name: str, train_fn: Any, k: int, repeats: int) -> Timing:
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))
    candidates = (x[order[:N_CANDIDATES]], y[order[:N_CANDIDATES]])
    population = (x[order[N_CANDIDATES:]], y[order[N_CANDIDATES:]])
    everything = np.concatenate([candidates[0], population[0]])
    fn = as_train_fn(train_fn)
    halves = through_mlwarden(fn, candidates, population, k, None).in_population
    as_target(digits_mlp(), input_shape=(64,))  # warm the torch adapter import for both sides
    timing = Timing(name)

    def plain() -> None:
        with timed(timing, "plain"):
            plain_training(fn, everything, population, halves)

    def mlwarden() -> None:
        with timed(timing, "reference"):
            through_mlwarden(fn, candidates, population, k, None)
        with tempfile.TemporaryDirectory() as folder:
            with timed(timing, "writing cache"):
                through_mlwarden(fn, candidates, population, k, Path(folder))
            with timed(timing, "reading cache"):
                again = through_mlwarden(fn, candidates, population, k, Path(folder))
            assert again.cached == k

    for repeat in range(repeats):
        # Alternate which side goes first: allocator and cache warm-up favour the second.
        for run in (plain, mlwarden) if repeat % 2 == 0 else (mlwarden, plain):
            run()
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=8, help="reference models (k)")
    parser.add_argument("--repeats", type=int, default=9, help="runs per timing; best is kept")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cases = {
        "LogisticRegression (scikit-learn)": LogisticRegression(max_iter=1000),
        "MLP 64-128-10, 10 epochs (TorchTrainer)": TorchTrainer(
            digits_mlp, epochs=10, lr=1e-3, batch_size=64
        ),
    }
    print(
        f"{args.models} reference models on halves of {1797 - N_CANDIDATES} digits, queried on "
        f"all 1797; one process, one thread, best of {args.repeats}\n"
    )
    print(
        "| train_fn | clock | plain | train_reference | overhead | with cache write | overhead "
        "| cache read |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for name, train_fn in cases.items():
            timing = measure(name, train_fn, args.models, args.repeats)
            for clock in CLOCKS:
                print(timing.row(clock), flush=True)


if __name__ == "__main__":
    main()
