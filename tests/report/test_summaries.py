"""The summaries the report model computes once for every renderer (verdict, ids, grouping)."""

from __future__ import annotations

import dataclasses

from report_samples import critical_pickle_call, info_zip_flags, medium_auto_map

from mlwarden.findings import Location, Risk, Severity
from mlwarden.report.model import ErrorEntry, Report, finding_id


def test_verdict_fails_on_findings_at_or_above_the_gate(sample_report: Report) -> None:
    verdict = sample_report.verdict()
    assert verdict.status == "fail"
    assert verdict.exit_code == 1
    assert verdict.failing == 1
    assert verdict.fail_on is Severity.HIGH


def test_verdict_follows_the_gate_the_report_carries(sample_report: Report) -> None:
    sample_report.fail_on = Severity.MEDIUM
    assert sample_report.verdict().failing == 2
    sample_report.fail_on = None
    assert sample_report.verdict().status == "incomplete"


def test_verdict_is_incomplete_when_only_errors_remain() -> None:
    report = Report(
        findings=[info_zip_flags()],
        errors=[ErrorEntry("a.zip", "bad")],
        checks_run=["ml06.model_files"],
    )
    assert report.verdict().status == "incomplete"


def test_verdict_passes_a_clean_assessed_report() -> None:
    report = Report(findings=[info_zip_flags()], checks_run=["ml06.model_files"])
    assert report.verdict().status == "pass"
    assert report.verdict().exit_code == 0


def test_verdict_of_an_empty_report_is_nothing_assessed() -> None:
    assert Report().verdict().status == "nothing assessed"


def test_finding_id_is_stable_and_depends_on_rule_location_and_title() -> None:
    finding = critical_pickle_call()
    assert finding_id(finding) == finding_id(critical_pickle_call())
    elsewhere = Location("models/model.pt", "archive/data.pkl", 58)
    moved = dataclasses.replace(finding, location=elsewhere)
    retitled = dataclasses.replace(finding, title="Another title")
    assert len({finding_id(finding), finding_id(moved), finding_id(retitled)}) == 3
    assert len(finding_id(finding)) == 16


def test_finding_id_ignores_evidence_and_detail_wording() -> None:
    finding = critical_pickle_call()
    reworded = dataclasses.replace(finding, detail="other words", evidence={})
    assert finding_id(reworded) == finding_id(finding)


def test_findings_are_grouped_by_risk_then_severity_worst_first() -> None:
    other_risk = dataclasses.replace(medium_auto_map(), risk=Risk.ML10)
    report = Report(findings=[info_zip_flags(), other_risk, critical_pickle_call()])
    groups = report.findings_by_risk()
    assert [risk for risk, _ in groups] == [Risk.ML06, Risk.ML10]
    assert [severity for severity, _ in groups[0][1]] == [Severity.CRITICAL, Severity.INFO]


def test_inventory_is_sorted_file_before_members(sample_report: Report) -> None:
    sample_report.scanned.reverse()
    ordered = [(s.path, s.member) for s in sample_report.sorted_scanned()]
    assert ordered[:2] == [("models/README.md", None), ("models/config.json", None)]
    assert ordered.index(("models/model.pt", None)) + 1 == ordered.index(
        ("models/model.pt", "archive/data.pkl")
    )


def test_files_scanned_counts_files_not_members(sample_report: Report) -> None:
    assert sample_report.files_scanned() == 4
    assert len(sample_report.scanned) == 7
