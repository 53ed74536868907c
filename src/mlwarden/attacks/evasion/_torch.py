"""Torch helpers shared by the white-box attacks: batching, losses, steps and projections.

Everything here works on torch tensors inside an attack's inner loop, where speed matters; the
runner does the final, trusted projection in NumPy. Not for: anything a user calls directly.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from mlwarden.attacks.evasion.base import AttackState
from mlwarden.targets.base import WhiteBoxTarget


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
    direction: torch.Tensor = g / scale.view(-1, *([1] * (g.ndim - 1)))
    return direction


def project_ball(delta: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """`delta` shrunk into the `norm` ball of radius `eps` (linf: clip; l2 / l1: rescale)."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    flat = delta.flatten(1)
    size = flat.norm(p=2, dim=1) if norm == "l2" else flat.abs().sum(dim=1)
    factor = (eps / size.clamp_min(1e-12)).clamp(max=1.0)
    scaled: torch.Tensor = delta * factor.view(-1, *([1] * (delta.ndim - 1)))
    return scaled
