"""Audit check ``ml01.evasion``: how much of the model's accuracy survives adversarial inputs.

The check runs `mlwarden.evaluate.robustness` on the first `EvasionSettings.n_samples` samples of
the audit's data and turns the result into findings, metrics and figures. Not for: running
attacks (`mlwarden.attacks.evasion`) or drawing (`mlwarden.report.figures`).

Findings (risk ML01):

- ``evasion.low-robust-accuracy``, one per eps. Its severity follows the share of the model's
  accuracy that survives the attacks, ``robust accuracy / clean accuracy`` at that eps (the
  defaults are `SeverityThresholds`): below 0.25 **high** (the attacker flips more than three
  correct predictions in four: the model is undefended at this budget, as standard models are at
  8/255 Linf on images); below 0.5 **medium** (half or more flipped: the level of early
  adversarially trained models); below 0.9 **low** (a robust model that still loses more than a
  tenth: the state of the art on CIFAR-10 at 8/255 keeps about three quarters); else **info**,
  recorded as evidence that the model holds at this budget.
- ``evasion.gradient-masking`` (**medium**), one per sanity check that failed: the robust
  accuracy above is then likely overstated.

Default budgets (`default_eps`), when the settings give none: a per-value change of 1/255,
2/255, 4/255 and 8/255 of the input range for images (the usual image budgets), 1%, 2%, 5% and
10% of it for tabular data, expressed in the norm's units as the norm of a perturbation that
moves every value by that much (times sqrt(d) under l2, times d under l1, for d input values);
under l0, 1, 2, 4 and 8 changed values.

Metrics (``report.metrics["ml01.evasion"]``): ``norm``, ``eps``, ``suite``, ``attacks``,
``n_samples``, ``clean_accuracy``, ``by_eps`` (per eps: worst-case ``robust_accuracy`` and
``per_attack``), ``median_minimal_perturbation`` (median over fooled samples of the smallest
fooling perturbation, input units), ``queries``, ``elapsed_s``, ``interrupted``,
``masking_flags``, ``sanity_checks_run``, ``skipped_attacks`` (attack -> why it did not run),
and two tables for people: ``robustness`` and ``summary``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlwarden.attacks.evasion.base import NORMS, Norm
from mlwarden.audit.registry import CheckResult, NothingToAssess, register_check
from mlwarden.errors import InputError
from mlwarden.evaluate.results import MaskingFlag, RobustnessResult
from mlwarden.evaluate.robustness import robustness
from mlwarden.findings import Finding, Location, Risk, Severity
from mlwarden.report.figures import (
    eps_text,
    feature_table,
    gallery,
    image_shape,
    percent,
    perturbation_distribution,
    robustness_curve,
)
from mlwarden.report.model import Figure, Table

if TYPE_CHECKING:
    from mlwarden.audit.runner import AuditContext

CHECK_ID = "ml01.evasion"
SUITES = ("quick", "standard", "strong")
DEFAULT_N_SAMPLES = 500
IMAGE_STEPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
"""Default per-value budgets for images, as fractions of the input range."""
TABULAR_STEPS = (0.01, 0.02, 0.05, 0.1)
"""Default per-value budgets for tabular data, as fractions of the input range."""
L0_COUNTS = (1, 2, 4, 8)
"""Default l0 budgets: number of input values the attacker may change."""
MAX_SAMPLE_IDS = 10
"""Sample ids listed in a finding's evidence; the metrics and figures hold the rest."""

LOW_ROBUSTNESS_REMEDIATION = (
    "Apply the OWASP ML01 measures: adversarial training (train on adversarial examples at "
    "this budget, e.g. PGD or TRADES), robust models (certified defences such as randomized "
    "smoothing, architectures and preprocessing evaluated for robustness), and input "
    "validation at the serving boundary (reject inputs that are out of range or out of "
    "distribution, detect anomalous queries). Then re-run this audit at the same eps."
)
MASKING_REMEDIATION = (
    "The robust accuracy reported for this model is likely overstated: its gradients mislead "
    "the white-box attacks. Trust the lowest number any attack reached, run the strong suite "
    "with the black-box attacks (square, hopskipjump), attack through non-differentiable "
    "preprocessing (quantisation, JPEG, thresholding) with BPDA (a differentiable "
    "approximation on the backward pass) or remove it for the evaluation, and average "
    "gradients over the randomness of randomised defences (EOT)."
)
MASKING_TITLES: dict[str, str] = {
    "black-box-beats-white-box": "a black-box attack beat the gradient attacks",
    "unbounded-not-zero": "robust accuracy does not reach zero with an unbounded budget",
    "more-iterations-help": "more iterations or restarts changed robust accuracy",
    "zero-gradients": "the model's gradients vanish on many inputs",
    "randomised-outputs": "the model answers the same input differently",
}
MASKING_ADVICE: dict[str, str] = {
    "black-box-beats-white-box": (
        "A black-box attack should never beat white-box attacks on a differentiable model; "
        "the gradients are obfuscated."
    ),
    "unbounded-not-zero": (
        "With an unlimited budget every input can be changed into another class; attacks "
        "that stall are being stopped by the model's gradients, not by robustness."
    ),
    "more-iterations-help": (
        "Robust accuracy should not depend much on the attack's effort; raise the number of "
        "iterations and restarts until it stops changing."
    ),
    "zero-gradients": (
        "Saturated outputs (a softmax or threshold inside the model) hide the gradient; "
        "attack the logits, or use a margin loss (the DLR loss of APGD-DLR)."
    ),
    "randomised-outputs": (
        "A randomised model needs Expectation over Transformation: average gradients and "
        "predictions over many draws before judging an input adversarial."
    ),
}


