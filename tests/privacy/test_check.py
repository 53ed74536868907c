"""The privacy checks' judgement: severities from known numbers, tables, figures, evidence."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import mlwarden.targets
from mlwarden.audit import AuditContext, NothingToAssess, run_audit
from mlwarden.audit.registry import get_check
from mlwarden.errors import InputError
from mlwarden.findings import Risk, Severity
from mlwarden.privacy.check import (
    INVERSION_CHECK,
    MEMBERSHIP_CHECK,
    assess_attribute,
    assess_inversion,
    assess_membership,
    judge_reconstructions,
    resolvable_fpr,
)
from mlwarden.privacy.defences import defence_row
from mlwarden.privacy.results import DefenceComparison
from mlwarden.privacy.settings import PrivacySettings, PrivacyThresholds
from mlwarden.report.model import Table

from .samples import inversion_result, membership_audit, outcome, reconstruction

SVG = "{http://www.w3.org/2000/svg}"


def by_rule(findings, rule):  # type: ignore[no-untyped-def]
    return [f for f in findings if f.rule == rule]


@pytest.mark.parametrize(
    ("tpr", "severity"),
    [
        (0.05, Severity.HIGH),  # 50x the 0.1% FPR
        (0.01, Severity.HIGH),  # exactly 10x
        (0.004, Severity.MEDIUM),
        (0.002, Severity.LOW),
        (0.0015, Severity.INFO),  # 1.5x is not above 1.5x
        (0.0, Severity.INFO),
    ],
)
def test_low_fpr_leak_severity_follows_tpr_over_fpr(tpr: float, severity: Severity) -> None:
    audit = membership_audit(outcome("lira-offline", tpr_low=tpr), n_non_members=5000)
    [finding] = by_rule(assess_membership(audit, name="m").findings, "membership.low-fpr-leak")
    assert finding.severity is severity
    assert finding.risk is Risk.ML04 and finding.check == MEMBERSHIP_CHECK
    assert finding.evidence["ratio_to_random"] == pytest.approx(tpr / 0.001)


def test_few_non_members_are_compared_with_the_smallest_measurable_fpr() -> None:
    # 200 non-members: one false positive is already 0.5%, so 2% TPR is 4x, not 20x
    audit = membership_audit(outcome("loss", tpr_low=0.02), n_non_members=200)
    [finding] = by_rule(assess_membership(audit, name="m").findings, "membership.low-fpr-leak")
    assert finding.evidence["compared_fpr"] == pytest.approx(0.005)
    assert finding.severity is Severity.MEDIUM
    assert "smallest measurable FPR is 0.50%" in finding.detail
    assert resolvable_fpr(5000) == 0.001


def test_the_strongest_attack_at_low_fpr_is_the_one_reported() -> None:
    audit = membership_audit(
        outcome("loss", tpr_low=0.001, auc=0.9),
        outcome("rmia", tpr_low=0.03, auc=0.7),
        n_non_members=2000,
    )
    result = assess_membership(audit, name="digits mlp")
    [finding] = by_rule(result.findings, "membership.low-fpr-leak")
    assert finding.evidence["best_attack"] == "rmia"
    assert set(finding.evidence["per_attack"]) == {"loss", "rmia"}
    assert finding.evidence["exposed_member_ids"] == [0, 7, 14]
    assert finding.location is not None and finding.location.path == "digits mlp"
    assert finding.remediation


def test_thresholds_are_configurable() -> None:
    audit = membership_audit(outcome("loss", tpr_low=0.004), n_non_members=5000)
    strict = PrivacyThresholds(high=2.0, medium=1.8, low=1.6)
    [finding] = by_rule(
        assess_membership(audit, name="m", thresholds=strict).findings, "membership.low-fpr-leak"
    )
    assert finding.severity is Severity.HIGH


@pytest.mark.parametrize(
    "values", [{"low": 0.5}, {"low": 5.0, "medium": 3.0}, {"high": float("nan")}]
)
def test_thresholds_out_of_order_are_refused(values: dict[str, float]) -> None:
    with pytest.raises(InputError, match="thresholds"):
        PrivacyThresholds(**values)


@pytest.mark.parametrize(("lower", "severity"), [(2.3, Severity.LOW), (0.4, Severity.INFO)])
def test_epsilon_finding_reports_the_largest_lower_bound(lower: float, severity: Severity) -> None:
    audit = membership_audit(
        outcome("loss", tpr_low=0.01, epsilon_lower=0.1),
        outcome("rmia", tpr_low=0.01, epsilon_lower=lower),
    )
    [finding] = by_rule(assess_membership(audit, name="m").findings, "membership.epsilon")
    assert finding.severity is severity
    assert finding.evidence["epsilon_lower"] == lower
    assert finding.evidence["epsilon_upper"] is None  # inf is not JSON
    assert f"{lower:.2f}" in finding.title


def test_a_zero_epsilon_bound_is_called_absence_of_evidence() -> None:
    audit = membership_audit(outcome("loss", tpr_low=0.0, epsilon_lower=0.0))
    [finding] = by_rule(assess_membership(audit, name="m").findings, "membership.epsilon")
    assert finding.severity is Severity.INFO
    assert "not a privacy guarantee" in finding.detail


def test_membership_metrics_hold_the_attack_exposed_and_summary_tables() -> None:
    audit = membership_audit(outcome("loss", tpr_low=0.001), outcome("rmia", tpr_low=0.02))
    metrics = assess_membership(audit, name="m").metrics
    attacks = Table.from_data(metrics["attacks"])
    assert attacks is not None
    assert attacks.columns == (
        "attack",
        "AUC",
        "TPR @ 1% FPR",
        "TPR @ 0.1% FPR",
        "advantage",
        "epsilon lower bound (estimate)",
    )
    assert [row[0] for row in attacks.rows] == ["rmia attack", "loss attack"]  # strongest first
    assert attacks.rows[0][3] == "2.00%"
    exposed = Table.from_data(metrics["exposed"])
    assert exposed is not None and exposed.columns == (
        "member index",
        "score",
        "rank",
        "flagged at",
    )
    assert [row[0] for row in exposed.rows] == ["0", "7", "14"]
    assert Table.from_data(metrics["summary"]) is not None
    assert "defences" not in metrics
    assert metrics["by_attack"]["rmia"]["tpr_at_fpr"]["0.001"] == 0.02
    json.dumps(metrics, allow_nan=False)


def test_roc_figure_draws_one_line_per_attack_and_the_diagonal_on_log_axes() -> None:
    audit = membership_audit(outcome("loss", tpr_low=0.001), outcome("rmia", tpr_low=0.02))
    [figure] = assess_membership(audit, name="Digits MLP").figures
    assert figure.id == "privacy-roc-digits-mlp" and figure.kind == "svg"
    assert figure.risk is Risk.ML04
    root = ET.fromstring(figure.data)
    paths = root.findall(f"{SVG}path")
    assert len(paths) == 3  # two attacks and the random-guess diagonal
    ticks = [t.text for t in root.findall(f"{SVG}text")]
    assert {"0.1%", "1%", "10%", "100%"} <= set(ticks)
    assert "log" in figure.data and "<script" not in figure.data


def test_defence_row_utility_cost_is_the_accuracy_lost_on_non_members() -> None:
    deployed = membership_audit(outcome("loss", tpr_low=0.05), non_member_accuracy=0.9)
    defended = membership_audit(
        outcome("loss", tpr_low=0.001, auc=0.55, epsilon_lower=0.0),
        outcome("rmia", tpr_low=0.002, auc=0.6, epsilon_lower=0.2),
        member_accuracy=0.8,
        non_member_accuracy=0.75,
    )
    row = defence_row("dp:epsilon=1", defended, deployed.non_member_accuracy)
    assert row.utility_cost == pytest.approx(0.15)
    assert row.tpr_at_0_1 == 0.002 and row.best_attack == "rmia"
    assert row.auc == 0.6 and row.epsilon_lower == 0.2
    assert row.attacks == ("loss", "rmia")
    base = defence_row("none", deployed, deployed.non_member_accuracy)
    assert base.utility_cost == 0
    assert (
        defence_row(
            "x", membership_audit(outcome("loss", tpr_low=0.0), non_member_accuracy=None), 0.9
        ).utility_cost
        is None
    )
    comparison = DefenceComparison(baseline=base, rows=(row,))
    result = assess_membership(deployed, name="m", comparison=comparison)
    table = Table.from_data(result.metrics["defences"])
    assert table is not None
    assert [r[0] for r in table.rows] == ["none", "dp:epsilon=1"]
    assert table.rows[1][-1] == "+15.0 points" and table.rows[0][-1] == "0 (reference)"
    assert result.metrics["defence_results"][1]["utility_cost"] == pytest.approx(0.15)
    assert [f.id for f in result.figures] == ["privacy-roc-m", "privacy-defences-m"]
    ET.fromstring(result.figures[1].data)


def test_an_audit_without_attacks_has_nothing_to_assess() -> None:
    with pytest.raises(NothingToAssess):
        assess_membership(membership_audit(), name="m")


# -- inversion ---------------------------------------------------------------------------


@pytest.fixture
def image_target():  # type: ignore[no-untyped-def]
    def uniform(x: np.ndarray) -> np.ndarray:
        return np.full((len(x), 10), 0.1, dtype=np.float32)

    return mlwarden.targets.target(uniform, input_shape=(1, 8, 8), n_classes=10, name="cnn")


def test_confident_reconstructions_closer_than_the_baseline_are_findings(image_target) -> None:  # type: ignore[no-untyped-def]
    result = inversion_result(
        reconstruction(0, confidence=0.99, distance=1.0, baseline=2.0),  # ratio 0.5: medium
        reconstruction(1, confidence=0.95, distance=1.9, baseline=2.0),  # ratio 0.95: low
        reconstruction(2, confidence=0.99, distance=3.0, baseline=2.0),  # farther: none
        reconstruction(3, confidence=0.6, distance=0.5, baseline=2.0),  # unsure: none
    )
    checked = assess_inversion(result, target=image_target, reference=None)
    findings = {f.evidence["label"]: f for f in checked.findings}
    assert set(findings) == {0, 1}
    assert findings[0].severity is Severity.MEDIUM and findings[1].severity is Severity.LOW
    assert all(f.rule == "inversion.class-reconstructed" for f in findings.values())
    assert all(f.risk is Risk.ML03 and f.check == INVERSION_CHECK for f in findings.values())
    assert checked.metrics["reconstructed"] == [0, 1]
    # distances are shown as RMS fractions of the range: L2 / (sqrt(64) * 1)
    assert findings[0].evidence["distance_to_class_mean"] == pytest.approx(1.0 / 8)
    assert findings[0].evidence["ratio"] == pytest.approx(0.5)


def test_without_reference_data_a_confident_reconstruction_is_info(image_target) -> None:  # type: ignore[no-untyped-def]
    result = inversion_result(reconstruction(4, confidence=0.97, distance=None, baseline=None))
    [finding] = assess_inversion(result, target=image_target, reference=None).findings
    assert finding.severity is Severity.INFO
    assert "not measured" in finding.detail


def test_inversion_grid_shows_reconstruction_beside_the_class_mean(image_target) -> None:  # type: ignore[no-untyped-def]
    result = inversion_result(
        reconstruction(0, confidence=0.99, distance=1.0, baseline=2.0),
        reconstruction(5, confidence=0.5, distance=3.0, baseline=2.0),
    )
    x = np.random.default_rng(0).random((20, 1, 8, 8)).astype(np.float32)
    y = np.array([0] * 10 + [1] * 10)
    checked = assess_inversion(result, target=image_target, reference=(x, y))
    [figure] = checked.figures
    assert figure.id == "privacy-inversion-grid-cnn" and figure.kind == "table"
    table = Table.from_json(figure.data)
    assert table is not None and len(table.rows) == 2
    first, second = table.rows
    assert first[0] == "0" and first[-1] == "reconstructed"
    assert hasattr(first[1], "png") and hasattr(first[2], "png")
    assert second[2] == "no reference records"  # class 5 has no reference record
    inversion_table = Table.from_data(checked.metrics["inversion"])
    assert inversion_table is not None and inversion_table.rows[1][-1] == "not reconstructed"


def test_no_grid_for_tabular_inputs() -> None:
    def two(x: np.ndarray) -> np.ndarray:
        return np.full((len(x), 2), 0.5, dtype=np.float32)

    tabular = mlwarden.targets.target(two, input_shape=(5,), n_classes=2)
    result = inversion_result(
        reconstruction(0, confidence=0.99, distance=1, baseline=2, shape=(5,))
    )
    checked = assess_inversion(result, target=tabular, reference=None)
    assert checked.figures == [] and len(checked.findings) == 1


def test_judged_distances_follow_the_inversion_scaled_to_the_range() -> None:
    result = inversion_result(reconstruction(0, confidence=0.99, distance=4.0, baseline=8.0))
    [judged] = judge_reconstructions(
        result, input_range=(0.0, 2.0), reference=None, min_confidence=0.9
    )
    assert judged.distance == pytest.approx(4.0 / (8 * 2)) and judged.ratio == pytest.approx(0.5)
    assert judged.class_mean is None and judged.reconstructed


class _Attribute:
    feature, n, values = 3, 120, (0.0, 1.0)

    def __init__(self, accuracy: float, baseline: float) -> None:
        self.accuracy, self.baseline_accuracy = accuracy, baseline
        self.advantage = accuracy - baseline


@pytest.mark.parametrize(
    ("accuracy", "severity"),
    [(0.9, Severity.MEDIUM), (0.65, Severity.LOW), (0.61, Severity.INFO)],
)
def test_attribute_inference_severity_follows_its_advantage(
    accuracy: float, severity: Severity
) -> None:
    checked = assess_attribute(_Attribute(accuracy, 0.6), name="m")  # type: ignore[arg-type]
    [finding] = checked.findings
    assert finding.rule == "attribute.inferable" and finding.severity is severity
    assert Table.from_data(checked.metrics["attribute_table"]) is not None


# -- the checks in the runner --------------------------------------------------------------


def test_privacy_checks_are_registered_with_their_risks_and_needs() -> None:
    membership, inversion = get_check(MEMBERSHIP_CHECK), get_check(INVERSION_CHECK)
    assert membership.risks == (Risk.ML04,) and inversion.risks == (Risk.ML03,)
    assert membership.needs == inversion.needs == frozenset({"target", "privacy"})


def test_without_privacy_settings_both_checks_are_not_assessed(image_target) -> None:  # type: ignore[no-untyped-def]
    report = run_audit(AuditContext(target=image_target), only=[MEMBERSHIP_CHECK, INVERSION_CHECK])
    reasons = {n.check: n.reason for n in report.not_assessed}
    assert reasons == {MEMBERSHIP_CHECK: "needs privacy", INVERSION_CHECK: "needs privacy"}


def test_membership_without_members_is_not_assessed_with_the_flags_to_give(image_target) -> None:  # type: ignore[no-untyped-def]
    context = AuditContext(target=image_target, privacy=PrivacySettings(inversion=None))
    report = run_audit(context, only=[MEMBERSHIP_CHECK, INVERSION_CHECK])
    reasons = {n.check: n.reason for n in report.not_assessed}
    assert "--members and --non-members" in reasons[MEMBERSHIP_CHECK]
    assert "turned off" in reasons[INVERSION_CHECK]
