"""Attribute inference (ML03): recover a sensitive feature of a record from the model's answers.

The attacker knows a record's other features and its true label, and can query the model. For
each candidate value of the sensitive feature it asks the model about the record completed with
that value, and guesses the value under which the model best explains the known label
(Fredrikson et al. 2014; Yeom et al. 2018): the highest probability of the label, or with a
label-only target, a prediction equal to the label. Ties go to the value the prior makes most
likely. The attack is worth reporting only by how far it beats guessing without the model:
always the most frequent value (`baseline_accuracy`), or a draw from the feature's distribution
(`marginal_accuracy`).

    from mlwarden.attacks.attribute import infer_attribute
    result = infer_attribute(model, x_train, y_train, feature=3)
    print(result.accuracy, result.baseline_accuracy, result.advantage)

Continuous features are split into at most `max_bins` quantile bins; the attack then recovers
the bin. Not for: reconstructing whole inputs (`mlwarden.attacks.inversion`) or membership
(`mlwarden.attacks.membership`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mlwarden.errors import InputError, QueryBudgetExceeded

if TYPE_CHECKING:
    from mlwarden.audit.runner import ProgressFn
    from mlwarden.targets.base import Target

Rule = Literal["likelihood", "map"]
"""``likelihood``: the value under which the label is most probable, ties to the prior (the
attack of the brief, and of Yeom et al.); ``map``: that probability weighted by the prior
(Fredrikson et al. 2014), stronger when the feature's values are far from equally common."""

DEFAULT_MAX_BINS = 10


@dataclass(frozen=True)
class AttributeResult:
    """How well the sensitive feature was recovered, against guessing without the model."""

    feature: int
    """Index of the sensitive feature in a flattened record."""
    values: tuple[float, ...]
    """Candidate values tried (for a binned feature, each bin's median)."""
    accuracy: float
    """Fraction of records whose value (or bin) the attack recovered."""
    baseline_accuracy: float
    """Accuracy of always guessing the value the prior makes most likely."""
    marginal_accuracy: float
    """Expected accuracy of guessing by drawing from the prior."""
    n: int
    """Records attacked (fewer than given when the query budget ran out)."""
    guesses: np.ndarray = field(repr=False)
    """``(n,)`` index into `values` of each record's guess."""
    truth: np.ndarray = field(repr=False)
    """``(n,)`` index into `values` of each record's real value (nearest value, or its bin)."""
    prior: tuple[float, ...]
    """Probability of each candidate value the attacker assumed (the data's own frequencies
    unless given)."""
    bin_edges: tuple[float, ...] | None
    """Inner edges of the quantile bins for a binned feature; None when values are exact."""
    rule: Rule
    label_only: bool
    """True when the target answered labels only and the attack matched predicted classes."""
    queries: int
    seconds: float
    interrupted: bool = False
    notes: tuple[str, ...] = ()

    @property
    def advantage(self) -> float:
        """``accuracy - baseline_accuracy``: what the model adds to the best blind guess."""
        return self.accuracy - self.baseline_accuracy

    @property
    def exposed(self) -> np.ndarray:
        """Indices (into the records given) whose value the attack recovered."""
        return np.flatnonzero(self.guesses == self.truth)


@dataclass(frozen=True)
class _Candidates:
    values: np.ndarray
    """``(m,)`` float32 values to try."""
    truth: np.ndarray
    """``(n,)`` int64 index of each record's real value."""
    bin_edges: np.ndarray | None


