"""One attack's result seen as a robustness evaluation, so it is reported like the audit's.

`mlwarden attack evasion` runs a single attack; `from_attack` turns its verified `AttackResult`
into a `RobustnessResult` (one attack, its eps, or several eps for a minimum-norm run) and
`attack_report` into a `Report` with the same findings, metrics and figures as ``ml01.evasion``.
No attack runs here and no sanity check is claimed. Not for: suites (`robustness`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlwarden.attacks.evasion.base import AttackResult
from mlwarden.evaluate.results import AdversarialExample, AttackRun, RobustnessResult
from mlwarden.report.model import Report

SINGLE_SUITE = "single attack"


def from_attack(
    result: AttackResult,
    *,
    target_name: str,
    input_shape: Sequence[int],
    eps: Sequence[float] | None = None,
    n_examples: int = 8,
) -> RobustnessResult:
    """`result` as a one-attack `RobustnessResult`.

    Args:
        target_name: shown in the report.
        input_shape: shape of one sample (for default budgets of minimum-norm runs).
        eps: budgets in input units at which to read a minimum-norm result; None uses the
            attack's own eps, or the audit's default budgets when it had none.
        n_examples: adversarial examples kept per eps, >= 0.
    """
    from mlwarden.evaluate.check import default_eps

    threat = result.threat
    if eps is not None:
        budgets = sorted({float(e) for e in eps})
    elif threat.eps is not None:
        budgets = [float(threat.eps)]
    else:
        budgets = list(default_eps(threat.norm, tuple(input_shape), threat.input_range))
    correct = result.clean_predictions == result.y
    minimal = result.minimal_norms()
    robust = np.stack([minimal > threat.limit(e) for e in budgets], axis=1)
    by_eps = {e: float(robust[:, k].mean()) for k, e in enumerate(budgets)}
    run = AttackRun(
        attack=result.attack,
        eps=threat.eps,
        robust_accuracy=result.robust_accuracy,
        success_rate=result.success_rate,
        median_norm=result.median_norm,
        queries=result.queries,
        elapsed_s=result.elapsed_s,
        n_projected=result.n_projected,
        interrupted=result.interrupted,
        n_samples=len(result.y),
        params=dict(result.params),
    )
    return RobustnessResult(
        target_name=target_name,
        norm=threat.norm,
        eps=budgets,
        suite=SINGLE_SUITE,
        attacks=[result.attack],
        n_samples=len(result.y),
        clean_accuracy=float(correct.mean()),
        robust_accuracy=by_eps,
        per_attack={result.attack: dict(by_eps)},
        robust=robust,
        minimal_norms=minimal,
        runs=[run],
        examples=_examples(result, budgets, minimal, correct, n_examples),
        queries=result.queries,
        elapsed_s=result.elapsed_s,
        interrupted=result.interrupted,
    )


def _examples(
    result: AttackResult,
    budgets: list[float],
    minimal: np.ndarray,
    correct: np.ndarray,
    per_eps: int,
) -> list[AdversarialExample]:
    chosen: list[AdversarialExample] = []
    for eps in budgets:
        fooled = np.flatnonzero(correct & (minimal <= result.threat.limit(eps)))
        fooled = fooled[np.argsort(-result.confidence[fooled], kind="stable")]
        for i in fooled[:per_eps]:
            chosen.append(
                AdversarialExample(
                    index=int(i),
                    eps=eps,
                    attack=result.attack,
                    x=result.x[i].copy(),
                    x_adv=result.x_adv[i].copy(),
                    label=int(result.y[i]),
                    clean_prediction=int(result.clean_predictions[i]),
                    clean_confidence=float(result.clean_confidence[i]),
                    adversarial_prediction=int(result.predictions[i]),
                    adversarial_confidence=float(result.confidence[i]),
                    perturbation_norm=float(result.norms[i]),
                )
            )
    return chosen


def attack_report(
    result: AttackResult,
    *,
    target_name: str,
    input_shape: Sequence[int],
    inputs: Sequence[str] = (),
) -> Report:
    """A report of one attack: the ``ml01.evasion`` findings, metrics and figures for it."""
    from mlwarden.audit.registry import get_check
    from mlwarden.audit.runner import record_result
    from mlwarden.evaluate.check import CHECK_ID, assess
    from mlwarden.findings import Risk
    from mlwarden.report.model import NotAssessed

    evaluation = from_attack(result, target_name=target_name, input_shape=input_shape)
    report = Report(inputs=list(inputs))
    if evaluation.clean_accuracy <= 0:
        report.not_assessed.append(
            NotAssessed(
                CHECK_ID,
                (Risk.ML01,),
                "the model classifies none of the samples correctly; check labels and scaling",
            )
        )
        return report
    record_result(
        report, get_check(CHECK_ID), assess(evaluation, input_range=result.threat.input_range)
    )
    report.duration_s = result.elapsed_s
    return report
