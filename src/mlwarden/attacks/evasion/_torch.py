"""Torch helpers shared by the white-box attacks: batching, losses, steps and projections.

Everything here works on torch tensors inside an attack's inner loop, where speed matters; the
runner does the final, trusted projection in NumPy. Losses are per sample and written so that
the attack always *maximises* them. Not for: anything a user calls directly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch

from mlwarden.attacks.evasion.base import AttackState, stream_rng
from mlwarden.errors import InputError
from mlwarden.targets.base import WhiteBoxTarget

Loss = Literal["ce", "dlr", "margin"]
LOSSES: tuple[Loss, ...] = ("ce", "dlr", "margin")

_DLR_EPS = 1e-12


def batches(
    state: AttackState, target: WhiteBoxTarget, *, skip_found: bool = True
) -> Iterator[np.ndarray]:
    """Sample indices in chunks of the target's batch size; already-fooled samples skipped."""
    todo = np.flatnonzero(~state.found) if skip_found else np.arange(len(state.x))
    for start in range(0, len(todo), target.batch_size):
        yield todo[start : start + target.batch_size]


def to_tensor(array: np.ndarray, target: WhiteBoxTarget) -> torch.Tensor:
    """A float32 tensor on the target's device."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(target.device)


def labels_tensor(labels: np.ndarray, target: WhiteBoxTarget) -> torch.Tensor:
    """An int64 tensor of class indices on the target's device."""
    return torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)).to(target.device)


def model_view(rows: torch.Tensor, state: AttackState) -> torch.Tensor:
    """A batch of inputs ``(m, *input_shape)`` viewing `rows`, contiguous ``(m, d)`` or
    ``(m, *input_shape)``, without a copy.

    One-channel images come channels-last when the caller's were (`AttackState.channels_last`):
    the same memory, with the strides torch would see on the caller's own tensors, so that the
    model runs the same kernels as in plain torch.
    """
    shape = state.x.shape[1:]
    if state.channels_last and len(shape) == 3 and shape[0] == 1:
        return rows.view(-1, shape[1], shape[2], 1).permute(0, 3, 1, 2)
    return rows.view(-1, *shape)


