"""The demo's privacy part: its defences follow what is installed, its summary what was measured."""

from __future__ import annotations

import importlib.util

import pytest

pytest.importorskip("torch")

from mlwarden.audit.registry import get_check
from mlwarden.audit.runner import record_result
from mlwarden.demo import privacy
from mlwarden.privacy.check import assess_membership
from mlwarden.privacy.defences import defence_row
from mlwarden.privacy.results import DefenceComparison
from mlwarden.report.model import Report

from .samples import membership_audit, outcome


def test_dp_is_left_out_without_opacus(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "opacus" else real(name)
    )
    assert privacy.demo_defences() == ("top-k:1", "round:1", "label-only")


def test_summary_names_the_strongest_attack_and_each_defence() -> None:
    deployed = membership_audit(
        outcome("lira-online", tpr_low=0.07, auc=0.67, epsilon_lower=1.75),
        non_member_accuracy=0.935,
    )
    dp = membership_audit(outcome("rmia", tpr_low=0.01), non_member_accuracy=0.67)
    comparison = DefenceComparison(
        baseline=defence_row("none", deployed, 0.935),
        rows=(defence_row("label-only", deployed, 0.935), defence_row("dp:epsilon=8", dp, 0.935)),
    )
    report = Report()
    record_result(
        report,
        get_check("ml04.membership"),
        assess_membership(deployed, name="digits-mlp.pt", comparison=comparison),
    )
    first, second = privacy.summary_lines(report)
    assert first == (
        "Audited digits-mlp.pt for membership inference (OWASP ML04): lira-online finds 7.0% "
        "of its training records with no false positive among 200 non-members (AUC 0.67), "
        "empirical epsilon >= 1.75."
    )
    assert "label-only 7.0% (no accuracy lost)" in second
    assert "dp:epsilon=8 1.0% (26.5 points of accuracy lost)" in second
    assert privacy.summary_lines(Report()) == []


def test_summary_says_0_1_percent_fpr_only_when_it_can_be_measured() -> None:
    deployed = membership_audit(
        outcome("rmia", tpr_low=0.03, auc=0.7, epsilon_lower=0.5), n_non_members=2000
    )
    report = Report()
    record_result(report, get_check("ml04.membership"), assess_membership(deployed, name="mlp.pt"))
    assert (
        "finds 3.0% of its training records at 0.1% FPR (AUC 0.70)"
        in (privacy.summary_lines(report)[0])
    )
