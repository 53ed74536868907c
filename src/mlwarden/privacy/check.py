"""Audit checks ``ml04.membership`` and ``ml03.inversion``: how much the model leaks about the
records it was trained on.

``ml04.membership`` runs the membership audit (`mlwarden.attacks.membership.audit`) on the
members and non-members of the `PrivacySettings`, then the same attacks against each defence
asked for (`mlwarden.privacy.defences`). ``ml03.inversion`` reconstructs one input per class
from the model (`mlwarden.attacks.inversion.invert`) and judges each against the real records of
that class, and optionally infers a sensitive feature (`mlwarden.attacks.attribute`). Not for:
the attacks themselves, or drawing (`mlwarden.report.figures`).

Findings, risk ML04:

- ``membership.low-fpr-leak``, one per model: the strongest attack's true-positive rate at a
  false-positive rate of 0.1% (Carlini et al. 2022: what matters is being right about some
  people with near certainty), divided by that FPR, i.e. how many times better than a random
  guess the attack is where it is almost never wrong. With fewer than 1,000 non-members the
  smallest FPR the data can measure is 1/n, and the ratio uses that instead of 0.1%. At least
  10x **high**, at least 3x **medium**, above 1.5x **low**, else **info**
  (`PrivacyThresholds`).
- ``membership.epsilon``, one per model: the largest empirical epsilon lower bound over the
  attacks (a Clopper-Pearson bound: no (epsilon, delta)-DP guarantee below it can hold for this
  training). At least 1 **low**, else **info**.

Findings, risk ML03:

- ``inversion.class-reconstructed``, one per class the attack reconstructed: the model gives
  the reconstruction the class with at least 90% confidence, and it is closer to the mean of the
  real records of that class than the mean of all records is. At most 0.8 of the baseline's
  distance **medium**, else **low**; **info** when there were no reference records to compare
  with (the resemblance was not measured).
- ``attribute.inferable`` (when a sensitive feature is named): the attack's accuracy at
  recovering the feature over the baseline of guessing from the feature's distribution: an
  advantage of at least 0.2 **medium**, at least 0.05 **low**, else **info**.

Metrics (``report.metrics["ml04.membership"]``): counts, accuracies, per attack ``auc``,
``tpr_at_fpr``, ``advantage``, ``epsilon``; tables ``attacks`` (TPR at FPR), ``exposed`` (most
exposed members), ``summary`` and, with defences, ``defences`` (before / after with the utility
cost). ``report.metrics["ml03.inversion"]``: per class ``classes`` and the table ``inversion``;
with attribute inference ``attribute`` and its table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlwarden.audit.registry import CheckResult, NothingToAssess, register_check
from mlwarden.errors import InputError
from mlwarden.findings import Finding, Location, Risk, Severity
from mlwarden.privacy.results import ClassReconstruction, DefenceComparison
from mlwarden.privacy.settings import InversionSettings, PrivacySettings, PrivacyThresholds
from mlwarden.report.figures import (
    defence_chart,
    inversion_grid,
    percent,
    rate_text,
    roc_curves,
)
from mlwarden.report.model import Figure, Table

if TYPE_CHECKING:
    from mlwarden.attacks.attribute import AttributeResult
    from mlwarden.attacks.inversion import InversionResult
    from mlwarden.attacks.membership import AttackOutcome, MembershipAudit
    from mlwarden.audit.runner import AuditContext, ProgressFn
    from mlwarden.targets.base import Target

MEMBERSHIP_CHECK = "ml04.membership"
INVERSION_CHECK = "ml03.inversion"
LOW_FPR = 0.001
"""The false-positive rate the membership finding is judged at."""
FPR_LEVELS = (0.01, LOW_FPR)
MAX_EXPOSED_IDS = 10
"""Member indices listed in a finding's evidence; the ``exposed`` table holds the rest."""

