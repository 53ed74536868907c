"""LiRA, the likelihood-ratio attack (Carlini et al. 2022), offline and online.

Some records are hard (the model is unsure of them whether it trained on them or not), some are
easy; a single threshold on the loss treats both alike and so mistakes easy non-members for
members. LiRA calibrates per record: reference models trained with (IN) and without (OUT) the
record show how its logit-scaled confidence ``phi = log p_y - log(1 - p_y)`` is distributed in
each world, each as a Gaussian, and the target's ``phi`` is tested against them.

- ``lira-online`` (reference models trained on random halves of candidates + population, so each
  candidate is IN for about half): score = ``log N(phi; mu_in, sd_in) - log N(phi; mu_out,
  sd_out)``, the log-likelihood ratio.
- ``lira-offline`` (any reference models; it uses each candidate's OUT models only): score =
  ``-log Pr[Z > phi]``, ``Z ~ N(mu_out, sd_out)``, the one-sided test against the OUT world
  as minus the log p-value (higher = member).

Each record's ``mu`` is the median of its world's ``phi`` (as in the paper's code: one reference
model whose output saturates must not drag it), ``sd`` their sample standard deviation. With
fewer than `PER_EXAMPLE_VARIANCE_MODELS` reference models a per-record ``sd`` is too noisy, and
the paper's fixed variance is used instead: one ``sd`` for every record (the median of the
per-record ones), shared by both worlds online, so that the ratio is linear in ``phi``;
parameter ``fixed_variance`` (true / false) overrides the choice. A candidate with no IN (or no
OUT) model gets the other world's ``mu`` shifted by the typical gap between the worlds.
Not for: training the reference models (`reference`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlwarden.attacks.membership._common import (
    read_params,
    reference_set,
    scipy_function,
    target_probabilities,
)
from mlwarden.attacks.membership.base import MembershipContext, ReferenceSet, register_attack
from mlwarden.attacks.membership.signals import logit_scaled_confidence
from mlwarden.errors import InputError, UsageError

LIRA = "Carlini et al. 2022, Membership Inference Attacks From First Principles (IEEE S&P)"
PER_EXAMPLE_VARIANCE_MODELS = 64
"""From this many reference models on, each record gets its own variance (as in the paper)."""
MIN_STD = 1e-3
"""Smallest standard deviation of a Gaussian, in ``phi`` units (identical reference outputs)."""
DEFAULTS: dict[str, Any] = {"fixed_variance": None}


class _World:
    """One world (IN or OUT) of every candidate: ``center``, spread and ``count`` of its models.

    The center is the median over the world's models (as in the paper's code): one reference
    model whose output saturates at ``phi = 103.6`` must not drag a record's Gaussian.
    """

    def __init__(self, phi: np.ndarray, member_of: np.ndarray) -> None:
        self.count = member_of.sum(axis=0)
        self.center = _masked_median(phi, member_of, self.count)
        mean = np.where(member_of, phi, 0.0).sum(axis=0) / np.maximum(self.count, 1)
        squares = np.where(member_of, (phi - mean) ** 2, 0.0).sum(axis=0)
        self.spread = self.count >= 2
        self.own_std = np.sqrt(squares / np.maximum(self.count - 1, 1))

    def std(self, shared: float) -> np.ndarray:
        """Each candidate's own standard deviation, `shared` where it has fewer than 2 models."""
        return np.asarray(np.maximum(np.where(self.spread, self.own_std, shared), MIN_STD))


