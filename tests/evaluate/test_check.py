"""The ml01.evasion audit check: severities by robust accuracy kept, honest warnings, figures."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import mlwarden.evaluate.check
from mlwarden.audit import AuditContext, NothingToAssess, run_audit
from mlwarden.audit.registry import get_check
from mlwarden.errors import InputError
from mlwarden.evaluate.check import (
    CHECK_ID,
    EvasionSettings,
    SeverityThresholds,
    assess,
    default_eps,
    evasion,
)
from mlwarden.evaluate.results import AdversarialExample, MaskingFlag, RobustnessResult
from mlwarden.findings import Risk, Severity
from mlwarden.report import render
from mlwarden.report.model import Report, Table

EPS = [2 / 255, 8 / 255]


FIGURE_BASES = (
    "evasion-robustness-curve",
    "evasion-perturbation-distribution",
    "evasion-gallery",
    "evasion-feature-table",
)


def _base(figure_id: str) -> str:
    """A figure's id without the per-model suffix."""
    return next(b for b in FIGURE_BASES if figure_id.startswith(b))


def robustness_result(
    *,
    clean: float = 0.8,
    robust: tuple[float, float] = (0.6, 0.1),
    shape: tuple[int, ...] = (1, 8, 8),
    flags: tuple[MaskingFlag, ...] = (),
) -> RobustnessResult:
    """Ten samples: two misclassified clean, the rest fooled at 2/255 or 8/255 or never."""
    minimal = np.array([0.0, 0.0, 0.005, 0.005, 0.02, 0.02, 0.02, 0.02, 0.02, np.inf])
    flags_by_eps = np.column_stack([minimal > EPS[0], minimal > EPS[1]])
    x = np.full(shape, 0.5, dtype=np.float32)
    examples = [
        AdversarialExample(
            index=i,
            eps=EPS[0],
            attack="pgd",
            x=x,
            x_adv=x + np.float32(EPS[0]),
            label=1,
            clean_prediction=1,
            clean_confidence=0.9,
            adversarial_prediction=2,
            adversarial_confidence=0.55,
        )
        for i in (2, 3)
    ]
    return RobustnessResult(
        target_name="model",
        norm="linf",
        eps=list(EPS),
        suite="standard",
        attacks=["pgd", "square"],
        n_samples=10,
        clean_accuracy=clean,
        robust_accuracy=dict(zip(EPS, robust, strict=True)),
        per_attack={"pgd": dict(zip(EPS, robust, strict=True)), "square": {EPS[0]: 0.7}},
        robust=flags_by_eps,
        minimal_norms=minimal,
        examples=examples,
        flags=list(flags),
        queries=4321,
        elapsed_s=1.25,
        skipped={"cw": "needs l2"},
        checks_run=["unbounded-not-zero"],
    )


def finding_at(findings: list[Any], eps: float) -> Any:
    [finding] = [f for f in findings if f.evidence.get("eps") == eps]
    return finding


# -- severities and findings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kept", "severity"),
    [
        (0.0, Severity.HIGH),
        (0.2499, Severity.HIGH),
        (0.25, Severity.MEDIUM),
        (0.4999, Severity.MEDIUM),
        (0.5, Severity.LOW),
        (0.8999, Severity.LOW),
        (0.9, Severity.INFO),
        (1.0, Severity.INFO),
    ],
)
def test_severity_follows_the_share_of_clean_accuracy_kept(kept: float, severity: Severity) -> None:
    assert SeverityThresholds().severity(kept) is severity


def test_one_finding_per_eps_with_severity_from_robust_over_clean_accuracy() -> None:
    result = assess(robustness_result(clean=0.8, robust=(0.6, 0.1)))
    low = finding_at(result.findings, EPS[0])
    high = finding_at(result.findings, EPS[1])
    assert low.severity is Severity.LOW
    assert high.severity is Severity.HIGH
    assert (high.risk, high.check, high.rule) == (
        Risk.ML01,
        CHECK_ID,
        "evasion.low-robust-accuracy",
    )
    assert high.title == "Robust accuracy under linf attacks at eps 0.0314 (8/255)"
    assert "10.0% of 10 samples" in high.detail and "keeps 12% of its accuracy" in high.detail
    assert "7 of the 8 samples it gets right can be flipped" in high.detail