MEMBERSHIP_REMEDIATION = (
    "Apply the OWASP ML04 measures: train with differential privacy (DP-SGD, "
    "mlwarden.defenses.dp, extra [dp]); regularise to close the gap between training and test "
    "loss (weight decay, dropout, early stopping, data augmentation, more data); reveal less at "
    "the serving boundary: the label only, or the top-k classes with rounded confidences "
    "(mlwarden.defenses.output.harden); remove or deduplicate the most exposed records. "
    "Measure each option with --defence (before / after, with the accuracy it costs)."
)
EPSILON_REMEDIATION = (
    "A differential-privacy guarantee claimed for this model must have an epsilon at least "
    "this large; to bound the leakage, train with DP-SGD at the epsilon you need and re-run "
    "this audit to confirm the measured bound stays below it."
)
INVERSION_REMEDIATION = (
    "Apply the OWASP ML03 measures: reveal less (the label only, or rounded top-k "
    "confidences: mlwarden.defenses.output.harden), keep white-box access (weights, "
    "gradients) private, train with differential privacy (DP-SGD) or stronger regularisation, "
    "and monitor for the many similar queries a black-box inversion needs."
)
ATTRIBUTE_REMEDIATION = (
    "The model's answers reveal the sensitive feature beyond what its distribution does: "
    "drop the feature (and its proxies) from the model's inputs if it is not needed, reveal "
    "less at the serving boundary (label only, rounded confidences), or train with DP-SGD."
)


def privacy_settings(value: Any) -> PrivacySettings:
    """The context's privacy settings, checked to be `PrivacySettings`."""
    if not isinstance(value, PrivacySettings):
        raise InputError(
            "the audit context's privacy settings must be PrivacySettings, got "
            f"{type(value).__name__}"
        )
    return value


# -- ml04.membership ----------------------------------------------------------------------------


@register_check(
    MEMBERSHIP_CHECK,
    title="Membership inference: can an attacker tell who was in the training data "
    "(attacks the model)",
    risks=(Risk.ML04,),
    needs=("target", "privacy"),
)
def membership(context: AuditContext) -> CheckResult:
    """Run the membership audit and, when asked, compare defences; needs target and privacy."""
    settings = privacy_settings(context.privacy)
    if not settings.measures_membership:
        raise NothingToAssess(
            "no members and non-members were given (the training records and records the model "
            "never saw); pass --members and --non-members, or privacy.members / non_members"
        )
    target = context.target
    if not settings.defences:
        result = run_membership(target, settings, progress=context.progress)
        return assess_membership(result, name=target.name, thresholds=settings.thresholds)
    from mlwarden.privacy.defences import compare_defences, remembering

    settings = remembering(settings)
    result = run_membership(target, settings, progress=context.progress)
    comparison = compare_defences(target, settings, baseline=result, progress=context.progress)
    return assess_membership(
        result, name=target.name, thresholds=settings.thresholds, comparison=comparison
    )


def run_membership(
    target: Target, settings: PrivacySettings, *, progress: ProgressFn | None = None
) -> MembershipAudit:
    """`mlwarden.attacks.membership.audit` with the settings' data, attacks and options."""
    from mlwarden.attacks.membership import audit

    assert settings.members is not None and settings.non_members is not None
    return audit(
        target,
        members=settings.members,
        non_members=settings.non_members,
        population=settings.population,
        train_fn=settings.train_fn,
        attacks=settings.attacks,
        n_reference=settings.n_reference,
        reference_mode=settings.reference_mode,
        fpr_levels=FPR_LEVELS,
        confidence=settings.confidence,
        n_exposed=settings.n_exposed,
        cache_dir=settings.cache_dir,
        n_jobs=settings.n_jobs,
        dask=settings.dask,
        seed=settings.seed,
        progress=progress,
    )


def assess_membership(
    result: MembershipAudit,
    *,
    name: str,
    thresholds: PrivacyThresholds | None = None,
    comparison: DefenceComparison | None = None,
) -> CheckResult:
    """Findings, metrics and figures of a finished membership audit (no attack runs here).

    Args:
        name: the model's name, for locations, titles and figure ids.
        thresholds: severities; None uses the defaults.
        comparison: the defences' results, shown before / after; None when none were run.
    """
    if not result.outcomes:
        raise NothingToAssess("the membership audit ran no attack")
    limits = thresholds or PrivacyThresholds()
    findings = [_leak_finding(result, name, limits), _epsilon_finding(result, name, limits)]
    figures: list[Figure] = [
        roc_curves(
            list(result.outcomes.values()),
            name=name,
            n_members=result.n_members,
            n_non_members=result.n_non_members,
        )
    ]
    if comparison is not None:
        figures.append(defence_chart(comparison, name=name))
    return CheckResult(
        findings=findings,
        metrics=_membership_metrics(result, name, comparison),
        figures=figures,
    )