@dataclass(frozen=True)
class SeverityThresholds:
    """Severity of a low-robustness finding from ``robust accuracy / clean accuracy``.

    A ratio below `high` is high, below `medium` medium, below `low` low, else info;
    ``0 <= high <= medium <= low <= 1``.
    """

    high: float = 0.25
    medium: float = 0.5
    low: float = 0.9

    def __post_init__(self) -> None:
        values = (self.high, self.medium, self.low)
        if not all(math.isfinite(v) for v in values) or not (
            0 <= self.high <= self.medium <= self.low <= 1
        ):
            raise InputError(
                "severity thresholds must satisfy 0 <= high <= medium <= low <= 1 (shares of "
                f"the clean accuracy kept under attack), got {values}"
            )

    def severity(self, kept: float) -> Severity:
        """The severity for keeping `kept` (0..1) of the clean accuracy under attack."""
        if kept < self.high:
            return Severity.HIGH
        if kept < self.medium:
            return Severity.MEDIUM
        if kept < self.low:
            return Severity.LOW
        return Severity.INFO


@dataclass(frozen=True)
class EvasionSettings:
    """How the ``ml01.evasion`` check evaluates; the defaults suit a first audit."""

    norm: Norm = "linf"
    """Threat model: ``linf``, ``l2``, ``l1`` or ``l0``."""
    eps: tuple[float, ...] | None = None
    """Budgets in input units (l0: values changed), each >= 0; None uses `default_eps`."""
    suite: str = "standard"
    """``quick``, ``standard`` or ``strong`` (`mlwarden.evaluate.robustness`)."""
    attacks: tuple[str, ...] | None = None
    """Attack names replacing the suite's own list; None keeps the suite's."""
    n_samples: int = DEFAULT_N_SAMPLES
    """The first `n_samples` samples of the data are evaluated, >= 1."""
    seed: int = 0
    feature_names: tuple[str, ...] = ()
    """Column names of tabular data, for the table of moved features; () names them ``x[i]``."""
    sanity_checks: bool = True
    """Look for gradient masking after the attacks (costs about as much again); turning it off
    leaves an overstated robust accuracy unflagged."""
    thresholds: SeverityThresholds = field(default_factory=SeverityThresholds)

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise InputError(f"unknown norm {self.norm!r}; choose one of {', '.join(NORMS)}")
        if self.eps is not None:
            if not self.eps:
                raise InputError("eps is empty: give at least one budget, or leave it out")
            if not all(math.isfinite(e) and e >= 0 for e in self.eps):
                raise InputError(f"every eps must be a finite number >= 0, got {self.eps}")
        if self.suite not in SUITES:
            raise InputError(f"unknown suite {self.suite!r}; choose one of {', '.join(SUITES)}")
        if self.attacks is not None and not self.attacks:
            raise InputError("attacks is empty: name at least one attack, or leave it out")
        if self.n_samples < 1:
            raise InputError(f"n_samples must be >= 1, got {self.n_samples}")


def default_eps(
    norm: Norm, input_shape: Sequence[int], input_range: tuple[float, float]
) -> tuple[float, ...]:
    """The budgets evaluated when none are given, in input units (see the module docstring)."""
    size = math.prod(int(d) for d in input_shape)
    if norm == "l0":
        return tuple(float(c) for c in L0_COUNTS if c <= size) or (1.0,)
    steps = IMAGE_STEPS if image_shape(tuple(input_shape)) else TABULAR_STEPS
    width = input_range[1] - input_range[0]
    scale = {"linf": 1.0, "l2": math.sqrt(size), "l1": float(size)}[norm]
    return tuple(step * width * scale for step in steps)


