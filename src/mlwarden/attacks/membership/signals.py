"""Per-record membership signals computed from a model's probabilities and the true labels.

Every function takes probabilities ``(..., n_classes)`` (a batch ``(n, C)`` or a stack of
reference models ``(k, n, C)``) and, where the signal depends on it, the labels ``(n,)`` (class
indices, broadcast against the leading axes), and returns float64 ``(...)``. Probabilities are
clipped to `PROB_FLOOR` before any logarithm, so a model that answers exact 0 or 1 (a random
forest, a rounded output) still gives finite signals. Not for: turning signals into membership
scores (the attacks) or into metrics (`metrics`).
"""

from __future__ import annotations

import numpy as np

PROB_FLOOR = 1e-45
"""Smallest probability used in a logarithm (about float32's smallest subnormal, as in the LiRA
reference code): ``-log(PROB_FLOOR)`` is about 103.6."""


def _as_probs(probs: np.ndarray) -> np.ndarray:
    return np.asarray(probs, dtype=np.float64)


def _true_class_mask(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    index = np.broadcast_to(np.asarray(labels, dtype=np.int64), probs.shape[:-1])
    return np.asarray(np.arange(probs.shape[-1]) == index[..., None])


def _true_class(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    index = np.broadcast_to(np.asarray(labels, dtype=np.int64), probs.shape[:-1])
    return np.take_along_axis(probs, index[..., None], axis=-1)[..., 0]


def confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The probability of the true class, ``p_y`` in [0, 1]; higher for members."""
    return _true_class(_as_probs(probs), labels)


def loss(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy ``-log p_y`` in [0, 103.6]; lower for members (Yeom et al. 2018).

    Computed as ``log1p(rest / p_y)`` with ``rest`` the other classes' probabilities (the
    probabilities renormalised to sum to 1): a confident model's float32 ``p_y`` is exactly 1,
    and ``-log p_y`` would give 0 to every such record alike.
    """
    p_y, rest = _split(_as_probs(probs), labels)
    return np.asarray(np.log1p(rest / np.maximum(p_y, PROB_FLOOR)))


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy of the prediction in nats, ``-sum p log p``; lower for members."""
    p = _as_probs(probs)
    return np.asarray(-(p * np.log(np.maximum(p, PROB_FLOOR))).sum(axis=-1))


def modified_entropy(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Song & Mittal (2021)'s label-aware entropy, lower for members.

    ``-(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``: unlike the entropy it grows when the
    model is confidently *wrong*, so a confident misclassification does not look like a member.
    ``1 - p_y`` and ``-log p_y`` are computed from the other classes, as in `loss`.
    """
    p = _as_probs(probs)
    is_true = _true_class_mask(p, labels)
    p_y, rest = _split(p, labels)
    others = np.where(is_true, 0.0, p * np.log(np.maximum(1.0 - p, PROB_FLOOR))).sum(axis=-1)
    return np.asarray(rest * np.log1p(rest / np.maximum(p_y, PROB_FLOOR)) - others)


def logit_scaled_confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LiRA's ``phi = log p_y - log(1 - p_y)`` (Carlini et al. 2022), in about [-103.6, 103.6].

    ``1 - p_y`` is taken as the sum of the other classes' probabilities: for a confident model
    ``p_y`` rounds to 1 in float32 while the others still hold the information, and a
    subtraction would lose it.
    """
    p_y, rest = _split(_as_probs(probs), labels)
    return np.asarray(np.log(np.maximum(p_y, PROB_FLOOR)) - np.log(np.maximum(rest, PROB_FLOOR)))


def _split(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(p_y, rest)``: the true class's probability and the sum of the others'."""
    is_true = _true_class_mask(probs, labels)
    return np.where(is_true, probs, 0.0).sum(axis=-1), np.where(is_true, 0.0, probs).sum(axis=-1)