def test_finding_evidence_names_budget_accuracies_attacks_and_fooled_samples() -> None:
    finding = finding_at(assess(robustness_result()).findings, EPS[0])
    evidence = dict(finding.evidence)
    assert evidence == {
        "eps": EPS[0],
        "norm": "linf",
        "clean_accuracy": 0.8,
        "robust_accuracy": 0.6,
        "accuracy_kept": pytest.approx(0.75),
        "suite": "standard",
        "attacks": ["pgd", "square"],
        "n_samples": 10,
        "per_attack": {"pgd": 0.6, "square": 0.7},
        "sample_ids": [2, 3],
    }


def test_low_robustness_remediation_names_the_owasp_ml01_measures() -> None:
    remediation = assess(robustness_result()).findings[0].remediation
    for measure in ("adversarial training", "robust models", "input validation"):
        assert measure in remediation


def test_custom_thresholds_change_the_severity() -> None:
    strict = SeverityThresholds(high=0.8, medium=0.9, low=0.95)
    finding = finding_at(assess(robustness_result(), strict).findings, EPS[0])
    assert finding.severity is Severity.HIGH


def test_each_masking_flag_is_a_medium_finding_saying_robustness_is_overstated() -> None:
    flag = MaskingFlag(
        "black-box-beats-white-box", "square left 20% where pgd left 60%", {"gap": 0.4}
    )
    result = assess(robustness_result(flags=(flag,)))
    [masking] = [f for f in result.findings if f.rule == "evasion.gradient-masking"]
    assert masking.severity is Severity.MEDIUM
    assert masking.title == (
        "Robust accuracy is likely overstated: a black-box attack beat the gradient attacks"
    )
    assert masking.detail.startswith("square left 20% where pgd left 60%")
    assert masking.evidence["measured"] == {"gap": 0.4}
    for advice in ("overstated", "black-box", "BPDA", "EOT"):
        assert advice in masking.remediation
    robustness = finding_at(result.findings, EPS[0])
    assert "likely overstated" in robustness.detail


def test_an_unknown_masking_flag_is_still_reported() -> None:
    result = assess(robustness_result(flags=(MaskingFlag("new-check", "odd"),)))
    [masking] = [f for f in result.findings if f.rule == "evasion.gradient-masking"]
    assert masking.title.endswith("new-check") and masking.detail == "odd"


def test_an_interrupted_evaluation_says_the_numbers_are_upper_bounds() -> None:
    interrupted = robustness_result()
    interrupted.interrupted = True
    result = assess(interrupted)
    assert "interrupted" in result.findings[0].detail
    summary = Table.from_data(result.metrics["summary"])
    assert summary is not None and ("interrupted", "yes: robust accuracy is overstated") in (
        summary.rows
    )


def test_no_correct_prediction_means_nothing_to_assess() -> None:
    with pytest.raises(NothingToAssess, match="no sample was classified correctly"):
        assess(robustness_result(clean=0.0, robust=(0.0, 0.0)))


# -- metrics and figures ----------------------------------------------------------------------


def test_metrics_hold_the_numbers_and_a_robustness_table_for_people() -> None:
    metrics = assess(robustness_result()).metrics
    assert metrics["clean_accuracy"] == 0.8
    assert metrics["by_eps"][1] == {
        "eps": EPS[1],
        "robust_accuracy": 0.1,
        "per_attack": {"pgd": 0.1},
    }
    assert metrics["median_minimal_perturbation"] == 0.02
    assert (metrics["queries"], metrics["elapsed_s"]) == (4321, 1.25)
    assert metrics["skipped_attacks"] == {"cw": "needs l2"}
    table = Table.from_data(metrics["robustness"])
    assert table is not None
    assert table.columns == ("eps (linf)", "pgd", "square", "worst case")
    assert table.rows == (
        ("0 (no attack)", "80.0%", "80.0%", "80.0%"),
        ("0.00784 (2/255)", "60.0%", "70.0%", "60.0%"),
        ("0.0314 (8/255)", "10.0%", "—", "10.0%"),
    )


def test_summary_table_gives_the_context_of_the_numbers() -> None:
    summary = Table.from_data(assess(robustness_result()).metrics["summary"])
    assert summary is not None
    rows = dict(summary.rows)
    assert rows["clean accuracy"] == "80.0%"
    assert rows["median smallest fooling perturbation (linf)"] == "0.02"
    assert rows["queries"] == "4,321"
    assert rows["attacks not run"] == "cw: needs l2"
    assert rows["gradient masking signs"] == "none"


