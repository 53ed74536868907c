"""Robustness evaluation (OWASP ML01): robust accuracy per eps, worst case over a suite of attacks.

    from mlwarden.evaluate import robustness
    result = robustness(model, x, y, eps=[0.1, 0.2, 0.3], target_options={"input_shape": (1, 8, 8)})
    print(result.robust_accuracy, result.flags)

`robustness` runs a suite (`suite_names()`: quick, standard, strong) or an explicit list of
attacks, then sanity checks for gradient masking; it returns a `RobustnessResult`. Not for:
single attacks (`mlwarden.attacks.evasion`) or reports (`mlwarden.report`).
"""

from __future__ import annotations

from mlwarden.evaluate.results import (
    AdversarialExample,
    AttackRun,
    MaskingFlag,
    RobustnessResult,
)
from mlwarden.evaluate.robustness import robustness
from mlwarden.evaluate.suites import register_suite, suite_names

__all__ = [
    "AdversarialExample",
    "AttackRun",
    "MaskingFlag",
    "RobustnessResult",
    "register_suite",
    "robustness",
    "suite_names",
]
