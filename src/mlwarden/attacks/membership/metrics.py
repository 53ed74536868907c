"""How well membership scores separate members from non-members: ROC, AUC, TPR at low FPR,
attacker advantage, an empirical epsilon lower bound, and the most exposed records.

Scores are "higher = more likely a member"; an attacker picks a threshold ``t`` and calls every
record scoring ``>= t`` a member. Every metric here is a function of the thresholds an attacker
can actually pick: tied scores are one threshold (no ROC point splits a tie), and a TPR at a
given FPR is the best point at or below that FPR, never an interpolation between points. The
same scores always give the same numbers. Not for: computing scores (the attacks) or running
them (`audit`).
"""

from __future__ import annotations

import numpy as np

from mlwarden.attacks.membership._common import scipy_function
from mlwarden.attacks.membership.base import AttackOutcome, EpsilonBound, ExposedRecord
from mlwarden.errors import InputError

EXPOSURE_FPR_LEVELS = (0.001, 0.01, 0.1)
"""FPR levels an exposed record can be flagged at (`ExposedRecord.flagged_at_fpr`)."""


def evaluate(
    attack: str,
    title: str,
    scores: np.ndarray,
    is_member: np.ndarray,
    *,
    fpr_levels: tuple[float, ...],
    confidence: float,
    delta: float,
    n_exposed: int,
) -> AttackOutcome:
    """Every metric of one attack's `scores` against the truth `is_member`.

    `fpr_levels`: FPRs in (0, 1) the TPR is reported at. `confidence`: of the epsilon interval,
    in (0, 1). `delta`: of the (epsilon, delta) bound, in [0, 1). `n_exposed`: how many of the
    highest-scoring members to list (>= 0). ``queries`` and ``seconds`` are left 0.
    """
    values, truth = _checked(scores, is_member)
    for level in fpr_levels:
        if not 0.0 < float(level) < 1.0:
            raise InputError(f"fpr_levels must be in (0, 1), got {level}")
    if n_exposed < 0:
        raise InputError(f"n_exposed must be >= 0, got {n_exposed}")
    fpr, tpr, _ = roc_curve(values, truth)
    return AttackOutcome(
        attack=attack,
        title=title,
        scores=values,
        is_member=truth,
        fpr=fpr,
        tpr=tpr,
        auc=auc(fpr, tpr),
        tpr_at_fpr={float(level): tpr_at_fpr(fpr, tpr, float(level)) for level in fpr_levels},
        advantage=advantage(fpr, tpr),
        epsilon=epsilon_lower_bound(values, truth, confidence=confidence, delta=delta),
        exposed=exposed_records(values, truth, n_exposed=n_exposed),
    )


def roc_curve(
    scores: np.ndarray, is_member: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points ``(fpr, tpr, thresholds)``, float64, FPR and TPR non-decreasing.

    Point ``i`` is the attack "member iff score >= thresholds[i]"; the first point is
    ``(0, 0)`` at threshold ``+inf``, the last ``(1, 1)``, and there is one point per distinct
    score in between.
    """
    fp, tp, thresholds = _roc_counts(*_checked(scores, is_member))
    return fp / fp[-1], tp / tp[-1], thresholds


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under the ROC curve (trapezoid rule), in [0, 1]; 0.5 is guessing."""
    x, y = _checked_curve(fpr, tpr)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, level: float) -> float:
    """The largest TPR among ROC points whose FPR is at most `level` (in [0, 1])."""
    x, y = _checked_curve(fpr, tpr)
    if not 0.0 <= float(level) <= 1.0:
        raise InputError(f"an FPR level must be in [0, 1], got {level}")
    reachable = x <= float(level)
    return float(y[reachable].max()) if reachable.any() else 0.0