@register_check(
    CHECK_ID,
    title="Evasion: robust accuracy under adversarial inputs (attacks the model)",
    risks=(Risk.ML01,),
    needs=("target", "data"),
)
def evasion(context: AuditContext) -> CheckResult:
    """Evaluate robustness on the context's data and report it; needs a target and data."""
    settings = _settings(context.evasion)
    target = context.target
    x, y = _samples(context.data, settings.n_samples)
    eps = settings.eps or default_eps(settings.norm, target.input_shape, target.input_range)
    options: dict[str, Any] = {}
    if settings.attacks is not None:
        options["attacks"] = list(settings.attacks)
    result = robustness(
        target,
        x,
        y,
        norm=settings.norm,
        eps=list(eps),
        suite=settings.suite,
        seed=settings.seed,
        sanity_checks=settings.sanity_checks,
        feature_names=settings.feature_names,
        progress=context.progress,
        **options,
    )
    if result.clean_accuracy <= 0:
        raise NothingToAssess(
            f"the model classifies none of the {result.n_samples} samples correctly, so there "
            "is no prediction to attack; check the labels and the input scaling"
        )
    return assess(result, settings.thresholds, input_range=target.input_range)


def assess(
    result: RobustnessResult,
    thresholds: SeverityThresholds | None = None,
    *,
    input_range: tuple[float, float] | None = None,
) -> CheckResult:
    """Findings, metrics and figures for a finished evaluation (no attack runs here).

    Args:
        thresholds: severities by the share of clean accuracy kept; None uses the defaults.
        input_range: (low, high) of valid inputs in input units, for the pictures; None infers
            it from the examples.
    """
    if result.clean_accuracy <= 0:
        raise NothingToAssess("no sample was classified correctly, so there is nothing to attack")
    limits = thresholds or SeverityThresholds()
    findings = [_robustness_finding(result, j, limits) for j in range(len(result.eps))]
    findings += [_masking_finding(result, flag) for flag in result.flags]
    return CheckResult(
        findings=findings,
        metrics=_metrics(result),
        figures=_figures(result, input_range),
    )


def _settings(value: Any) -> EvasionSettings:
    if value is None:
        return EvasionSettings()
    if not isinstance(value, EvasionSettings):
        raise InputError(
            f"the audit context's evasion settings must be EvasionSettings, got {type(value)}"
        )
    return value


