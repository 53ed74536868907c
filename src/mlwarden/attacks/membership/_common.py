"""What the membership attack modules share: reading their parameters and checking that the
context holds what they need, with errors that name the fix. Not for: the attacks themselves.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlwarden.attacks.membership.base import MembershipContext, ReferenceSet
from mlwarden.errors import InputError, UsageError


def read_params(
    context: MembershipContext, attack: str, defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """The attack's parameters: `defaults` updated with the user's, unknown names refused."""
    unknown = sorted(set(context.params) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise UsageError(
            f"{attack} has no parameter {', '.join(map(repr, unknown))}; its parameters: {known}"
        )
    return {**defaults, **context.params}


def whole_number(attack: str, name: str, value: Any, *, minimum: int) -> int:
    """`value` as an int >= `minimum`, or an `InputError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{attack}: {name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def real_number(
    attack: str, name: str, value: Any, *, low: float, high: float = float("inf")
) -> float:
    """`value` as a float in [`low`, `high`], or an `InputError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{attack}: {name} must be a number, got {value!r}")
    number = float(value)
    if not np.isfinite(number) or not low <= number <= high:
        raise InputError(f"{attack}: {name} must be in [{low:g}, {high:g}], got {value!r}")
    return number


def target_probabilities(context: MembershipContext, attack: str) -> np.ndarray:
    """The target's probabilities on the candidates; a `UsageError` for label-only targets."""
    if context.target_probs is None:
        raise UsageError(
            f"{attack} needs the target's probabilities, but the target returns labels only; "
            "use the label-only attack"
        )
    return np.asarray(context.target_probs, dtype=np.float64)


def reference_set(context: MembershipContext, attack: str) -> ReferenceSet:
    """The context's reference models, checked against the candidates and the population."""
    reference = context.reference
    if reference is None:
        raise UsageError(
            f"{attack} needs reference models: run it through mlwarden.attacks.membership.audit "
            "with train_fn= and population=, or put a ReferenceSet in the context"
        )
    k, n_c, n_p = reference.k, len(context.x), len(context.population[0])
    if k < 1:
        raise InputError(f"{attack}: the reference set holds no reference model")
    n_classes = context.target.n_classes
    expected = {
        "probs_candidates": (reference.probs_candidates, (k, n_c, n_classes)),
        "in_candidates": (reference.in_candidates, (k, n_c)),
        "probs_population": (reference.probs_population, (k, n_p, n_classes)),
        "in_population": (reference.in_population, (k, n_p)),
    }
    for name, (array, shape) in expected.items():
        if tuple(array.shape) != shape:
            raise InputError(
                f"{attack}: the reference set's {name} has shape {tuple(array.shape)}, expected "
                f"{shape} for {k} model(s), {n_c} candidates and {n_p} population records"
            )
        if name.startswith("in_") and array.dtype != np.bool_:
            raise InputError(f"{attack}: the reference set's {name} must be booleans")
        if name.startswith("probs_") and not np.isfinite(array).all():
            raise InputError(f"{attack}: the reference set's {name} holds NaN or inf")
    return reference


def scipy_function(module: str, name: str) -> Any:
    """``scipy.<module>.<name>``, or a `UsageError` naming the install when SciPy is missing."""
    try:
        return getattr(importlib.import_module(f"scipy.{module}"), name)
    except ImportError:
        raise UsageError(
            "membership inference metrics and attacks need SciPy: pip install scipy"
        ) from None
