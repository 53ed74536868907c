"""The shadow-model attack (Shokri et al. 2017): learn what membership looks like in outputs.

Reference ("shadow") models are trained on parts of the population, so for each of them the
auditor knows which population records were IN its training set and which were OUT. An attack
classifier learns, from those models' outputs, to tell IN from OUT; it then reads the target's
outputs on the candidates. Instead of one attack model per class as in the paper, one gradient-
boosted classifier sees the class as a one-hot feature next to the output features: the sorted
probability vector (its top `TOP_PROBABILITIES`), the true class's probability, the loss and
whether the prediction is right. Parameter ``max_records`` (>= 2, default 50000) caps the
attack model's training rows. Needs scikit-learn. Not for: training the reference models
(`reference`).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from mlwarden.attacks.membership._common import (
    read_params,
    reference_set,
    target_probabilities,
    whole_number,
)
from mlwarden.attacks.membership.base import MembershipContext, register_attack
from mlwarden.attacks.membership.signals import confidence, loss
from mlwarden.errors import UsageError

SHOKRI = (
    "Shokri et al. 2017, Membership Inference Attacks Against Machine Learning Models (IEEE S&P)"
)
TOP_PROBABILITIES = 10
"""How many of the largest probabilities (sorted) the attack model sees."""
DEFAULTS: dict[str, Any] = {"max_records": 50_000}


def attack_features(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """What the attack model sees of one output ``(n, C)``: float64 ``(n, top + 3 + C)``."""
    p = np.asarray(probs, dtype=np.float64)
    n_classes = p.shape[1]
    ranked = -np.sort(-p, axis=1)[:, : min(TOP_PROBABILITIES, n_classes)]
    correct = (p.argmax(axis=1) == labels).astype(np.float64)
    one_hot = np.eye(n_classes, dtype=np.float64)[labels]
    return np.column_stack([ranked, confidence(p, labels), loss(p, labels), correct, one_hot])


def _fit_attack_model(features: np.ndarray, was_in: np.ndarray, seed: int) -> Any:
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier

        threadpoolctl = importlib.import_module("threadpoolctl")  # scikit-learn's dependency
    except ImportError:
        raise UsageError(
            "the shadow attack trains its attack model with scikit-learn: "
            "pip install mlwarden[sklearn]"
        ) from None
    model = HistGradientBoostingClassifier(
        max_iter=100, max_leaf_nodes=15, early_stopping=False, random_state=seed
    )
    # One thread: on a busy machine OpenMP threads oversubscribe the cores and boosting gets
    # ten times slower, while one thread fits this small model in well under a second.
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        return model.fit(features, was_in)


@register_attack("shadow", title="Shadow models", needs="reference", reference=SHOKRI)
def shadow(context: MembershipContext) -> np.ndarray:
    """The attack model's log-odds that each candidate is a member, from the target's output."""
    params = read_params(context, "shadow", DEFAULTS)
    max_records = whole_number("shadow", "max_records", params["max_records"], minimum=2)
    reference = reference_set(context, "shadow")
    probs = target_probabilities(context, "shadow")
    _, y_pop = context.population
    k, n_pop = reference.in_population.shape
    rows = np.arange(k * n_pop)
    if len(rows) > max_records:
        rows = np.sort(np.random.default_rng(context.seed).choice(rows, max_records, replace=False))
    was_in = reference.in_population.reshape(-1)[rows]
    if was_in.all() or not was_in.any():
        raise UsageError(
            "the shadow attack learns from reference models trained on part of the population "
            "(both IN and OUT records); give a population and reference models trained on "
            "halves of it"
        )
    features = attack_features(
        reference.probs_population.reshape(k * n_pop, -1)[rows], np.tile(y_pop, k)[rows]
    )
    model = _fit_attack_model(features, was_in, context.seed)
    return np.asarray(model.decision_function(attack_features(probs, context.y)), dtype=np.float64)