def resolvable_fpr(n_non_members: int, level: float = LOW_FPR) -> float:
    """The FPR a measured TPR at `level` is compared with: `level`, or 1/n when fewer than
    1/level non-members cannot resolve it (one false positive is already 1/n)."""
    return max(level, 1.0 / max(n_non_members, 1))


def _tpr(outcome: AttackOutcome, level: float) -> float:
    return float(outcome.tpr_at_fpr.get(level, math.nan))


def _leak_finding(result: MembershipAudit, name: str, thresholds: PrivacyThresholds) -> Finding:
    best = result.best(fpr=LOW_FPR)
    tpr = _tpr(best, LOW_FPR)
    compared = resolvable_fpr(result.n_non_members)
    ratio = tpr / compared if not math.isnan(tpr) else 0.0
    found = round(tpr * result.n_members) if not math.isnan(tpr) else 0
    detail = (
        f"At a false-positive rate of 0.1% (at most 1 in 1,000 non-members wrongly flagged), "
        f"the strongest attack, {best.title}, identifies {rate_text(tpr)} of the members "
        f"({found} of {result.n_members}): {ratio:.1f}x what a random guess achieves"
    )
    if compared > LOW_FPR:
        detail += (
            f" (with {result.n_non_members} non-members the smallest measurable FPR is "
            f"{rate_text(compared)}, so the attack is compared with that)"
        )
    detail += (
        f". Its AUC is {best.auc:.3f} and its TPR at 1% FPR {rate_text(_tpr(best, 0.01))}. "
        f"The model is right on {_maybe_percent(result.member_accuracy)} of its training "
        f"records and {_maybe_percent(result.non_member_accuracy)} of records it never saw."
    )
    exposed = [r.index for r in best.exposed if r.flagged_at_fpr is not None]
    return Finding(
        risk=Risk.ML04,
        check=MEMBERSHIP_CHECK,
        rule="membership.low-fpr-leak",
        severity=thresholds.membership_severity(ratio),
        location=Location(path=name),
        title=f"Membership inference finds {rate_text(tpr)} of the training records at 0.1% FPR",
        detail=detail,
        evidence={
            "best_attack": best.attack,
            "tpr_at_0.1%_fpr": tpr,
            "tpr_at_1%_fpr": _tpr(best, 0.01),
            "auc": best.auc,
            "advantage": best.advantage,
            "compared_fpr": compared,
            "ratio_to_random": ratio,
            "n_members": result.n_members,
            "n_non_members": result.n_non_members,
            "per_attack": {
                o.attack: {"auc": o.auc, "tpr_at_0.1%_fpr": _tpr(o, LOW_FPR)}
                for o in result.outcomes.values()
            },
            "exposed_member_ids": exposed[:MAX_EXPOSED_IDS],
        },
        remediation=MEMBERSHIP_REMEDIATION,
    )