def _samples(data: Any, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        x, y = data
    except (TypeError, ValueError):
        raise InputError("the audit data must be a pair (x, y) of inputs and labels") from None
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        raise InputError(
            f"the audit data has inputs of shape {x.shape} and labels of shape {y.shape}; give "
            "one label per input"
        )
    return x[:n_samples], y[:n_samples]


def _kept(result: RobustnessResult, eps: float) -> float:
    return result.robust_accuracy[eps] / result.clean_accuracy


def _fooled_ids(result: RobustnessResult, column: int) -> list[int]:
    correct = np.asarray(result.minimal_norms) > 0
    fooled = correct & ~np.asarray(result.robust, dtype=bool)[:, column]
    return [int(i) for i in np.flatnonzero(fooled)]


def _robustness_finding(
    result: RobustnessResult, column: int, thresholds: SeverityThresholds
) -> Finding:
    eps = result.eps[column]
    robust = result.robust_accuracy[eps]
    kept = _kept(result, eps)
    fooled = _fooled_ids(result, column)
    correct = round(result.clean_accuracy * result.n_samples)
    detail = (
        f"When each input may change by at most eps {eps_text(eps)} ({result.norm} norm, input "
        f"units), {percent(robust)} of {result.n_samples} samples stay correctly classified "
        f"under the {result.suite} suite ({', '.join(result.attacks)}), against "
        f"{percent(result.clean_accuracy)} without attack: the model keeps {kept:.0%} of its "
        f"accuracy; {len(fooled)} of the {correct} samples it gets right can be flipped."
    )
    if result.interrupted:
        detail += " The evaluation was interrupted, so the true robust accuracy may be lower."
    if result.flags:
        detail += " Signs of gradient masking were found: this number is likely overstated."
    return Finding(
        risk=Risk.ML01,
        check=CHECK_ID,
        rule="evasion.low-robust-accuracy",
        severity=thresholds.severity(kept),
        location=Location(path=result.target_name),
        title=f"Robust accuracy under {result.norm} attacks at eps {eps_text(eps)}",
        detail=detail,
        evidence={
            "eps": eps,
            "norm": result.norm,
            "clean_accuracy": result.clean_accuracy,
            "robust_accuracy": robust,
            "accuracy_kept": kept,
            "suite": result.suite,
            "attacks": list(result.attacks),
            "n_samples": result.n_samples,
            "per_attack": {
                attack: by_eps[eps]
                for attack, by_eps in sorted(result.per_attack.items())
                if eps in by_eps
            },
            "sample_ids": fooled[:MAX_SAMPLE_IDS],
        },
        remediation=LOW_ROBUSTNESS_REMEDIATION,
    )


def _masking_finding(result: RobustnessResult, flag: MaskingFlag) -> Finding:
    what = MASKING_TITLES.get(flag.check, flag.check)
    advice = MASKING_ADVICE.get(flag.check, "")
    return Finding(
        risk=Risk.ML01,
        check=CHECK_ID,
        rule="evasion.gradient-masking",
        severity=Severity.MEDIUM,
        location=Location(path=result.target_name),
        title=f"Robust accuracy is likely overstated: {what}",
        detail=f"{flag.detail} {advice}".strip(),
        evidence={
            "sanity_check": flag.check,
            "observed": flag.detail,
            "measured": dict(flag.evidence),
            "norm": result.norm,
            "suite": result.suite,
            "attacks": list(result.attacks),
        },
        remediation=MASKING_REMEDIATION,
    )


def _median_minimal_perturbation(result: RobustnessResult) -> float:
    norms = np.asarray(result.minimal_norms, dtype=np.float64)
    fooled = norms[(norms > 0) & np.isfinite(norms)]
    return float(np.median(fooled)) if len(fooled) else math.nan


def _metrics(result: RobustnessResult) -> dict[str, Any]:
    attacks = sorted(result.per_attack)
    return {
        "norm": result.norm,
        "eps": list(result.eps),
        "suite": result.suite,
        "attacks": list(result.attacks),
        "n_samples": result.n_samples,
        "clean_accuracy": result.clean_accuracy,
        "by_eps": [
            {
                "eps": eps,
                "robust_accuracy": result.robust_accuracy[eps],
                "per_attack": {
                    a: result.per_attack[a][eps] for a in attacks if eps in result.per_attack[a]
                },
            }
            for eps in result.eps
        ],
        "median_minimal_perturbation": _median_minimal_perturbation(result),
        "queries": result.queries,
        "elapsed_s": round(result.elapsed_s, 3),
        "interrupted": result.interrupted,
        "masking_flags": [flag.check for flag in result.flags],
        "sanity_checks_run": list(result.checks_run),
        "skipped_attacks": dict(result.skipped),
        "robustness": _robustness_table(result, attacks).to_data(),
        "summary": _summary_table(result).to_data(),
    }


def _robustness_table(result: RobustnessResult, attacks: list[str]) -> Table:
    clean = percent(result.clean_accuracy)
    rows = [("0 (no attack)", *(clean for _ in attacks), clean)]
    for eps in result.eps:
        per_attack = (
            percent(result.per_attack[a][eps]) if eps in result.per_attack[a] else "—"
            for a in attacks
        )
        rows.append((eps_text(eps), *per_attack, percent(result.robust_accuracy[eps])))
    return Table(
        columns=(f"eps ({result.norm})", *attacks, "worst case"),
        rows=tuple(rows),
        title=f"{result.target_name}: robust accuracy by eps, {result.n_samples} samples",
    )


def _summary_table(result: RobustnessResult) -> Table:
    median = _median_minimal_perturbation(result)
    rows = [
        ("samples", str(result.n_samples)),
        ("clean accuracy", percent(result.clean_accuracy)),
        ("suite", f"{result.suite} ({', '.join(result.attacks)})"),
        (
            f"median smallest fooling perturbation ({result.norm})",
            "none found" if math.isnan(median) else f"{median:.3g}",
        ),
        ("queries", f"{result.queries:,}"),
        ("time", f"{result.elapsed_s:.1f} s"),
        (
            "gradient masking signs",
            ", ".join(flag.check for flag in result.flags) if result.flags else "none",
        ),
        ("sanity checks run", ", ".join(result.checks_run) or "none"),
    ]
    if result.skipped:
        skipped = "; ".join(f"{name}: {why}" for name, why in sorted(result.skipped.items()))
        rows.append(("attacks not run", skipped))
    if result.interrupted:
        rows.append(("interrupted", "yes: robust accuracy is overstated"))
    return Table(
        columns=("measure", "value"),
        rows=tuple(rows),
        title=f"{result.target_name}: evasion summary",
    )


def _figures(result: RobustnessResult, input_range: tuple[float, float] | None) -> list[Figure]:
    figures = [robustness_curve(result)]
    optional = [
        perturbation_distribution(result),
        gallery(result, input_range=input_range),
        feature_table(result, input_range=input_range),
    ]
    return figures + [f for f in optional if f is not None]
