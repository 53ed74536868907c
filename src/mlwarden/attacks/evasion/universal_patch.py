"""Universal adversarial patch (Brown et al. 2017): one sticker that fools the model anywhere.

The patch is a square of `patch_size` pixels trained by signed-gradient steps over the whole
dataset, each step pasting it at a fresh random position on every image of a batch (expectation
over positions, optionally over scales), so that it works wherever it lands: the physical-world
threat of a sticker on a sign. It is evaluated by pasting it at one random, seeded position per
image. The threat model is l0: at most ``patch_size**2 * channels`` input values change. The
patch and the positions are in ``result.artifacts``; `apply_patch` pastes it on other images.
Not for: flat (tabular) inputs, or small perturbations spread over the whole image (use
``pgd``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mlwarden.attacks.evasion._torch import to_tensor
from mlwarden.attacks.evasion.base import (
    AttackResult,
    AttackSpec,
    AttackState,
    Norm,
    ProgressFn,
    check_eps,
    register_attack,
    run_attack,
)
from mlwarden.errors import InputError
from mlwarden.targets.base import Target, WhiteBoxTarget

SPEC = AttackSpec(
    name="patch",
    title="Universal adversarial patch",
    white_box=True,
    norms=("l0",),
    # the patch size is the threat model; eps, when given, only bounds it
    needs_eps=False,
)

PATCH_AREA = 0.1
"""Default patch area as a fraction of the image: Brown et al. fool most inputs at about 10%."""


def default_patch_size(height: int, width: int) -> int:
    """Side in pixels of a square patch covering about `PATCH_AREA` of an image."""
    return int(min(max(round(math.sqrt(PATCH_AREA * height * width)), 1), height, width))


def apply_patch(x: np.ndarray, patch: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Images `x` ``(n, C, H, W)`` with `patch` ``(C, s, s)`` pasted at `positions` ``(n, 2)``.

    Positions are the (row, column) of the patch's top-left corner, in pixels.
    """
    images = np.asarray(x, dtype=np.float32)
    stamp = np.asarray(patch, dtype=np.float32)
    corners = np.asarray(positions)
    if images.ndim != 4 or stamp.ndim != 3 or stamp.shape[0] != images.shape[1]:
        raise InputError(
            f"apply_patch needs images (n, C, H, W) and a patch (C, s, s) with the same C; "
            f"got {images.shape} and {stamp.shape}"
        )
    side = stamp.shape[1]
    if stamp.shape[2] != side or side > min(images.shape[2:]):
        raise InputError(f"the patch must be square and fit in the image, got {stamp.shape}")
    if corners.shape != (len(images), 2) or corners.dtype.kind not in "iu":
        raise InputError(f"positions must be whole (row, column) pairs, shape ({len(images)}, 2)")
    if len(corners) and (
        corners.min() < 0
        or corners[:, 0].max() > images.shape[2] - side
        or corners[:, 1].max() > images.shape[3] - side
    ):
        raise InputError("a position puts the patch outside the image")
    out = images.copy()
    out[_stamp_index(corners.astype(np.int64), out.shape[1], side)] = stamp
    return out