def _epsilon_finding(result: MembershipAudit, name: str, thresholds: PrivacyThresholds) -> Finding:
    strongest = max(result.outcomes.values(), key=lambda o: (o.epsilon.lower, o.auc))
    bound = strongest.epsilon
    severity = Severity.LOW if bound.lower >= thresholds.epsilon_low else Severity.INFO
    if bound.lower > 0:
        detail = (
            f"The error rates of {strongest.title} prove that this training is not "
            f"(epsilon, {bound.delta:g})-differentially private for any epsilon below "
            f"{bound.lower:.2f} ({bound.confidence:.0%} confidence, Clopper-Pearson); the point "
            f"estimate is {bound.value:.2f}. A lower bound, not the true privacy loss: stronger "
            "attacks can only raise it."
        )
    else:
        detail = (
            "No attack separated members from non-members well enough to prove any privacy "
            f"loss at {bound.confidence:.0%} confidence (the bound is 0); this is not a "
            "privacy guarantee, only the absence of evidence against one."
        )
    return Finding(
        risk=Risk.ML04,
        check=MEMBERSHIP_CHECK,
        rule="membership.epsilon",
        severity=severity,
        location=Location(path=name),
        title=f"Empirical privacy loss: epsilon >= {bound.lower:.2f}",
        detail=detail,
        evidence={
            "attack": strongest.attack,
            "epsilon_lower": bound.lower,
            "epsilon_estimate": bound.value,
            "epsilon_upper": _finite(bound.upper),
            "confidence": bound.confidence,
            "delta": bound.delta,
        },
        remediation=EPSILON_REMEDIATION,
    )


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _maybe_percent(value: float | None) -> str:
    return "n/a" if value is None else percent(value)


def _membership_metrics(
    result: MembershipAudit, name: str, comparison: DefenceComparison | None
) -> dict[str, Any]:
    best = result.best(fpr=LOW_FPR)
    metrics: dict[str, Any] = {
        "model": name,
        "n_members": result.n_members,
        "n_non_members": result.n_non_members,
        "n_population": result.n_population,
        "n_reference": result.n_reference,
        "reference_mode": result.reference_mode,
        "reference_seconds": round(result.reference_seconds, 3),
        "reference_cached": result.reference_cached,
        "member_accuracy": result.member_accuracy,
        "non_member_accuracy": result.non_member_accuracy,
        "best_attack": best.attack,
        "by_attack": {
            o.attack: {
                "title": o.title,
                "auc": o.auc,
                "tpr_at_fpr": {str(level): tpr for level, tpr in sorted(o.tpr_at_fpr.items())},
                "advantage": o.advantage,
                "epsilon": {
                    "lower": o.epsilon.lower,
                    "value": o.epsilon.value,
                    "upper": _finite(o.epsilon.upper),
                    "confidence": o.epsilon.confidence,
                    "delta": o.epsilon.delta,
                },
                "queries": o.queries,
                "seconds": round(o.seconds, 3),
                "notes": list(o.notes),
            }
            for o in result.outcomes.values()
        },
        "attacks": attack_table(result, name).to_data(),
        "exposed": exposed_table(best, name).to_data(),
        "summary": _summary_table(result, name).to_data(),
    }
    if comparison is not None:
        metrics["defences"] = defence_table(comparison, name).to_data()
        metrics["defence_results"] = [
            {
                "defence": row.defence,
                "best_attack": row.best_attack,
                "tpr_at_0.1%_fpr": row.tpr_at_0_1,
                "tpr_at_1%_fpr": row.tpr_at_1,
                "auc": row.auc,
                "epsilon_lower": row.epsilon_lower,
                "member_accuracy": row.member_accuracy,
                "non_member_accuracy": row.non_member_accuracy,
                "utility_cost": row.utility_cost,
                "notes": list(row.notes),
            }
            for row in comparison.all_rows()
        ]
    return metrics


def attack_table(result: MembershipAudit, name: str) -> Table:
    """One row per attack, strongest at 0.1% FPR first: AUC, TPR at 1% and 0.1% FPR,
    advantage and the empirical epsilon (lower bound, and estimate)."""
    ranked = sorted(result.outcomes.values(), key=lambda o: (-_tpr(o, LOW_FPR), -o.auc, o.attack))
    rows = tuple(
        (
            o.title,
            f"{o.auc:.3f}",
            rate_text(_tpr(o, 0.01)),
            rate_text(_tpr(o, LOW_FPR)),
            f"{o.advantage:.3f}",
            f"{o.epsilon.lower:.2f} ({o.epsilon.value:.2f})",
        )
        for o in ranked
    )
    return Table(
        columns=(
            "attack",
            "AUC",
            "TPR @ 1% FPR",
            "TPR @ 0.1% FPR",
            "advantage",
            "epsilon lower bound (estimate)",
        ),
        rows=rows,
        title=f"{name}: membership inference, {result.n_members} members and "
        f"{result.n_non_members} non-members",
    )


