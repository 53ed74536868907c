"""The label-only attack (Choquette-Choo et al. 2021): robustness of the predicted class.

An endpoint that returns only the class still leaks membership: a model is right about its
training records, and stays right when they are slightly perturbed, more often than about
records it never saw. Each candidate is sent ``n_queries`` times with Gaussian noise (standard
deviation ``noise`` times the width of the target's input range, clipped back into it) and, for
image-shaped inputs, a random translation of up to ``max_shift`` pixels (edges repeated); the
score is the fraction of answers, the clean one included, that give the true class. It uses only
the predicted class, so it works on ``output="labels"`` targets and through every output
hardening. Scores take ``n_queries + 2`` values, so many candidates tie: this attack is weak at
very low false-positive rates by construction. Parameters: ``n_queries`` (>= 1, 32),
``noise`` (>= 0, 0.05), ``max_shift`` (pixels >= 0; default 1 for images, 0 otherwise).
Costs ``n_queries`` queries per candidate. Not for: targets that give probabilities and
reference models (LiRA and RMIA are far stronger there).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlwarden.attacks.membership._common import read_params, real_number, whole_number
from mlwarden.attacks.membership.base import MembershipContext, register_attack

CHOQUETTE_CHOO = "Choquette-Choo et al. 2021, Label-Only Membership Inference Attacks (ICML)"
DEFAULTS: dict[str, Any] = {"n_queries": 32, "noise": 0.05, "max_shift": None}


def spatial_axes(input_shape: tuple[int, ...]) -> tuple[int, int] | None:
    """The height and width axes of an image-shaped sample, None for other inputs.

    ``(H, W)``, ``(C, H, W)`` (channels first unless the last axis is a small channel axis and
    the first is not: ``(H, W, C)``).
    """
    if len(input_shape) == 2:
        return (0, 1)
    if len(input_shape) == 3:
        return (0, 1) if input_shape[-1] <= 4 < input_shape[0] else (1, 2)
    return None


def translate(batch: np.ndarray, shifts: tuple[int, int], axes: tuple[int, int]) -> np.ndarray:
    """`batch` ``(n, *input_shape)`` moved by `shifts` pixels along the sample `axes`.

    Positive shifts move the content towards higher indices; the uncovered border repeats the
    edge pixels.
    """
    padding = [(0, 0)] * batch.ndim
    window = [slice(None)] * batch.ndim
    for axis, shift in zip(axes, shifts, strict=True):
        padding[axis + 1] = (max(shift, 0), max(-shift, 0))
        start = max(-shift, 0)
        window[axis + 1] = slice(start, start + batch.shape[axis + 1])
    return np.pad(batch, padding, mode="edge")[tuple(window)]


@register_attack(
    "label-only",
    title="Label-only (noise and translation robustness)",
    needs="none",
    scores_needed=False,
    reference=CHOQUETTE_CHOO,
)
def label_only(context: MembershipContext) -> np.ndarray:
    """Fraction of perturbed (and clean) copies of each candidate classified as its label."""
    params = read_params(context, "label-only", DEFAULTS)
    n_queries = whole_number("label-only", "n_queries", params["n_queries"], minimum=1)
    noise = real_number("label-only", "noise", params["noise"], low=0.0)
    target = context.target
    axes = spatial_axes(target.input_shape)
    max_shift = (
        1
        if params["max_shift"] is None
        else whole_number("label-only", "max_shift", params["max_shift"], minimum=0)
    )
    if axes is None:
        max_shift = 0  # translations need an image
    low, high = target.input_range
    sigma = np.float32(noise * (high - low))
    x = np.asarray(context.x, dtype=np.float32)
    y = context.y
    rng = np.random.default_rng(context.seed)
    clean = (
        target.predict(x)
        if context.target_probs is None
        else np.asarray(context.target_probs).argmax(axis=1)
    )
    right = (clean == y).astype(np.float64)
    for done in range(n_queries):
        moved = x
        if max_shift > 0 and axes is not None:
            dy, dx = (int(v) for v in rng.integers(-max_shift, max_shift + 1, size=2))
            moved = translate(x, (dy, dx), axes)
        noisy = moved + rng.standard_normal(size=x.shape, dtype=np.float32) * sigma
        perturbed = np.clip(noisy, low, high).astype(np.float32, copy=False)
        right += target.predict(perturbed) == y
        if context.progress is not None:
            context.progress("label-only queries", done + 1, n_queries)
    return np.asarray(right / (n_queries + 1), dtype=np.float64)
