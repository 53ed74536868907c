"""Output hardening: reveal less of each prediction, never change the prediction itself.

Each wrapper is a `Target` around another target and changes only what the model's answer shows:
`TopK` keeps the k largest probabilities, `Rounding` rounds them, `Temperature` flattens or
sharpens them, `LabelOnly` answers the predicted class alone. The class the model decides on (the
argmax) is the same under every wrapper, so accuracy is untouched; what shrinks is what
confidence-based attacks (membership inference, model inversion, model stealing) can read.
Wrapped targets are black-box (no gradients pass through), and every query is counted once, by
the wrapped target, against its budget.

    from mlwarden.defenses.output import harden
    defended = harden(model, top_k=3, decimals=2)

Not for: training-time defences (`mlwarden.defenses.dp`) or attacks that need only the label:
a label-only answer still leaks membership to label-only attacks (Choquette-Choo et al. 2021).
"""

from __future__ import annotations

import contextlib
import math
from abc import abstractmethod
from collections.abc import Iterator
from typing import Any

import numpy as np

from mlwarden.errors import InputError, UsageError
from mlwarden.targets.base import Output, Target

_LOG_FLOOR = 1e-300
"""Zero probabilities become this before a log: a huge negative logit, never -inf or NaN."""


class HardenedTarget(Target):
    """A target answering through an output transformation that keeps the argmax.

    Subclasses implement `_transform`. Queries are charged to the wrapped target (`inner`):
    `queries` and `query_budget` are the wrapped target's, so wrapping never double counts.
    """

    def __init__(self, inner: Any, *, output: Output | None = None, name: str) -> None:
        """Wrap `inner` (a `Target` or anything `mlwarden.targets.target` wraps)."""
        from mlwarden.targets import target as as_target

        wrapped = as_target(inner)
        super().__init__(
            n_classes=wrapped.n_classes,
            input_shape=wrapped.input_shape,
            input_range=wrapped.input_range,
            output=output or wrapped.output,
            batch_size=wrapped.batch_size,
            name=name.format(inner=wrapped.name),
        )
        self.inner = wrapped
        """The target whose answers are hardened."""

    # Target.__init__ assigns both counters before `inner` exists; those writes are ignored,
    # and afterwards reading or setting them reads or sets the wrapped target's.

    @property
    def queries(self) -> int:
        """Samples answered so far, counted by the wrapped target."""
        return self.inner.queries

    @queries.setter
    def queries(self, value: int) -> None:
        if "inner" in vars(self):
            self.inner.queries = value

    @property
    def query_budget(self) -> int | None:
        """The wrapped target's budget."""
        return self.inner.query_budget

    @query_budget.setter
    def query_budget(self, value: int | None) -> None:
        if "inner" in vars(self):
            self.inner.query_budget = value

    def charge(self, n: int) -> None:
        """Count `n` samples against the wrapped target's budget (unless unmetered here)."""
        if self._metered:
            self.inner.charge(n)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """The wrapped target's session."""
        with self.inner.session():
            yield

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        with self.inner.unmetered():  # charged once already, by predict_proba -> charge
            probs = self.inner.predict_proba(x)
        decision = probs.argmax(axis=1)
        hardened = self._transform(probs.astype(np.float64), decision)
        return keep_decision(hardened.astype(np.float32), decision)

    @abstractmethod
    def _transform(self, probs: np.ndarray, decision: np.ndarray) -> np.ndarray:
        """The answer to show for float64 `probs` ``(n, n_classes)`` whose argmax is
        `decision`."""