def exposed_table(outcome: AttackOutcome, name: str) -> Table:
    """The members `outcome` singles out most surely: index into the members, score, rank and
    the lowest FPR level whose threshold flags them."""
    rows = tuple(
        (
            str(r.index),
            f"{r.score:.4g}",
            str(r.rank),
            "not flagged" if r.flagged_at_fpr is None else f"{rate_text(r.flagged_at_fpr)} FPR",
        )
        for r in outcome.exposed
    )
    return Table(
        columns=("member index", "score", "rank", "flagged at"),
        rows=rows,
        title=f"{name}: most exposed members ({outcome.title})",
    )


def _summary_table(result: MembershipAudit, name: str) -> Table:
    gap = (
        "n/a"
        if result.member_accuracy is None or result.non_member_accuracy is None
        else f"{100 * (result.member_accuracy - result.non_member_accuracy):.1f} points"
    )
    rows: list[tuple[str, str]] = [
        ("members / non-members", f"{result.n_members} / {result.n_non_members}"),
        ("population records", str(result.n_population)),
        ("accuracy on members", _maybe_percent(result.member_accuracy)),
        ("accuracy on non-members", _maybe_percent(result.non_member_accuracy)),
        ("generalisation gap", gap),
        ("attacks", ", ".join(result.outcomes)),
    ]
    if result.n_reference:
        rows.append(
            (
                "reference models",
                f"{result.n_reference} ({result.reference_mode}), "
                f"{result.reference_seconds:.1f} s training, {result.reference_cached} cached",
            )
        )
    rows += [("note", note) for note in result.notes]
    return Table(columns=("measure", "value"), rows=tuple(rows), title=f"{name}: privacy audit")


def defence_table(comparison: DefenceComparison, name: str) -> Table:
    """Before (the model as deployed) and after each defence: the strongest attack's numbers,
    the accuracies and the utility cost (accuracy lost on non-members)."""
    rows = []
    for row in comparison.all_rows():
        cost = (
            "n/a"
            if row.utility_cost is None
            else ("0 (reference)" if row is comparison.baseline else _points(row.utility_cost))
        )
        rows.append(
            (
                row.defence,
                row.best_attack,
                rate_text(row.tpr_at_0_1),
                rate_text(row.tpr_at_1),
                f"{row.auc:.3f}",
                f"{row.epsilon_lower:.2f}",
                _maybe_percent(row.member_accuracy),
                _maybe_percent(row.non_member_accuracy),
                cost,
            )
        )
    return Table(
        columns=(
            "defence",
            "strongest attack",
            "TPR @ 0.1% FPR",
            "TPR @ 1% FPR",
            "AUC",
            "epsilon lower bound",
            "accuracy on members",
            "accuracy on non-members",
            "utility cost",
        ),
        rows=tuple(rows),
        title=f"{name}: membership leakage before and after each defence",
    )


def _points(cost: float) -> str:
    return f"{100 * cost:+.1f} points" if cost else "0"


# -- ml03.inversion ----------------------------------------------------------------------------


@register_check(
    INVERSION_CHECK,
    title="Model inversion: can an attacker rebuild what a class looks like (attacks the model)",
    risks=(Risk.ML03,),
    needs=("target", "privacy"),
)
def inversion(context: AuditContext) -> CheckResult:
    """Reconstruct each class and, when a sensitive feature is named, infer it; needs target and
    privacy."""
    settings = privacy_settings(context.privacy)
    if settings.inversion is None and settings.attribute_feature is None:
        raise NothingToAssess("model inversion and attribute inference are both turned off")
    target = context.target
    if target.output == "labels" and settings.attribute_feature is None:
        raise NothingToAssess(
            "the model returns labels only, so model inversion has no confidence to climb (the "
            "protection a label-only output gives)"
        )
    result: CheckResult = CheckResult()
    if settings.inversion is not None and target.output != "labels":
        inversion_settings = settings.inversion
        reference = inversion_settings.reference or settings.members or settings.population
        inverted = run_inversion(
            target, inversion_settings, reference=reference, progress=context.progress
        )
        result = assess_inversion(
            inverted, target=target, reference=reference, thresholds=settings.thresholds
        )
    if settings.attribute_feature is not None:
        if settings.members is None:
            raise NothingToAssess(
                "attribute inference needs records to attack: give members (the training data)"
            )
        from mlwarden.attacks.attribute import infer_attribute

        x, y = settings.members
        inferred = infer_attribute(
            target,
            x,
            y,
            feature=settings.attribute_feature,
            values=settings.attribute_values,
            seed=settings.seed,
            progress=context.progress,
        )
        extra = assess_attribute(inferred, name=target.name, thresholds=settings.thresholds)
        result.findings += extra.findings
        result.metrics.update(extra.metrics)
    return result