def test_image_data_gets_curve_distribution_and_gallery() -> None:
    figures = assess(robustness_result(), input_range=(0.0, 1.0)).figures
    assert [_base(f.id) for f in figures] == [
        "evasion-robustness-curve",
        "evasion-perturbation-distribution",
        "evasion-gallery",
    ]
    assert all(f.risk is Risk.ML01 for f in figures)


def test_tabular_data_gets_a_feature_table_instead_of_a_gallery() -> None:
    figures = assess(robustness_result(shape=(5,))).figures
    assert [_base(f.id) for f in figures][-1] == "evasion-feature-table"
    assert "evasion-gallery" not in [_base(f.id) for f in figures]


def test_renderers_show_the_robustness_table() -> None:
    result = assess(robustness_result())
    report = Report(metrics={CHECK_ID: result.metrics}, findings=result.findings)
    markdown = render(report, "markdown")
    assert "| eps \\(linf\\) | pgd | square | worst case |" in markdown
    assert "| 0\\.0314 \\(8/255\\) | 10\\.0% | — | 10\\.0% |" in markdown
    console = render(report, "console")
    assert "robust accuracy by eps, 10 samples" in console
    assert "0.0314 (8/255)" in console and "{" not in console.split("Measurements")[1]
    page = render(report, "html")
    assert "<td>0.0314 (8/255)</td><td>10.0%</td><td>—</td><td>10.0%</td>" in page


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"norm": "l3"}, "unknown norm"),
        ({"eps": ()}, "eps is empty"),
        ({"eps": (-0.1,)}, "finite number >= 0"),
        ({"eps": (math.nan,)}, "finite number >= 0"),
        ({"eps": (math.inf,)}, "finite number >= 0"),
        ({"suite": "huge"}, "unknown suite"),
        ({"attacks": ()}, "attacks is empty"),
        ({"n_samples": 0}, "n_samples must be >= 1"),
    ],
)
def test_bad_settings_say_what_to_give(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        EvasionSettings(**options)


@pytest.mark.parametrize(
    "values", [(0.5, 0.25, 0.9), (0.1, 0.2, 1.5), (-0.1, 0.5, 0.9), (math.nan, 0.5, 0.9)]
)
def test_thresholds_must_be_ordered_shares(values: tuple[float, float, float]) -> None:
    with pytest.raises(InputError, match="0 <= high <= medium <= low <= 1"):
        SeverityThresholds(*values)


def test_default_budgets_depend_on_norm_and_data_kind() -> None:
    assert default_eps("linf", (1, 8, 8), (0.0, 1.0)) == (1 / 255, 2 / 255, 4 / 255, 8 / 255)
    assert default_eps("linf", (3, 4, 4), (0.0, 255.0)) == pytest.approx((1.0, 2.0, 4.0, 8.0))
    assert default_eps("linf", (30,), (0.0, 1.0)) == (0.01, 0.02, 0.05, 0.1)
    assert default_eps("l2", (1, 8, 8), (0.0, 1.0)) == pytest.approx(
        tuple(8 * s for s in (1 / 255, 2 / 255, 4 / 255, 8 / 255))
    )
    assert default_eps("l1", (30,), (0.0, 1.0)) == pytest.approx((0.3, 0.6, 1.5, 3.0))
    assert default_eps("l0", (1, 8, 8), (0.0, 1.0)) == (1.0, 2.0, 4.0, 8.0)
    assert default_eps("l0", (3,), (0.0, 1.0)) == (1.0, 2.0)


# -- the registered check ---------------------------------------------------------------------


def test_check_is_registered_for_ml01_and_needs_a_target_and_data() -> None:
    check = get_check(CHECK_ID)
    assert check.risks == (Risk.ML01,)
    assert check.needs == frozenset({"target", "data"})


def test_without_target_or_data_the_check_is_not_assessed() -> None:
    report = run_audit(AuditContext(evasion=EvasionSettings()), only=[CHECK_ID])
    assert [(n.check, n.reason) for n in report.not_assessed] == [(CHECK_ID, "needs data, target")]


class FakeTarget:
    input_shape = (1, 8, 8)
    input_range = (0.0, 1.0)


def test_check_passes_its_settings_to_the_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def fake_robustness(target: Any, x: np.ndarray, y: np.ndarray, **options: Any) -> Any:
        calls.append({"target": target, "n": len(x), "labels": list(y), **options})
        return robustness_result()

    monkeypatch.setattr(mlwarden.evaluate.check, "robustness", fake_robustness)
    target = FakeTarget()
    x, y = np.zeros((20, 1, 8, 8), np.float32), np.arange(20)

    def progress(description: str, done: int, total: int) -> None:
        return None

    settings = EvasionSettings(attacks=("pgd",), n_samples=5, seed=3, sanity_checks=False)
    context = AuditContext(target=target, data=(x, y), evasion=settings, progress=progress)
    result = evasion(context)
    [call] = calls
    assert call["target"] is target and call["n"] == 5 and call["labels"] == [0, 1, 2, 3, 4]
    assert call["eps"] == [1 / 255, 2 / 255, 4 / 255, 8 / 255]
    assert (call["norm"], call["suite"], call["seed"]) == ("linf", "standard", 3)
    assert call["attacks"] == ["pgd"] and call["progress"] is progress
    assert call["sanity_checks"] is False
    assert len(result.findings) == 2

    evasion(AuditContext(target=target, data=(x, y)))
    assert "attacks" not in calls[-1] and calls[-1]["n"] == 20
    assert calls[-1]["sanity_checks"] is True and calls[-1]["feature_names"] == ()


def test_check_without_a_correct_prediction_is_not_assessed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        mlwarden.evaluate.check,
        "robustness",
        lambda *a, **k: robustness_result(clean=0.0, robust=(0.0, 0.0)),
    )
    data = (np.zeros((3, 1, 8, 8), np.float32), np.zeros(3, np.int64))
    report = run_audit(AuditContext(target=FakeTarget(), data=data), only=[CHECK_ID])
    [entry] = report.not_assessed
    assert "classifies none of the 10 samples correctly" in entry.reason


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ((np.zeros((4, 2)), np.zeros(3)), "one label per input"),
        ("not a pair", "pair"),
        ((np.float32(1.0), np.zeros(1)), "one label per input"),
    ],
)
def test_malformed_audit_data_is_an_input_error(data: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        evasion(AuditContext(target=FakeTarget(), data=data))


def test_context_settings_must_be_evasion_settings() -> None:
    data = (np.zeros((2, 1, 8, 8)), np.zeros(2))
    with pytest.raises(InputError, match="EvasionSettings"):
        evasion(AuditContext(target=FakeTarget(), data=data, evasion={"eps": [0.1]}))


# -- end to end on trained models -------------------------------------------------------------


@pytest.mark.slow
def test_audit_of_the_digits_cnn_reports_robustness_with_a_gallery(
    digits_model: Any, digits_target: Any
) -> None:
    settings = EvasionSettings(eps=(0.05, 0.3), attacks=("pgd",), n_samples=48, sanity_checks=False)
    data = (digits_model.x_test, digits_model.y_test)
    report = run_audit(
        AuditContext(target=digits_target, data=data, evasion=settings), only=[CHECK_ID]
    )
    assert report.checks_run == [CHECK_ID], report.errors
    by_eps = {f.evidence["eps"]: f for f in report.findings if "eps" in f.evidence}
    assert set(by_eps) == {0.05, 0.3}
    assert by_eps[0.3].severity >= by_eps[0.05].severity
    assert by_eps[0.3].severity is Severity.HIGH
    metrics = report.metrics[CHECK_ID]
    assert metrics["clean_accuracy"] > 0.9 and metrics["n_samples"] == 48
    assert {_base(f.id) for f in report.figures} >= {"evasion-robustness-curve", "evasion-gallery"}
    page = render(report, "html")
    assert page.count("<script") == 1 and 'src="data:image/png;base64,' in page


@pytest.mark.slow
def test_audit_of_the_tabular_mlp_reports_which_features_moved(
    cancer_model: Any, cancer_target: Any
) -> None:
    settings = EvasionSettings(
        eps=(0.1,),
        attacks=("pgd",),
        n_samples=64,
        sanity_checks=False,
        feature_names=tuple(cancer_model.feature_names),
    )
    data = (cancer_model.x_test, cancer_model.y_test)
    report = run_audit(
        AuditContext(target=cancer_target, data=data, evasion=settings), only=[CHECK_ID]
    )
    assert report.checks_run == [CHECK_ID], report.errors
    [table_figure] = [f for f in report.figures if _base(f.id) == "evasion-feature-table"]
    table = Table.from_json(table_figure.data)
    assert table is not None and table.rows
    assert table.rows[0][0] in cancer_model.feature_names