def infer_attribute(
    target: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    feature: int,
    values: Sequence[float] | None = None,
    prior: Sequence[float] | None = None,
    rule: Rule = "likelihood",
    max_bins: int = DEFAULT_MAX_BINS,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> AttributeResult:
    """Infer feature `feature` of every record of `x` from the other features and its label.

    Args:
        target: a `Target` or anything `mlwarden.targets.target` wraps; black-box is enough,
            and label-only targets work too.
        x: records ``(n, *input_shape)`` in the target's input units; their own values of the
            feature are the ground truth and are never shown to the target.
        y: the records' true labels ``(n,)`` (class indices).
        feature: index of the sensitive feature in a flattened record, ``0 <= feature < d``.
        values: candidate values; None: the distinct values of the feature in `x`, or the
            medians of at most `max_bins` quantile bins when it has more distinct values.
            With explicit values, a record's truth is the value nearest its own.
        prior: probability of each candidate value (same order, >= 0, normalised here); None:
            the frequencies in `x`. Breaks ties, weights the guess under ``rule="map"``, and
            defines both baselines.
        rule: ``likelihood`` (default) or ``map``; see `Rule`.
        max_bins: most bins for a continuous feature (>= 2).
        seed: breaks ties that the prior leaves.
        progress: ``progress("attribute inference", records_done, n)`` callback.

    Costs ``n * len(values)`` queries. When the target's query budget runs out, the result
    covers the records done so far, with a note.
    """
    from mlwarden.targets import target as as_target
    from mlwarden.targets.base import validate_batch, validate_labels

    started = time.perf_counter()
    target = as_target(target)
    records = validate_batch(target, np.asarray(x), what="records")
    labels = validate_labels(np.asarray(y), len(records), target.n_classes)
    flat = records.reshape(len(records), -1)
    column = _checked_feature(feature, flat.shape[1])
    if rule not in ("likelihood", "map"):
        raise InputError(f"rule must be likelihood or map; got {rule!r}")
    if isinstance(max_bins, bool) or not isinstance(max_bins, int) or max_bins < 2:
        raise InputError(f"max_bins must be a whole number >= 2, got {max_bins!r}")
    candidates = _candidates(flat[:, column], values, max_bins, target, column)
    weights = _prior(prior, candidates)
    queries_before = target.queries
    guesses, interrupted, notes = _guess(
        target, records, labels, column, candidates.values, weights, rule, seed, progress
    )
    done = len(guesses)
    truth = candidates.truth[:done]
    frequency = np.bincount(truth, minlength=len(candidates.values)) / done
    accuracy = float(np.mean(guesses == truth))
    baseline = float(np.mean(truth == int(np.argmax(weights))))
    if rule == "likelihood" and accuracy < baseline:
        notes.append(
            "the attack did worse than always guessing the most common value: the model's "
            "answers alone favour rarer values; rule='map' weighs them by the prior"
        )
    return AttributeResult(
        feature=column,
        values=tuple(float(v) for v in candidates.values),
        accuracy=accuracy,
        baseline_accuracy=baseline,
        marginal_accuracy=float(np.dot(weights, frequency)),
        n=done,
        guesses=guesses,
        truth=truth,
        prior=tuple(float(p) for p in weights),
        bin_edges=None
        if candidates.bin_edges is None
        else tuple(float(e) for e in candidates.bin_edges),
        rule=rule,
        label_only=target.output == "labels",
        queries=target.queries - queries_before,
        seconds=time.perf_counter() - started,
        interrupted=interrupted,
        notes=tuple(notes),
    )


def _checked_feature(feature: int, width: int) -> int:
    if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)):
        raise InputError(f"feature must be a column index (int), got {feature!r}")
    if not 0 <= int(feature) < width:
        raise InputError(
            f"feature {int(feature)} does not exist: records have {width} features "
            f"(indices 0 to {width - 1})"
        )
    return int(feature)


def _candidates(
    column: np.ndarray,
    values: Sequence[float] | None,
    max_bins: int,
    target: Target,
    feature: int,
) -> _Candidates:
    """The values to try and each record's true one."""
    if values is not None:
        return _given_values(column, values, target)
    distinct = np.unique(column)
    if len(distinct) < 2:
        raise InputError(
            f"feature {feature} takes the single value {distinct[0]:g} in these records: "
            "there is nothing to infer (give values= to try others)"
        )
    if len(distinct) <= max_bins:
        return _Candidates(distinct, np.searchsorted(distinct, column).astype(np.int64), None)
    return _quantile_bins(column, max_bins)


def _given_values(column: np.ndarray, values: Sequence[float], target: Target) -> _Candidates:
    try:
        given = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"values must be numbers, got {values!r}") from None
    if given.ndim != 1 or len(given) < 2:
        raise InputError("values must list at least two candidate values")
    if not np.isfinite(given).all():
        raise InputError("values contain NaN or infinite numbers")
    if len(np.unique(given)) != len(given):
        raise InputError("values contain duplicates; list each candidate once")
    low, high = target.input_range
    if given.min() < low or given.max() > high:
        raise InputError(
            f"values range from {given.min():g} to {given.max():g}, outside the target's "
            f"input_range ({low:g}, {high:g})"
        )
    truth = np.abs(column[:, None].astype(np.float64) - given[None]).argmin(axis=1)
    return _Candidates(given.astype(np.float32), truth.astype(np.int64), None)


