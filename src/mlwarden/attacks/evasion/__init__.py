"""Evasion attacks (OWASP ML01): each a function ``(target, x, y, *, ..., seed) -> AttackResult``.

    from mlwarden.attacks.evasion import pgd
    result = pgd(target, x, y, eps=0.03)
    print(result.robust_accuracy)

Every attack runs through `base.run_attack`, which validates the inputs, projects every result
onto the threat model and re-checks success with a fresh query. Attack modules are imported on
first use; `get_attack(name)` and `attack_names()` read the registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from mlwarden.attacks.evasion.base import (
    AttackResult,
    AttackSpec,
    ThreatModel,
    perturbation_norms,
    registered_attacks,
)
from mlwarden.attacks.evasion.constraints import FeatureConstraints
from mlwarden.errors import UsageError

BUILTIN_ATTACK_MODULES: dict[str, str] = {
    "fgsm": "mlwarden.attacks.evasion.fast_gradient",
    "pgd": "mlwarden.attacks.evasion.projected_gradient",
    "apgd": "mlwarden.attacks.evasion.auto_pgd",
    "apgd_dlr": "mlwarden.attacks.evasion.auto_pgd",
    "apgd_t": "mlwarden.attacks.evasion.auto_pgd",
    "cw": "mlwarden.attacks.evasion.carlini_wagner",
    "deepfool": "mlwarden.attacks.evasion.deep_fool",
    "square": "mlwarden.attacks.evasion.square_search",
    "hopskipjump": "mlwarden.attacks.evasion.hop_skip_jump",
    "pixel": "mlwarden.attacks.evasion.few_pixel",
    "patch": "mlwarden.attacks.evasion.universal_patch",
    "tabular_pgd": "mlwarden.attacks.evasion.constrained_tabular",
}
"""Attack name -> the module that registers it (imported on first use). Module names differ
from attack names so that ``from mlwarden.attacks.evasion import pgd`` is always the function."""

__all__ = [
    "BUILTIN_ATTACK_MODULES",
    "AttackResult",
    "AttackSpec",
    "FeatureConstraints",
    "ThreatModel",
    "attack_names",
    "get_attack",
    "perturbation_norms",
]


def attack_names() -> list[str]:
    """Names of every built-in attack."""
    return list(BUILTIN_ATTACK_MODULES)


def get_attack(name: str) -> tuple[AttackSpec, Callable[..., AttackResult]]:
    """The spec and public function of attack `name`, or a `UsageError` listing the known ones."""
    module = BUILTIN_ATTACK_MODULES.get(name)
    if module is None:
        raise UsageError(f"unknown attack {name!r}; known attacks: {', '.join(attack_names())}")
    importlib.import_module(module)
    return registered_attacks()[name]


def __getattr__(name: str) -> Any:
    if name in BUILTIN_ATTACK_MODULES:
        return get_attack(name)[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