def _stamp_index(
    corners: np.ndarray, channels: int, side: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fancy index of the patch area of every image, selecting ``(n, C, side, side)``."""
    span = np.arange(side)
    return (
        np.arange(len(corners))[:, None, None, None],
        np.arange(channels)[None, :, None, None],
        corners[:, 0, None, None, None] + span[None, None, :, None],
        corners[:, 1, None, None, None] + span[None, None, None, :],
    )


def _random_corners(
    rng: np.random.Generator, n: int, height: int, width: int, side: int
) -> np.ndarray:
    rows = rng.integers(0, height - side + 1, size=n)
    cols = rng.integers(0, width - side + 1, size=n)
    return np.stack([rows, cols], axis=1).astype(np.int64)


def _pasted(images: torch.Tensor, stamp: torch.Tensor, corners: np.ndarray) -> torch.Tensor:
    """`images` with `stamp` pasted at `corners`, differentiable in `stamp`."""
    where = tuple(
        torch.from_numpy(i).to(images.device)
        for i in _stamp_index(corners, images.shape[1], stamp.shape[1])
    )
    out = images.clone()
    out[where] = stamp.unsqueeze(0).expand(len(images), -1, -1, -1)
    return out


def _train(
    state: AttackState,
    target: WhiteBoxTarget,
    side: int,
    steps: int,
    step_size: float,
    scale: tuple[float, float] | None,
) -> torch.Tensor:
    channels, height, width = target.input_shape
    low, high = state.threat.input_range
    rng = state.rng(0)
    patch = to_tensor(rng.uniform(low, high, size=(channels, side, side)), target)
    images = to_tensor(state.x, target)
    goal = torch.from_numpy(state.goal).to(target.device)
    batch = min(len(state.x), target.batch_size)
    # untargeted: push the true class down; targeted: pull the target class up
    direction = -1.0 if state.targeted else 1.0
    for step in range(steps):
        chosen = torch.from_numpy(rng.choice(len(state.x), size=batch, replace=False))
        chosen = chosen.to(target.device)
        stamp = patch.requires_grad_(True)
        if scale is not None:
            size = max(1, round(side * rng.uniform(*scale)))
            stamp = torch.nn.functional.interpolate(
                patch[None], size=(size, size), mode="bilinear", align_corners=False
            )[0]
        corners = _random_corners(rng, batch, height, width, stamp.shape[1])
        logits = target.logits(_pasted(images[chosen], stamp, corners))
        loss = torch.nn.functional.cross_entropy(logits, goal[chosen], reduction="sum")
        (grad,) = torch.autograd.grad(loss, patch)
        patch = (patch.detach() + direction * step_size * grad.sign()).clamp(low, high)
        # kept as it trains, so a run stopped by the query budget still hands the patch over
        state.artifacts["patch"] = patch.cpu().numpy().astype(np.float32)
        state.tick(step + 1, steps + 1)
    return patch


def _patch(
    state: AttackState,
    target: WhiteBoxTarget,
    /,
    *,
    patch_size: int,
    steps: int,
    step_size: float,
    scale: tuple[float, float] | None,
) -> None:
    _, height, width = target.input_shape
    stamp = _train(state, target, patch_size, steps, step_size, scale).cpu().numpy()
    corners = _random_corners(state.rng(1), len(state.x), height, width, patch_size)
    state.artifacts["patch"] = stamp
    state.artifacts["positions"] = corners
    todo = np.flatnonzero(~state.found)
    for start in range(0, len(todo), target.batch_size):
        index = todo[start : start + target.batch_size]
        patched = apply_patch(state.x[index], stamp, corners[index])
        fooled = state.is_adversarial(target.predict(patched), index)
        state.record(index[fooled], patched[fooled])
    state.tick(steps + 1, steps + 1)


def _patch_side(
    eps: float | None, patch_size: int | None, channels: int, height: int, width: int
) -> int:
    """Patch side in pixels: given, the default, or the largest square an l0 `eps` allows."""
    largest = min(height, width)
    if patch_size is None:
        if eps is None:
            return default_patch_size(height, width)
        side = math.isqrt(int(eps) // channels)
        if side < 1:
            raise InputError(
                f"eps={eps:g} under l0 counts input values and a one-pixel patch is {channels}: "
                f"give eps >= {channels}"
            )
        return min(side, largest)
    if isinstance(patch_size, bool) or not isinstance(patch_size, (int, np.integer)):
        raise InputError(f"patch_size must be a whole number of pixels, got {patch_size!r}")
    if not 1 <= patch_size <= largest:
        raise InputError(f"patch_size must be from 1 to {largest} pixels, got {patch_size}")
    if eps is not None and patch_size**2 * channels > eps:
        raise InputError(
            f"a {patch_size}x{patch_size} patch changes {patch_size**2 * channels} input values, "
            f"more than eps={eps:g}; give patch_size or eps, not both"
        )
    return int(patch_size)


@register_attack(SPEC)
def patch(
    target: Target,
    x: np.ndarray,
    y: np.ndarray,
    *,
    eps: float | None = None,
    norm: Norm = "l0",
    patch_size: int | None = None,
    steps: int = 200,
    step_size: float | None = None,
    target_class: int | None = None,
    scale: tuple[float, float] | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> AttackResult:
    """Train one universal patch on `x` and paste it at a random position on every image.

    ``result.artifacts["patch"]`` is the patch ``(C, s, s)`` and ``["positions"]`` the
    (row, column) of its top-left corner on each image ``(n, 2)``; `apply_patch` reuses them.

    Args:
        target: a white-box target over images ``(C, H, W)``.
        x: images ``(n, C, H, W)`` inside the target's input range: the patch is trained on
            them and evaluated on them.
        y: true labels ``(n,)``.
        eps: l0 budget in input values; without `patch_size`, the largest square patch
            within it (``patch_size**2 * C <= eps``). None (default): ``patch_size**2 * C``.
        norm: ``l0``, the only norm of this attack.
        patch_size: side of the square patch in pixels, 1 to ``min(H, W)``; by default about
            10% of the image area (or as `eps` allows).
        steps: signed-gradient training steps, >= 0, each over a batch of `x`.
        step_size: change of each patch value per step, in input units; by default 1/20 of
            the input range.
        target_class: the class the patch should make the model predict; None for an
            untargeted patch that pushes every image away from its true class. Samples of that
            class cannot be part of a targeted evaluation.
        scale: (smallest, largest) fraction of `patch_size` at which the patch is pasted during
            training, in (0, 1], for robustness to size; None trains at full size only.
        seed: seeds the initial patch, the positions and the batches.
        progress: ``progress(done, total)`` callback in training steps.
    """
    if len(target.input_shape) != 3:
        raise InputError(
            f"patch attacks need images (C, H, W); {target.name} takes {target.input_shape}. "
            "For grey images without a channel axis, give input_shape=(1, H, W)"
        )
    channels, height, width = target.input_shape
    budget = check_eps(eps, "l0", target, required=False)
    side = _patch_side(budget, patch_size, channels, height, width)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise InputError(f"steps must be a whole number >= 0, got {steps!r}")
    low, high = target.input_range
    size = (high - low) / 20 if step_size is None else step_size
    if not (isinstance(size, (int, float)) and math.isfinite(size) and size > 0):
        raise InputError(f"step_size must be a positive number in input units, got {size!r}")
    if scale is not None and not (len(scale) == 2 and 0 < float(scale[0]) <= float(scale[1]) <= 1):
        raise InputError(
            f"scale must be (smallest, largest) with 0 < smallest <= largest <= 1, got {scale!r}"
        )
    y_target = None
    if target_class is not None:
        labels = np.asarray(y)
        labels = labels.argmax(axis=1) if labels.ndim == 2 else labels
        if not (
            isinstance(target_class, (int, np.integer)) and 0 <= target_class < target.n_classes
        ):
            raise InputError(
                f"target_class must be a class index in [0, {target.n_classes - 1}], "
                f"got {target_class!r}"
            )
        own = int(np.sum(labels == target_class))
        if own:
            raise InputError(
                f"{own} samples already have label {target_class}; a targeted patch is evaluated "
                f"on the other classes: pass x[y != {target_class}], y[y != {target_class}]"
            )
        y_target = np.full(len(labels), int(target_class), dtype=np.int64)
    return run_attack(
        _patch,
        SPEC,
        target,
        x,
        y,
        eps=float(side * side * channels) if budget is None else budget,
        norm=norm,
        y_target=y_target,
        seed=seed,
        progress=progress,
        params={
            "patch_size": int(side),
            "steps": int(steps),
            "step_size": float(size),
            "scale": None if scale is None else (float(scale[0]), float(scale[1])),
        },
    )