def clean_pass(
    state: AttackState, target: WhiteBoxTarget, index: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean inputs of samples `index` as a tensor that requires grad, and the target's
    logits there (``len(index)`` queries, like any gradient pass).

    The logits are also the target's clean answer: they go to the runner as the clean
    predictions (`AttackState.note_clean`), so an attack whose spec sets ``clean_pass`` and
    whose first pass is at the clean inputs costs no separate clean forward pass.
    """
    x = to_tensor(state.x[index], target).requires_grad_(True)
    logits = target.logits(model_view(x, state))
    state.note_clean(index, torch.softmax(logits.detach().float(), dim=1).cpu().numpy())
    return x, logits


def generator(state: AttackState, stream: int) -> torch.Generator:
    """A CPU torch generator seeded from the attack's seed; different streams are independent."""
    return torch.Generator().manual_seed(_torch_seed(state.seed, stream))


@functools.lru_cache(maxsize=1024)
def _torch_seed(seed: int, stream: int) -> int:
    """The torch seed of `stream` under `seed`, drawn from that stream's NumPy generator
    (building one costs more than a small model's forward pass)."""
    return int(stream_rng(seed, stream).integers(0, 2**62))


def per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(n,)`` values shaped to broadcast against a batch like `like`."""
    return values.view(-1, *([1] * (like.ndim - 1)))


# -- losses (per sample, to maximise) ---------------------------------------------------------


def ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of `labels` under `logits`, per sample."""
    return torch.nn.functional.cross_entropy(logits, labels, reduction="none")


def margin_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Largest other logit minus the logit of `labels`: > 0 exactly when the label lost."""
    own = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return others.amax(dim=1) - own


def dlr_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Difference of logits ratio (Croce & Hein 2020): the margin, scaled by the logit spread.

    Invariant to shifting and scaling the logits, so saturated softmax outputs do not stall it.
    With fewer than three classes the spread is undefined and the plain margin is returned.
    """
    margin = margin_loss(logits, labels)
    if logits.shape[1] < 3:
        return margin
    top = logits.topk(3, dim=1).values
    return margin / (top[:, 0] - top[:, 2] + _DLR_EPS)


def targeted_dlr_loss(
    logits: torch.Tensor, labels: torch.Tensor, target_labels: torch.Tensor
) -> torch.Tensor:
    """Targeted DLR (Croce & Hein 2020): logit of the target minus that of the true label,
    scaled by the gap between the top logit and the mean of the third and fourth.

    With three classes the fourth is missing and the third stands in; with two classes the
    unscaled difference is returned.
    """
    own = logits.gather(1, labels[:, None]).squeeze(1)
    wanted = logits.gather(1, target_labels[:, None]).squeeze(1)
    gap = wanted - own
    n_classes = logits.shape[1]
    if n_classes < 3:
        return gap
    top = logits.topk(min(4, n_classes), dim=1).values
    low = 0.5 * (top[:, 2] + top[:, 3]) if n_classes >= 4 else top[:, 2]
    return gap / (top[:, 0] - low + _DLR_EPS)


def objective(
    loss: Loss,
    logits: torch.Tensor,
    labels: torch.Tensor,
    target_labels: torch.Tensor | None,
) -> torch.Tensor:
    """Per-sample loss to maximise: leave `labels` (untargeted) or reach `target_labels`."""
    if target_labels is None:
        if loss == "ce":
            return ce_loss(logits, labels)
        if loss == "dlr":
            return dlr_loss(logits, labels)
        return margin_loss(logits, labels)
    if loss == "ce":
        return -ce_loss(logits, target_labels)
    if loss == "dlr":
        return targeted_dlr_loss(logits, labels, target_labels)
    return -margin_loss(logits, target_labels)


def hits(predictions: torch.Tensor, goal: torch.Tensor, *, targeted: bool) -> torch.Tensor:
    """Boolean ``(n,)``: which predictions meet the goal (reach it, or leave it)."""
    return predictions == goal if targeted else predictions != goal


# -- steps ------------------------------------------------------------------------------------


def lp_normalise(g: torch.Tensor, norm: str) -> torch.Tensor:
    """Unit-norm steepest-ascent direction of `g` under `norm` (linf: sign; l2: g / ||g||_2)."""
    if norm == "linf":
        return g.sign()
    flat = g.flatten(1)
    if norm == "l2":
        scale = flat.norm(p=2, dim=1).clamp_min(1e-12)
    elif norm == "l1":
        scale = flat.abs().sum(dim=1).clamp_min(1e-12)
    else:
        raise ValueError(f"no steepest direction for norm {norm!r}")
    direction: torch.Tensor = g / per_sample(scale, g)
    return direction


def sparse_l1_direction(
    g: torch.Tensor, x: torch.Tensor, low: float, high: float, quantile: float
) -> torch.Tensor:
    """Unit-l1 ascent direction that moves only the largest gradient coordinates.

    The steepest l1 direction changes one coordinate per step, which is too slow; following
    Tramer & Boneh (2019), the coordinates whose absolute gradient is at or above the
    `quantile` (in [0, 1)) of the sample's gradients move by the sign of their gradient, and
    coordinates pinned at a bound of the input range that the gradient pushes outward never
    count (their step would be clipped away).
    """
    pinned = ((x <= low) & (g < 0)) | ((x >= high) & (g > 0))
    magnitude = g.abs().masked_fill(pinned, 0.0).flatten(1)
    size = magnitude.shape[1]
    keep = max(1, min(size, math.ceil(round((1.0 - quantile) * size, 6))))
    threshold = magnitude.topk(keep, dim=1).values[:, -1:]
    chosen = (magnitude >= threshold) & (magnitude > 0)
    count = chosen.sum(dim=1, keepdim=True).clamp_min(1)
    direction = g.flatten(1).sign() * chosen / count
    return direction.view_as(g)


# -- balls ------------------------------------------------------------------------------------


def project_l1_ball(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Exact Euclidean projection of each sample of `delta` onto the l1 ball of radius `eps`.

    Duchi et al. (2008): soft-threshold the entries by the one theta that brings the l1 norm to
    `eps`, found from the sorted magnitudes. Samples already inside are returned unchanged.
    """
    flat = delta.flatten(1)
    magnitude = flat.abs()
    outside = magnitude.sum(dim=1) > eps
    if not bool(outside.any()):
        return delta
    if eps <= 0:
        return torch.where(per_sample(outside, delta), torch.zeros_like(delta), delta)
    ordered = _sorted_descending(magnitude)
    cumulative = ordered.cumsum(dim=1) - eps
    ranks = torch.arange(1, flat.shape[1] + 1, device=delta.device, dtype=delta.dtype)
    support = (ordered * ranks > cumulative).sum(dim=1, keepdim=True)
    theta = cumulative.gather(1, support - 1) / support.to(delta.dtype)
    shrunk = flat.sign() * (magnitude - theta).clamp_min(0.0)
    projected = torch.where(outside[:, None], shrunk, flat)
    return projected.view_as(delta)


def _sorted_descending(rows: torch.Tensor) -> torch.Tensor:
    """Each row of a 2-d tensor sorted from largest to smallest."""
    if rows.device.type == "cpu" and not rows.requires_grad:
        # torch's CPU sort always builds the index tensor too and is about ten times slower
        # than NumPy's values-only sort on rows of image size; this runs every l1 step
        ascending = np.sort(rows.numpy(), axis=1)
        return torch.from_numpy(np.ascontiguousarray(ascending[:, ::-1]))
    return rows.sort(dim=1, descending=True).values


def project_ball(delta: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """`delta` projected onto the `norm` ball of radius `eps` (linf: clip; l2: rescale; l1:
    exact projection)."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    if norm == "l1":
        return project_l1_ball(delta, eps)
    size = delta.flatten(1).norm(p=2, dim=1)
    factor = (eps / size.clamp_min(1e-12)).clamp(max=1.0)
    scaled: torch.Tensor = delta * per_sample(factor, delta)
    return scaled


def project_threat(
    x_adv: torch.Tensor, x: torch.Tensor, norm: str, eps: float, low: float, high: float
) -> torch.Tensor:
    """`x_adv` moved into the `norm` ball of radius `eps` around `x` and the input range.

    For l1 the perturbation is clipped to the range first and then projected onto the ball:
    shrinking toward zero keeps it inside the range, and the ball's whole budget stays usable.
    """
    if norm == "linf":
        return torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp_(low, high)
    if norm == "l1":
        delta = project_l1_ball(x_adv.clamp(low, high) - x, eps)
        return (x + delta).clamp_(low, high)
    return (x + project_ball(x_adv - x, norm, eps)).clamp_(low, high)


def random_in_ball(
    like: torch.Tensor, norm: str, eps: float, generator: torch.Generator
) -> torch.Tensor:
    """Random perturbations inside the `norm` ball of radius `eps`, shaped like `like`.

    Linf: uniform in the cube (Madry et al.). L2 and l1: a uniformly random direction at a
    radius uniform in ``[0, eps]``, as torchattacks draws its l2 starts. A point uniform in
    the ball's volume sits at radius about ``eps * u ** (1 / d)``, on its surface for any real
    input size, and PGD then spends its steps undoing noise: on the digits CNNs, starts drawn
    that way left about 1% more samples unfooled after 50 l2 steps than these (3% under l1).
    """
    shape, dims = like.shape, like[0].numel()
    if norm == "linf":
        noise = (torch.rand(shape, generator=generator) * 2 - 1) * eps
    elif norm == "l2":
        direction = torch.randn(shape, generator=generator)
        direction = direction / per_sample(direction.flatten(1).norm(dim=1).clamp_min(1e-12), like)
        radius = torch.rand(shape[0], generator=generator) * eps
        noise = direction * per_sample(radius, like)
    elif norm == "l1":
        # d exponentials, normalised, are uniform on the simplex; random signs spread them over
        # the whole l1 sphere
        spacing = torch.empty(shape[0], dims).exponential_(generator=generator)
        mass = spacing / spacing.sum(dim=1, keepdim=True)
        signs = torch.randint(0, 2, (shape[0], dims), generator=generator) * 2 - 1
        radius = torch.rand(shape[0], 1, generator=generator) * eps
        noise = (mass * signs * radius).view(shape)
    else:
        raise ValueError(f"no random start for norm {norm!r}")
    return noise.to(device=like.device, dtype=like.dtype)


# -- parameter checks -------------------------------------------------------------------------


def check_count(value: int, name: str, *, minimum: int = 1) -> int:
    """`value` as an int >= `minimum`, or an `InputError` naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def check_positive(value: float | None, name: str, *, allow_zero: bool = False) -> float | None:
    """`value` as a finite float > 0 (>= 0 with `allow_zero`), None kept, else an `InputError`."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InputError(f"{name} must be a finite number {bound}, got {value!r}")
    return number


def check_loss(loss: str) -> Loss:
    """`loss` if it names a known loss, else an `InputError` listing them."""
    for known in LOSSES:
        if loss == known:
            return known
    raise InputError(f"loss must be one of {', '.join(LOSSES)}; got {loss!r}")
