"""Black-box model inversion: MI-Face's cost minimised with gradients estimated from queries.

The target answers probabilities only. Each step estimates the gradient of ``log p(class | x)``
with natural-evolution-strategy sampling (Wierstra et al. 2014; Ilyas et al. 2018): `samples`
random Gaussian directions ``u``, each queried antithetically at ``x + sigma u`` and
``x - sigma u``, plus one query at ``x`` itself to track the cost; the image priors' gradients
are exact and cost no query. Adam steps follow, projected into the input range. Each step costs
``2 * samples + 1`` samples per class, counted against `max_queries` per class. Not for:
white-box targets (`mi_face` needs far fewer queries) or label-only targets (a 0/1 answer has
no slope to follow).
"""

from __future__ import annotations

import numpy as np

from mlwarden.attacks.inversion.base import (
    LOG_FLOOR,
    InversionProblem,
    InversionSearch,
    Tracker,
    l2_penalty,
    stop_note,
    tv_penalty,
)
from mlwarden.errors import QueryBudgetExceeded

_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


def search(problem: InversionProblem) -> InversionSearch:
    """Run the query-only search for every class of `problem`; stops cleanly on the budget."""
    target = problem.target
    tracker = Tracker(problem)
    rng = np.random.default_rng(problem.seed)
    low, high = target.input_range
    x = tracker.images.astype(np.float64)
    first, second = np.zeros_like(x), np.zeros_like(x)
    per_step = 2 * problem.samples + 1
    interrupted = False
    with target.session():
        try:
            while len(index := tracker.affordable(per_step)):
                cost, gradient = _estimate(problem, x[index], problem.classes[index], rng)
                tracker.observe(index, x[index].astype(np.float32), cost, per_step)
                t = tracker.steps[index].reshape(-1, *([1] * (x.ndim - 1)))
                first[index] = _ADAM_BETAS[0] * first[index] + (1 - _ADAM_BETAS[0]) * gradient
                second[index] = _ADAM_BETAS[1] * second[index] + (1 - _ADAM_BETAS[1]) * np.square(
                    gradient
                )
                corrected_first = first[index] / (1 - _ADAM_BETAS[0] ** t)
                corrected_second = second[index] / (1 - _ADAM_BETAS[1] ** t)
                step = problem.lr * corrected_first / (np.sqrt(corrected_second) + _ADAM_EPS)
                x[index] = np.clip(x[index] - step, low, high)
                tracker.tick()
        except (QueryBudgetExceeded, KeyboardInterrupt) as stop:
            interrupted = True
            tracker.notes.append(stop_note(stop))
    return tracker.result(interrupted=interrupted)


def _estimate(
    problem: InversionProblem, x: np.ndarray, classes: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Cost of each input of `x` ``(k, *shape)`` for its class and an estimate of the cost's
    gradient there."""
    target = problem.target
    low, high = target.input_range
    k, shape, n = len(x), x.shape[1:], problem.samples
    directions = rng.standard_normal((k, n, *shape))
    probes = np.concatenate(
        [
            x[:, None] + problem.sigma * directions,
            x[:, None] - problem.sigma * directions,
            x[:, None],
        ],
        axis=1,
    )
    probes = np.clip(probes, low, high).astype(np.float32)
    probs = target.predict_proba(probes.reshape(k * (2 * n + 1), *shape))
    labels = np.repeat(classes, 2 * n + 1)
    picked = probs[np.arange(len(probs)), labels].astype(np.float64).reshape(k, 2 * n + 1)
    log_cost = problem.cost == "log"
    model_cost = -np.log(np.maximum(picked, LOG_FLOOR)) if log_cost else 1.0 - picked
    slopes = (model_cost[:, :n] - model_cost[:, n : 2 * n]) / (2.0 * problem.sigma)
    gradient = np.einsum("kn,kn...->k...", slopes, directions) / n
    cost = model_cost[:, -1]
    if problem.l2_weight:
        penalty, slope = l2_penalty(x, problem.start.astype(np.float64))
        cost, gradient = cost + problem.l2_weight * penalty, gradient + problem.l2_weight * slope
    if problem.tv_weight and problem.image_shaped:
        penalty, slope = tv_penalty(x)
        cost, gradient = cost + problem.tv_weight * penalty, gradient + problem.tv_weight * slope
    return cost, gradient