def _quantile_bins(column: np.ndarray, max_bins: int) -> _Candidates:
    """At most `max_bins` bins of about equal counts; each bin guessed as its median."""
    edges = np.unique(np.quantile(column, np.linspace(0.0, 1.0, max_bins + 1)))[1:-1]
    bins = np.searchsorted(edges, column, side="right")
    used = np.unique(bins)
    truth = np.searchsorted(used, bins).astype(np.int64)
    medians = np.array([np.median(column[bins == b]) for b in used], dtype=np.float32)
    kept_edges = edges[used[1:] - 1]
    return _Candidates(medians, truth, kept_edges)


def _prior(prior: Sequence[float] | None, candidates: _Candidates) -> np.ndarray:
    m = len(candidates.values)
    if prior is None:
        return np.bincount(candidates.truth, minlength=m) / len(candidates.truth)
    try:
        weights = np.asarray(prior, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"prior must be numbers, got {prior!r}") from None
    if weights.shape != (m,):
        raise InputError(f"prior has {weights.size} entries; give one per candidate value ({m})")
    if not np.isfinite(weights).all() or weights.min() < 0 or weights.sum() <= 0:
        raise InputError("prior must be finite, non-negative and not all zero")
    return np.asarray(weights / weights.sum())


def _guess(
    target: Target,
    records: np.ndarray,
    labels: np.ndarray,
    column: int,
    values: np.ndarray,
    prior: np.ndarray,
    rule: Rule,
    seed: int,
    progress: ProgressFn | None,
) -> tuple[np.ndarray, bool, list[str]]:
    """Each record's guessed value index, record chunk by chunk until done or out of budget."""
    n, m = len(records), len(values)
    rng = np.random.default_rng(seed)
    chunk = max(1, target.batch_size // m)
    guesses: list[np.ndarray] = []
    notes: list[str] = []
    interrupted = False
    with target.session():
        for start in range(0, n, chunk):
            part = records[start : start + chunk]
            try:
                scores = _scores(target, part, labels[start : start + chunk], column, values)
            except QueryBudgetExceeded as exc:
                if start == 0:
                    raise QueryBudgetExceeded(
                        f"{exc}; attribute inference needs {m} queries per record (one per "
                        "candidate value): raise the budget or give fewer values"
                    ) from None
                interrupted = True
                notes.append(
                    f"stopped after {start} of {n} records: {exc}; accuracy and baselines "
                    "cover those records only"
                )
                break
            if rule == "map":
                scores = scores * prior[None]
            guesses.append(_pick(scores, prior, rng))
            if progress is not None:
                progress("attribute inference", min(start + chunk, n), n)
    return np.concatenate(guesses).astype(np.int64), interrupted, notes


def _scores(
    target: Target, part: np.ndarray, labels: np.ndarray, column: int, values: np.ndarray
) -> np.ndarray:
    """``(len(part), m)``: how well each candidate value explains each record's label."""
    k, m = len(part), len(values)
    completed = np.repeat(part.reshape(k, -1)[:, None], m, axis=1)
    completed[:, :, column] = values[None]
    probs = target.predict_proba(completed.reshape(k * m, *part.shape[1:])).reshape(k, m, -1)
    if target.output == "labels":
        return np.asarray(probs.argmax(axis=2) == labels[:, None], dtype=np.float64)
    return np.asarray(probs[np.arange(k), :, labels], dtype=np.float64)


def _pick(scores: np.ndarray, prior: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Index of the best score per row; ties to the higher prior, then at random."""
    best = scores == scores.max(axis=1, keepdims=True)
    favoured = np.where(best, prior[None], -math.inf)
    best &= favoured == favoured.max(axis=1, keepdims=True)
    draw = np.where(best, rng.random(scores.shape), -math.inf)
    return np.asarray(draw.argmax(axis=1), dtype=np.int64)