def advantage(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Membership advantage ``max(TPR - FPR)`` over thresholds (Yeom et al. 2018), in [0, 1]."""
    x, y = _checked_curve(fpr, tpr)
    return float(max(0.0, float(np.max(y - x))))


def clopper_pearson(
    successes: np.ndarray, trials: int, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Clopper-Pearson interval ``(low, high)`` for a binomial rate, elementwise.

    `successes`: counts in [0, `trials`]; `confidence`: in (0, 1). Exact (never too narrow):
    each end misses the true rate with probability at most ``(1 - confidence) / 2``.
    """
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    beta = scipy_function("stats", "beta")
    k = np.asarray(successes, dtype=np.float64)
    if trials < 1 or np.any(k < 0) or np.any(k > trials):
        raise InputError(f"successes must lie in [0, trials] with trials >= 1, got {trials}")
    tail = (1.0 - confidence) / 2.0
    some, not_all = k > 0, k < trials
    low = np.where(some, beta.ppf(tail, np.where(some, k, 1.0), trials - k + 1.0), 0.0)
    high = np.where(not_all, beta.ppf(1.0 - tail, k + 1.0, np.where(not_all, trials - k, 1.0)), 1.0)
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def epsilon_lower_bound(
    scores: np.ndarray, is_member: np.ndarray, *, confidence: float, delta: float
) -> EpsilonBound:
    """An empirical lower bound on the epsilon of (epsilon, delta)-DP training.

    A mechanism that is (epsilon, delta)-DP forces every membership test to satisfy
    ``FPR + e^eps * FNR >= 1 - delta`` and the same with FPR and FNR swapped (Kairouz et al.
    2015), so ``eps >= log((1 - delta - FPR) / FNR)`` and ``log((1 - delta - FNR) / FPR)``
    (Jagielski et al. 2020, Nasr et al. 2021). The thresholds tried are the ROC points at
    0, 1, 2, 4, 8 ... false positives and at 0, 1, 2, 4, 8 ... false negatives (where a large
    epsilon can come from); at each, both rates get two-sided Clopper-Pearson intervals at
    ``1 - (1 - confidence) / m`` for ``m`` thresholds tried, so that the best threshold,
    chosen on these same scores, still gives a bound that holds with probability >=
    `confidence` (Bonferroni). `lower` uses the rates' upper ends, `upper` their lower ends,
    `value` the rates estimated as ``(errors + 1/2) / (n + 1)`` (finite when no error is
    observed), all at the threshold with the highest `lower` (or, when none proves anything,
    the highest advantage). `confidence` in (0, 1); `delta` in [0, 1).
    """
    values, truth = _checked(scores, is_member)
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    if not 0.0 <= delta < 1.0:
        raise InputError(f"delta must be in [0, 1), got {delta}")
    all_fp, all_tp, _ = _roc_counts(values, truth)
    n_neg, n_pos = int(all_fp[-1]), int(all_tp[-1])
    tried = _epsilon_thresholds(all_fp, all_tp)
    fp, fn = all_fp[tried], n_pos - all_tp[tried]
    per_threshold = 1.0 - (1.0 - confidence) / len(tried)
    fpr_low, fpr_high = clopper_pearson(fp, n_neg, per_threshold)
    fnr_low, fnr_high = clopper_pearson(fn, n_pos, per_threshold)
    lower = np.maximum(_epsilon(fpr_high, fnr_high, delta), 0.0)
    best = int(np.argmax(lower))
    if lower[best] == 0.0:
        best = int(np.argmax((n_pos - fn) / n_pos - fp / n_neg))
    at_best = slice(best, best + 1)
    estimate = float(
        _epsilon((fp[at_best] + 0.5) / (n_neg + 1.0), (fn[at_best] + 0.5) / (n_pos + 1.0), delta)[0]
    )
    bound_low = float(lower[best])
    bound_high = max(bound_low, float(_epsilon(fpr_low[at_best], fnr_low[at_best], delta)[0]))
    return EpsilonBound(
        value=min(max(bound_low, estimate), bound_high),
        lower=bound_low,
        upper=bound_high,
        confidence=float(confidence),
        delta=float(delta),
    )


def _epsilon_thresholds(fp: np.ndarray, tp: np.ndarray) -> np.ndarray:
    """Indices of the ROC points with the most TP at 0, 1, 2, 4 ... false positives and the
    fewest FP at 0, 1, 2, 4 ... false negatives."""
    n_neg, n_pos = fp[-1], tp[-1]
    errors = np.r_[0.0, 2.0 ** np.arange(int(np.log2(max(n_neg, n_pos))) + 1)]
    by_fp = np.searchsorted(fp, errors[errors <= n_neg], side="right") - 1
    by_fn = np.searchsorted(tp, n_pos - errors[errors <= n_pos], side="left")
    return np.unique(np.r_[by_fp, by_fn])


def exposed_records(
    scores: np.ndarray,
    is_member: np.ndarray,
    *,
    n_exposed: int,
    fpr_levels: tuple[float, ...] = EXPOSURE_FPR_LEVELS,
) -> list[ExposedRecord]:
    """The `n_exposed` highest-scoring members (ties: lower index first), best first.

    `ExposedRecord.index` counts members only (the i-th member), `flagged_at_fpr` is the
    smallest of `fpr_levels` whose threshold (the one reaching the level's TPR) flags it.
    """
    values, truth = _checked(scores, is_member)
    fp, _, thresholds = _roc_counts(values, truth)
    fpr = fp / fp[-1]
    levels = np.array(sorted(float(level) for level in fpr_levels), dtype=np.float64)
    cut = thresholds[np.searchsorted(fpr, levels, side="right") - 1]
    member_scores = values[truth]
    order = np.lexsort((np.arange(len(member_scores)), -member_scores))[: max(0, n_exposed)]
    flagged = member_scores[order, None] >= cut[None, :]
    first = flagged.argmax(axis=1)
    return [
        ExposedRecord(
            index=int(index),
            score=float(member_scores[index]),
            rank=rank,
            flagged_at_fpr=float(levels[first[rank - 1]]) if flagged[rank - 1].any() else None,
        )
        for rank, index in enumerate(order, start=1)
    ]


def _checked(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    try:
        values = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"membership scores must be numbers: {exc}") from None
    truth = np.asarray(is_member)
    if values.ndim != 1:
        raise InputError(f"membership scores must be one number per record, got {values.shape}")
    if truth.shape != values.shape:
        raise InputError(
            f"is_member has shape {truth.shape} but there are {len(values)} scores; give one "
            "truth value per score"
        )
    if truth.dtype != np.bool_:
        if truth.dtype.kind not in "iu" or not np.isin(truth, (0, 1)).all():
            raise InputError(f"is_member must be booleans (or 0 / 1), got dtype {truth.dtype}")
        truth = truth.astype(bool)
    if not np.isfinite(values).all():
        raise InputError("membership scores contain NaN or infinite values")
    if truth.all() or not truth.any():
        raise InputError(
            "measuring membership inference needs at least one member and one non-member, got "
            f"{int(truth.sum())} member(s) and {int((~truth).sum())} non-member(s)"
        )
    return values, truth


def _roc_counts(
    scores: np.ndarray, is_member: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positives (float64) at each distinct threshold, from ``+inf`` down."""
    order = np.argsort(-scores, kind="stable")
    ranked, truth = scores[order], is_member[order]
    group_end = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])
    tp = np.cumsum(truth, dtype=np.float64)[group_end]
    fp = np.cumsum(~truth, dtype=np.float64)[group_end]
    return np.r_[0.0, fp], np.r_[0.0, tp], np.r_[np.inf, ranked[group_end]]


def _checked_curve(fpr: np.ndarray, tpr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(fpr, dtype=np.float64)
    y = np.asarray(tpr, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or len(x) < 2:
        raise InputError(
            f"a ROC curve needs matching 1-D fpr and tpr with >= 2 points, got {x.shape} and "
            f"{y.shape}"
        )
    if not (np.isfinite(x).all() and np.isfinite(y).all()) or np.any(np.diff(x) < 0):
        raise InputError("fpr must be finite and non-decreasing (as roc_curve returns it)")
    return x, y


def _epsilon(fpr: np.ndarray, fnr: np.ndarray, delta: float) -> np.ndarray:
    """``max(log((1-delta-FPR)/FNR), log((1-delta-FNR)/FPR))``; -inf where no term applies."""
    return np.asarray(
        np.maximum(_log_ratio(1.0 - delta - fpr, fnr), _log_ratio(1.0 - delta - fnr, fpr))
    )


def _log_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        ratio = np.log(np.maximum(numerator, 0.0)) - np.log(denominator)
    return np.where(numerator > 0.0, ratio, -np.inf)
