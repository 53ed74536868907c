"""RMIA, the relative membership inference attack (Zarifzadeh et al. 2024).

A record is likely a member when the target gives it more probability than models that did not
train on it would, *relative to how the target treats typical records*. RMIA compares each
candidate ``x`` with records ``z`` of the population through the pairwise likelihood ratio

    LR(x, z) = [p(x | target) / p(x)] / [p(z | target) / p(z)]

where ``p(. | target)`` is the target's probability of the true class and ``p(.)`` its mean over
reference models: over all of them when they are online (each trained on half the candidates),
and from the OUT models with the paper's linear correction ``((1 + a) p_out + (1 - a)) / 2``
when they are offline. The score is the fraction of ``z`` with ``LR(x, z) > gamma``. It stays
strong with one or two reference models, where LiRA does not.

That fraction is a non-decreasing function of ``p(x | target) / p(x)`` alone (the ``z`` are the
same for every candidate), so tied fractions, common among the top candidates, are ordered by
that ratio: the score is the fraction plus less than ``1 / n_z``, and ``floor(score * n_z) /
n_z`` is the paper's fraction. Parameters: ``a`` (offline correction, in [0, 1], 0.3 as in the
paper), ``gamma`` (> 0, 1), ``n_population`` (how many ``z``, >= 1, at most 2000 by default).
The target answers once for each ``z``. Not for: training the reference models (`reference`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlwarden.attacks.membership._common import (
    read_params,
    real_number,
    reference_set,
    target_probabilities,
    whole_number,
)
from mlwarden.attacks.membership.base import (
    MembershipContext,
    ReferenceMode,
    register_attack,
)
from mlwarden.attacks.membership.signals import PROB_FLOOR, confidence
from mlwarden.errors import UsageError

RMIA = "Zarifzadeh et al. 2024, Low-Cost High-Power Membership Inference Attacks (ICML)"
DEFAULTS: dict[str, Any] = {"a": 0.3, "gamma": 1.0, "n_population": 2000}


def _marginal(
    probs: np.ndarray, trained_on: np.ndarray, mode: ReferenceMode, a: float
) -> np.ndarray:
    """``p(x)``: the reference models' mean true-class probability, ``(k, n) -> (n,)``.

    Offline: the mean over the OUT models (over all models for a record with none), linearly
    corrected towards what the IN models would have said.
    """
    if mode == "online":
        return np.asarray(probs.mean(axis=0))
    out = ~trained_on
    n_out = out.sum(axis=0)
    p_out = np.where(
        n_out > 0, np.where(out, probs, 0.0).sum(axis=0) / np.maximum(n_out, 1), probs.mean(axis=0)
    )
    return np.asarray(((1.0 + a) * p_out + (1.0 - a)) / 2.0)


def _population_sample(n_records: int, usable: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of `size` population records, drawn without replacement, usable ones first."""
    preferred = np.flatnonzero(usable)
    pool = preferred if len(preferred) else np.arange(n_records)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(pool, size=min(size, len(pool)), replace=False))


@register_attack("rmia", title="RMIA", needs="reference", reference=RMIA)
def rmia(context: MembershipContext) -> np.ndarray:
    """The fraction of population records each candidate dominates, ties ordered by its ratio."""
    params = read_params(context, "rmia", DEFAULTS)
    a = real_number("rmia", "a", params["a"], low=0.0, high=1.0)
    gamma = real_number("rmia", "gamma", params["gamma"], low=np.finfo(np.float64).tiny)
    n_population = whole_number("rmia", "n_population", params["n_population"], minimum=1)
    reference = reference_set(context, "rmia")
    target_on_x = confidence(target_probabilities(context, "rmia"), context.y)
    x_pop, y_pop = context.population
    if len(x_pop) == 0:
        raise UsageError("rmia needs population records to compare the candidates with")
    usable = np.asarray((~reference.in_population).any(axis=0) | (reference.mode == "online"))
    chosen = _population_sample(len(x_pop), usable, n_population, context.seed)
    target_on_z = confidence(context.target.predict_proba(x_pop[chosen]), y_pop[chosen])
    p_z = _marginal(
        confidence(reference.probs_population[:, chosen], y_pop[chosen]),
        reference.in_population[:, chosen],
        reference.mode,
        a,
    )
    p_x = _marginal(
        confidence(reference.probs_candidates, context.y),
        reference.in_candidates,
        reference.mode,
        a,
    )
    ratio_x = np.maximum(target_on_x, PROB_FLOOR) / np.maximum(p_x, PROB_FLOOR)
    ratio_z = np.maximum(target_on_z, PROB_FLOOR) / np.maximum(p_z, PROB_FLOOR)
    # LR(x, z) > gamma  <=>  ratio_z < ratio_x / gamma: count by binary search, not n_c x n_z
    dominated = np.searchsorted(np.sort(ratio_z), ratio_x / gamma, side="left")
    within_tie = 0.5 + np.arctan(np.log(ratio_x)) / np.pi
    return np.asarray((dominated + within_tie) / len(chosen), dtype=np.float64)