def _masked_median(values: np.ndarray, mask: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Median over axis 0 of the `values` where `mask` holds (0 where none does)."""
    ranked = np.sort(np.where(mask, values, np.inf), axis=0)
    low = np.maximum(count - 1, 0) // 2
    high = np.maximum(count // 2, low)
    pick = np.stack([low, high])
    middle = np.take_along_axis(ranked, np.minimum(pick, len(values) - 1), axis=0).mean(axis=0)
    return np.asarray(np.where(count > 0, middle, 0.0))


def _shared_std(*worlds: _World) -> float:
    """One standard deviation for every record and world: the median of the per-record ones."""
    spreads = np.concatenate([w.own_std[w.spread] for w in worlds])
    return float(max(np.median(spreads), MIN_STD)) if len(spreads) else 1.0


def _gap(world_in: _World, world_out: _World) -> float:
    """The typical ``mu_in - mu_out`` (median over candidates that have both worlds)."""
    both = (world_in.count > 0) & (world_out.count > 0)
    if both.any():
        return float(np.median(world_in.center[both] - world_out.center[both]))
    return float(
        np.median(world_in.center[world_in.count > 0])
        - np.median(world_out.center[world_out.count > 0])
    )


def _per_example(params: dict[str, Any], reference: ReferenceSet, attack: str) -> bool:
    fixed = params["fixed_variance"]
    if fixed is None:
        return reference.k >= PER_EXAMPLE_VARIANCE_MODELS
    if not isinstance(fixed, (bool, np.bool_)):
        raise InputError(f"{attack}: fixed_variance must be true or false, got {fixed!r}")
    return not bool(fixed)


def _log_normal_pdf(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return np.asarray(-np.log(std) - 0.5 * ((x - mean) / std) ** 2)


def _signals(
    context: MembershipContext, attack: str
) -> tuple[ReferenceSet, np.ndarray, np.ndarray]:
    reference = reference_set(context, attack)
    observed = logit_scaled_confidence(target_probabilities(context, attack), context.y)
    return reference, observed, logit_scaled_confidence(reference.probs_candidates, context.y)


@register_attack("lira-online", title="LiRA (online)", needs="online-reference", reference=LIRA)
def lira_online(context: MembershipContext) -> np.ndarray:
    """Log-likelihood ratio of the target's ``phi`` under the IN and OUT Gaussians."""
    params = read_params(context, "lira-online", DEFAULTS)
    reference, observed, phi = _signals(context, "lira-online")
    if reference.mode != "online" or not reference.in_candidates.any():
        raise UsageError(
            "lira-online needs reference models trained with each candidate "
            "(reference_mode='online'); use lira-offline with offline reference models"
        )
    if reference.in_candidates.all():
        raise UsageError(
            "lira-online needs reference models trained without each candidate too, but every "
            "reference model trained on every candidate"
        )
    per_example = _per_example(params, reference, "lira-online")
    world_in = _World(phi, reference.in_candidates)
    world_out = _World(phi, ~reference.in_candidates)
    gap = _gap(world_in, world_out)
    mean_in = np.where(world_in.count > 0, world_in.center, world_out.center + gap)
    mean_out = np.where(world_out.count > 0, world_out.center, world_in.center - gap)
    shared = _shared_std(world_in, world_out)
    if not per_example:
        # One variance for both worlds makes the ratio linear in phi: a one-sided test in the
        # direction from OUT to IN, which unequal variances would turn into a two-sided one.
        return np.asarray((mean_in - mean_out) * (observed - (mean_in + mean_out) / 2) / shared**2)
    return np.asarray(
        _log_normal_pdf(observed, mean_in, world_in.std(shared))
        - _log_normal_pdf(observed, mean_out, world_out.std(shared)),
        dtype=np.float64,
    )


@register_attack("lira-offline", title="LiRA (offline)", needs="reference", reference=LIRA)
def lira_offline(context: MembershipContext) -> np.ndarray:
    """Minus the log p-value of the target's ``phi`` under the OUT Gaussian (one-sided)."""
    params = read_params(context, "lira-offline", DEFAULTS)
    reference, observed, phi = _signals(context, "lira-offline")
    if reference.in_candidates.all():
        raise UsageError(
            "lira-offline needs reference models trained without the candidates, but every "
            "reference model trained on every candidate"
        )
    world_out = _World(phi, ~reference.in_candidates)
    mean_out = world_out.center
    world_in = _World(phi, reference.in_candidates)
    if (world_out.count == 0).any():
        mean_out = np.where(
            world_out.count > 0, mean_out, world_in.center - _gap(world_in, world_out)
        )
    shared = _shared_std(world_out) if world_out.spread.any() else _shared_std(world_in, world_out)
    std = world_out.std(shared) if _per_example(params, reference, "lira-offline") else shared
    log_ndtr = scipy_function("special", "log_ndtr")
    return np.asarray(-log_ndtr(-(observed - mean_out) / std), dtype=np.float64)
