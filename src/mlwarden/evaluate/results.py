"""What a robustness evaluation returns: the numbers, the evidence and the warnings.

Filled by `mlwarden.evaluate.robustness`; read by the ML01 audit check (findings), the report
figures (robustness curve, gallery, feature table) and users. Nothing here runs an attack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlwarden.attacks.evasion.base import Norm


@dataclass(frozen=True)
class AttackRun:
    """One attack at one budget, as verified by the runner."""

    attack: str
    eps: float | None
    """Budget in input units; None for a minimum-norm run (robust accuracy at no bound)."""
    robust_accuracy: float
    success_rate: float
    median_norm: float
    """Median perturbation of the fooled samples, NaN when none."""
    queries: int
    elapsed_s: float
    n_projected: int
    """Results the runner had to move back into the threat model."""
    interrupted: bool
    n_samples: int = 0
    """Samples the attack ran on: later attacks of a suite only see the samples still robust.
    `robust_accuracy` and `success_rate` are fractions of these."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Attack parameters given by the suite or the user (the attack's defaults for the rest)."""


@dataclass(frozen=True)
class AdversarialExample:
    """One sample and the worst adversarial input found for it: the gallery's raw material."""

    index: int
    """Row of the evaluated data."""
    eps: float
    attack: str
    x: np.ndarray
    x_adv: np.ndarray
    label: int
    clean_prediction: int
    clean_confidence: float
    adversarial_prediction: int
    adversarial_confidence: float
    success: bool = True
    """An attack fooled the model; False for a sample every attack missed (``x_adv`` is ``x``,
    `attack` is empty)."""
    perturbation_norm: float = 0.0
    """Size of ``x_adv - x`` under the evaluation's norm, in input units."""


@dataclass(frozen=True)
class MaskingFlag:
    """A sanity check from the literature on evaluating defences that failed."""

    check: str
    """Stable id: ``black-box-beats-white-box``, ``unbounded-not-zero``, ``more-iterations-help``,
    ``zero-gradients``, ``randomised-outputs``."""
    detail: str
    """What was observed, with the numbers."""
    evidence: Mapping[str, float] = field(default_factory=dict)
    """The same numbers, machine-readable (counts, fractions, eps, thresholds)."""


@dataclass
class RobustnessResult:
    """Robust accuracy per eps (worst case per sample over the suite) and everything behind it."""

    target_name: str
    norm: Norm
    eps: list[float]
    """Budgets evaluated, ascending, in input units."""
    suite: str
    attacks: list[str]
    n_samples: int
    clean_accuracy: float
    robust_accuracy: dict[float, float]
    """eps -> fraction of samples no attack of the suite fooled (worst case per sample)."""
    per_attack: dict[str, dict[float, float]]
    """attack -> eps -> robust accuracy counting only that attack's successes: the fraction of
    samples classified correctly that the attack did not fool at eps (or at a smaller eps).
    Later attacks of a suite run only on the samples earlier ones did not fool (at that eps or a
    smaller one), and a sample an attack never saw counts as not fooled by it, so this is an
    upper bound on what the attack alone would leave. It is exact for minimum-norm attacks,
    which see every sample, and for the suite's first attack at the smallest eps."""
    robust: np.ndarray
    """Per sample and eps, bool ``(n_samples, len(eps))``: still correct under every attack."""
    minimal_norms: np.ndarray
    """Per sample: the smallest perturbation any attack found (0 if misclassified clean, inf if
    none was found)."""
    runs: list[AttackRun] = field(default_factory=list)
    examples: list[AdversarialExample] = field(default_factory=list)
    """Worst-case adversarial examples, a few per eps, for the gallery and the feature table."""
    flags: list[MaskingFlag] = field(default_factory=list)
    """Signs that the numbers may overstate robustness (gradient masking)."""
    queries: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False
    feature_names: tuple[str, ...] = ()
    """Column names of tabular data, when known."""
    skipped: dict[str, str] = field(default_factory=dict)
    """attack -> why it did not run (wrong norm, needs gradients, no constraint support)."""
    checks_run: list[str] = field(default_factory=list)
    """Sanity checks that ran (ids as in `MaskingFlag.check`): no flag means these passed."""