def run_inversion(
    target: Target,
    settings: InversionSettings,
    *,
    reference: tuple[np.ndarray, np.ndarray] | None = None,
    progress: ProgressFn | None = None,
) -> InversionResult:
    """`mlwarden.attacks.inversion.invert` with the settings' classes, method and steps."""
    from mlwarden.attacks.inversion import invert

    options: dict[str, Any] = {}
    if settings.steps is not None:
        options["steps"] = settings.steps
    return invert(
        target,
        None if settings.classes is None else list(settings.classes),
        method=settings.method,
        seed=settings.seed,
        reference=reference,
        progress=progress,
        **options,
    )


def judge_reconstructions(
    result: InversionResult,
    *,
    input_range: tuple[float, float],
    reference: tuple[np.ndarray, np.ndarray] | None,
    min_confidence: float,
) -> list[ClassReconstruction]:
    """Each reconstruction with the verdict `ClassReconstruction` describes: its distances
    (measured by the inversion against its reference data) as root-mean-square fractions of
    the input range, and the reference records' class mean for the picture."""
    width = input_range[1] - input_range[0]
    means: dict[int, np.ndarray] = {}
    if reference is not None:
        x = np.asarray(reference[0], dtype=np.float64)
        y = np.asarray(reference[1]).astype(np.int64)
        means = {int(c): x[y == c].mean(axis=0) for c in np.unique(y)}
    judged = []
    for item in result.reconstructions:
        scale = math.sqrt(max(int(np.asarray(item.image).size), 1)) * width
        distance = _scaled(item.distance_to_class_mean, scale)
        baseline = _scaled(item.baseline_distance, scale)
        confident = float(item.confidence) >= min_confidence and item.predicted == item.label
        closer = item.closer_than_baseline
        mean = means.get(int(item.label))
        judged.append(
            ClassReconstruction(
                label=int(item.label),
                image=np.asarray(item.image),
                confidence=float(item.confidence),
                class_mean=None if mean is None else mean.astype(np.float32),
                distance=distance,
                baseline=baseline,
                reconstructed=confident if closer is None else confident and closer,
            )
        )
    return judged


def _scaled(distance: float | None, scale: float) -> float | None:
    return None if distance is None else float(distance) / scale


def assess_inversion(
    result: InversionResult,
    *,
    target: Target,
    reference: tuple[np.ndarray, np.ndarray] | None,
    thresholds: PrivacyThresholds | None = None,
) -> CheckResult:
    """Findings, metrics and the image grid of a finished inversion (no attack runs here)."""
    if not result.reconstructions:
        raise NothingToAssess("the inversion produced no reconstruction (no class to invert)")
    limits = thresholds or PrivacyThresholds()
    judged = judge_reconstructions(
        result,
        input_range=target.input_range,
        reference=reference,
        min_confidence=limits.inversion_confidence,
    )
    findings = [
        _inversion_finding(item, result, target.name, limits)
        for item in judged
        if item.reconstructed
    ]
    table = inversion_table(judged, target.name)
    metrics: dict[str, Any] = {
        "model": target.name,
        "method": result.method,
        "queries": result.queries,
        "seconds": round(result.seconds, 3),
        "reference_records": 0 if reference is None else len(reference[1]),
        "classes": [
            {
                "label": item.label,
                "confidence": item.confidence,
                "distance_to_class_mean": item.distance,
                "baseline_distance": item.baseline,
                "reconstructed": item.reconstructed,
            }
            for item in judged
        ],
        "reconstructed": [item.label for item in judged if item.reconstructed],
        "inversion": table.to_data(),
    }
    grid = inversion_grid(
        judged, name=target.name, input_range=target.input_range, method=result.method
    )
    return CheckResult(findings=findings, metrics=metrics, figures=[grid] if grid else [])