class TopK(HardenedTarget):
    """Only the `k` largest probabilities, renormalised to sum to 1; the others are 0.

    Protects: the shape of the full distribution that membership and inversion attacks read.
    Does not protect: the top classes' confidences, which k=1 reduces to a label.
    """

    def __init__(self, inner: Any, k: int) -> None:
        """Keep `k` classes, ``1 <= k <= n_classes``."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise InputError(f"top_k must be a whole number, got {k!r}")
        super().__init__(inner, name=f"{{inner}} (top-{k})")
        if not 1 <= k <= self.n_classes:
            raise InputError(f"top_k must be in [1, {self.n_classes}], got {k}")
        self.k = int(k)

    def _transform(self, probs: np.ndarray, decision: np.ndarray) -> np.ndarray:
        # a stable sort keeps, among tied probabilities, the lowest class first: argmax's choice
        order = np.argsort(-probs, axis=1, kind="stable")[:, : self.k]
        kept = np.zeros_like(probs)
        rows = np.arange(len(probs))[:, None]
        kept[rows, order] = np.maximum(probs[rows, order], 0.0)
        return normalised(kept, decision)


class Rounding(HardenedTarget):
    """Probabilities rounded to `decimals` places, then renormalised to sum to 1.

    Where rounding would make another class tie with the predicted one, that class is rounded
    one step (``10**-decimals``) lower, so the prediction keeps a strict lead; a row rounded to
    all zeros becomes one-hot on the prediction. After renormalisation a value may show more
    digits, but it carries no more information than the rounded row.

    Protects: the small confidence differences membership inference and black-box inversion
    climb. Does not protect: large differences, nor anything the label alone reveals.
    """

    def __init__(self, inner: Any, decimals: int) -> None:
        """Round to `decimals` places, ``decimals >= 0``."""
        if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)):
            raise InputError(f"decimals must be a whole number, got {decimals!r}")
        if decimals < 0:
            raise InputError(f"decimals must be >= 0, got {decimals}")
        super().__init__(inner, name=f"{{inner}} (rounded to {decimals} decimals)")
        self.decimals = int(decimals)

    def _transform(self, probs: np.ndarray, decision: np.ndarray) -> np.ndarray:
        step = 10.0 ** (-self.decimals)
        rounded = np.maximum(np.round(probs, self.decimals), 0.0)
        rows = np.arange(len(probs))
        lead = rounded[rows, decision]
        tied = rounded >= lead[:, None]
        tied[rows, decision] = False
        rounded = np.where(tied, np.maximum(lead[:, None] - step, 0.0), rounded)
        return normalised(rounded, decision)


class LabelOnly(HardenedTarget):
    """Only the predicted class, as a one-hot row (``output == "labels"``).

    Protects: everything confidence-based attacks read. Does not protect: what the decision
    itself reveals: label-only membership inference (how far a record sits from the boundary)
    and decision-based evasion and extraction still work, with more queries.
    """

    def __init__(self, inner: Any) -> None:
        """Answer labels only."""
        super().__init__(inner, output="labels", name="{inner} (label only)")

    def _transform(self, probs: np.ndarray, decision: np.ndarray) -> np.ndarray:
        return one_hot(decision, probs.shape[1])


class Temperature(HardenedTarget):
    """Probabilities softened (``temperature > 1``) or sharpened (``< 1``):
    ``softmax(log p / temperature)``.

    Protects: with a high temperature, the gap between confident and less confident answers
    that separates members from non-members shrinks. Does not protect: the ranking of the
    classes, which is unchanged, and attackers who know the temperature can undo it exactly
    (``log p`` is recovered up to a constant); pair it with `Rounding`.
    """

    def __init__(self, inner: Any, temperature: float) -> None:
        """Scale log-probabilities by ``1 / temperature``, ``temperature > 0``."""
        try:
            value = float(temperature)
        except (TypeError, ValueError):
            raise InputError(f"temperature must be a number, got {temperature!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"temperature must be a finite number > 0, got {temperature!r}")
        super().__init__(inner, name=f"{{inner}} (temperature {value:g})")
        if self.inner.output == "labels":
            raise InputError(
                f"{self.inner.name} answers labels only: there are no probabilities to rescale"
            )
        self.temperature = value

    def _transform(self, probs: np.ndarray, decision: np.ndarray) -> np.ndarray:
        scaled = np.log(np.maximum(probs, _LOG_FLOOR)) / self.temperature
        scaled -= scaled.max(axis=1, keepdims=True)
        weights = np.exp(scaled)
        return np.asarray(weights / weights.sum(axis=1, keepdims=True))


def harden(
    target: Any,
    *,
    top_k: int | None = None,
    decimals: int | None = None,
    label_only: bool = False,
    temperature: float | None = None,
) -> Target:
    """`target` answering through the requested output defences, applied in the order
    temperature, top-k, rounding, label only.

    Args:
        target: a `Target` or anything `mlwarden.targets.target` wraps.
        top_k: keep the k largest probabilities (1 <= k <= n_classes).
        decimals: round probabilities to this many decimal places (>= 0).
        label_only: answer only the predicted class.
        temperature: rescale log-probabilities by 1 / temperature (> 0).

    The predicted class never changes; the result is a black-box target whose queries are
    counted by `target`.
    """
    if top_k is None and decimals is None and not label_only and temperature is None:
        raise UsageError(
            "harden needs at least one defence: top_k=, decimals=, label_only=True or temperature="
        )
    from mlwarden.targets import target as as_target

    defended = as_target(target)
    if temperature is not None:
        defended = Temperature(defended, temperature)
    if top_k is not None:
        defended = TopK(defended, top_k)
    if decimals is not None:
        defended = Rounding(defended, decimals)
    if label_only:
        defended = LabelOnly(defended)
    return defended


# -- shared row operations --------------------------------------------------------------------


def one_hot(decision: np.ndarray, n_classes: int) -> np.ndarray:
    """Float rows ``(n, n_classes)`` with a 1 at each row's `decision`."""
    rows = np.zeros((len(decision), n_classes))
    rows[np.arange(len(decision)), decision] = 1.0
    return rows


def normalised(rows: np.ndarray, decision: np.ndarray) -> np.ndarray:
    """Non-negative `rows` divided by their sums; a row summing to 0 becomes one-hot."""
    total = rows.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0
    out = rows / np.where(empty[:, None], 1.0, total)
    out[empty] = one_hot(decision[empty], rows.shape[1])
    return np.asarray(out)


def keep_decision(rows: np.ndarray, decision: np.ndarray) -> np.ndarray:
    """`rows` with each row's `decision` strictly first: the last guard against float ties
    (a float32 cast of an extreme temperature, a tie the model itself produced)."""
    wrong = rows.argmax(axis=1) != decision
    if wrong.any():
        index = np.flatnonzero(wrong)
        peak = rows[index].max(axis=1)
        rows[index, decision[index]] = np.nextafter(peak, np.float32(np.inf))
    return rows
