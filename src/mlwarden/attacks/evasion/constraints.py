"""Feature constraints of tabular threat models: what an attacker can and cannot change.

A fraud or intrusion-detection model reads features the attacker does not control (account age),
features with hard bounds (amount >= 0), whole numbers (number of logins) and one-hot encoded
categories (country). An adversarial example that breaks these is not a real attack. The runner
projects every result onto these constraints, whatever the attack did. Not for: images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mlwarden.errors import InputError


@dataclass(frozen=True)
class FeatureConstraints:
    """Constraints on the features of flat inputs ``(n, n_features)``."""

    immutable: tuple[int, ...] = ()
    """Indices of features the attacker cannot change."""
    lower: tuple[float, ...] | None = None
    """Per-feature lower bound in input units (one per feature), None for the input range."""
    upper: tuple[float, ...] | None = None
    """Per-feature upper bound in input units, None for the input range."""
    integer: tuple[int, ...] = ()
    """Indices of features that take whole values."""
    one_hot: tuple[tuple[int, ...], ...] = field(default_factory=tuple)
    """Groups of feature indices that encode one category: exactly one of them is 1."""

    @classmethod
    def build(
        cls,
        *,
        immutable: Sequence[int] = (),
        lower: Sequence[float] | None = None,
        upper: Sequence[float] | None = None,
        integer: Sequence[int] = (),
        one_hot: Sequence[Sequence[int]] = (),
    ) -> FeatureConstraints:
        """Build from any sequences (lists, arrays)."""
        return cls(
            immutable=tuple(int(i) for i in immutable),
            lower=None if lower is None else tuple(float(v) for v in lower),
            upper=None if upper is None else tuple(float(v) for v in upper),
            integer=tuple(int(i) for i in integer),
            one_hot=tuple(tuple(int(i) for i in group) for group in one_hot),
        )

    def validate(self, x: np.ndarray) -> None:
        """Raise `InputError` unless the clean inputs `x` ``(n, n_features)`` satisfy these."""
        if x.ndim != 2:
            raise InputError(
                f"feature constraints apply to flat inputs (n, n_features), got shape {x.shape}"
            )
        n_features = x.shape[1]
        indices = list(self.immutable) + list(self.integer) + [i for g in self.one_hot for i in g]
        if indices and (min(indices) < 0 or max(indices) >= n_features):
            raise InputError(f"a constrained feature index is outside [0, {n_features - 1}]")
        for bound, what in ((self.lower, "lower"), (self.upper, "upper")):
            if bound is not None and len(bound) != n_features:
                raise InputError(
                    f"{what} bounds need one value per feature ({n_features}), got {len(bound)}"
                )
        if (
            self.lower is not None
            and self.upper is not None
            and np.any(np.array(self.lower) > np.array(self.upper))
        ):
            raise InputError("a feature's lower bound is above its upper bound")
        tolerance = 1e-6
        if self.lower is not None and np.any(
            x < np.array(self.lower, dtype=np.float64) - tolerance
        ):
            raise InputError("the clean data already violates the lower feature bounds")
        if self.upper is not None and np.any(
            x > np.array(self.upper, dtype=np.float64) + tolerance
        ):
            raise InputError("the clean data already violates the upper feature bounds")
        if self.integer and not np.allclose(
            x[:, list(self.integer)], np.round(x[:, list(self.integer)])
        ):
            raise InputError("features declared integer have non-integer values in the clean data")
        for group in self.one_hot:
            block = x[:, list(group)]
            if not (np.isin(block, (0.0, 1.0)).all() and np.allclose(block.sum(axis=1), 1.0)):
                raise InputError(f"one-hot group {list(group)} is not one-hot in the clean data")

    def project(self, x_adv: np.ndarray, x: np.ndarray) -> np.ndarray:
        """`x_adv` moved onto the constraints, never further from `x` than it was (float64)."""
        out = np.array(x_adv, dtype=np.float64)
        clean = np.asarray(x, dtype=np.float64)
        if self.immutable:
            out[:, list(self.immutable)] = clean[:, list(self.immutable)]
        if self.lower is not None:
            out = np.maximum(out, np.array(self.lower))
        if self.upper is not None:
            out = np.minimum(out, np.array(self.upper))
        if self.integer:
            cols = list(self.integer)
            # toward the clean value, so that rounding never enlarges the perturbation
            out[:, cols] = clean[:, cols] + np.trunc(out[:, cols] - clean[:, cols])
        for group in self.one_hot:
            cols = list(group)
            chosen = np.argmax(out[:, cols], axis=1)
            snapped = np.zeros((len(out), len(cols)))
            snapped[np.arange(len(out)), chosen] = 1.0
            out[:, cols] = snapped
        return out

    def free_mask(self, n_features: int) -> np.ndarray:
        """Boolean ``(n_features,)``: True where the attacker may change the feature."""
        mask = np.ones(n_features, dtype=bool)
        mask[list(self.immutable)] = False
        return mask