def inversion_table(judged: Sequence[ClassReconstruction], name: str) -> Table:
    """Per class: confidence, distance to the class mean, the baseline's and the verdict."""
    rows = tuple(
        (
            str(item.label),
            f"{item.confidence:.1%}",
            "not measured" if item.distance is None else f"{item.distance:.3f}",
            "not measured" if item.baseline is None else f"{item.baseline:.3f}",
            "reconstructed" if item.reconstructed else "not reconstructed",
        )
        for item in judged
    )
    return Table(
        columns=(
            "class",
            "model's confidence",
            "distance to class mean",
            "baseline distance",
            "verdict",
        ),
        rows=rows,
        title=f"{name}: model inversion per class",
    )


def _inversion_finding(
    item: ClassReconstruction, result: InversionResult, name: str, limits: PrivacyThresholds
) -> Finding:
    ratio = item.ratio
    if ratio is None:
        severity = Severity.INFO
        closeness = (
            "There were no reference records of this class, so how much the reconstruction "
            "resembles real records was not measured."
        )
    else:
        severity = Severity.MEDIUM if ratio <= limits.inversion_medium else Severity.LOW
        closeness = (
            f"It lies {item.distance:.3f} from the mean of the real records of this class (RMS, "
            f"fraction of the input range), against {item.baseline:.3f} for the mean of all "
            f"records: {ratio:.0%} of the distance a guess without the model leaves."
        )
    return Finding(
        risk=Risk.ML03,
        check=INVERSION_CHECK,
        rule="inversion.class-reconstructed",
        severity=severity,
        location=Location(path=name),
        title=f"Class {item.label} can be reconstructed from the model",
        detail=(
            f"{result.method} built an input the model assigns to class {item.label} with "
            f"{item.confidence:.1%} confidence, from the model alone ({result.queries:,} "
            f"queries). {closeness}"
        ),
        evidence={
            "label": item.label,
            "confidence": item.confidence,
            "distance_to_class_mean": item.distance,
            "baseline_distance": item.baseline,
            "ratio": ratio,
            "method": result.method,
            "queries": result.queries,
        },
        remediation=INVERSION_REMEDIATION,
    )


def assess_attribute(
    result: AttributeResult, *, name: str, thresholds: PrivacyThresholds | None = None
) -> CheckResult:
    """The ``attribute.inferable`` finding and the attribute table of a finished inference."""
    limits = thresholds or PrivacyThresholds()
    advantage = float(result.advantage)
    finding = Finding(
        risk=Risk.ML03,
        check=INVERSION_CHECK,
        rule="attribute.inferable",
        severity=limits.attribute_severity(advantage),
        location=Location(path=name),
        title=f"Feature {result.feature} can be inferred from the model's answers",
        detail=(
            f"Knowing the other features and the model's answer, the attack recovers feature "
            f"{result.feature} of {result.n} records with {percent(result.accuracy)} accuracy, "
            f"against {percent(result.baseline_accuracy)} for guessing from the feature's "
            f"distribution: an advantage of {advantage:+.3f}."
        ),
        evidence={
            "feature": int(result.feature),
            "accuracy": float(result.accuracy),
            "baseline_accuracy": float(result.baseline_accuracy),
            "advantage": advantage,
            "n": int(result.n),
            "values": [float(v) for v in result.values],
        },
        remediation=ATTRIBUTE_REMEDIATION,
    )
    table = Table(
        columns=("feature", "records", "attack accuracy", "baseline accuracy", "advantage"),
        rows=(
            (
                str(result.feature),
                str(result.n),
                percent(result.accuracy),
                percent(result.baseline_accuracy),
                f"{advantage:+.3f}",
            ),
        ),
        title=f"{name}: attribute inference",
    )
    return CheckResult(findings=[finding], metrics={"attribute_table": table.to_data()})
