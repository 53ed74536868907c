"""The ``ml06.code`` check inside the audit runner."""

from __future__ import annotations

from mlwarden.audit.registry import BUILTIN_CHECKS, get_check
from mlwarden.audit.runner import AuditContext, run_audit
from mlwarden.findings import Risk, Severity
from mlwarden.report.model import ExitCode
from tests.scan.code._helpers import write_notebook


def test_the_check_is_a_builtin_covering_ml06_and_needing_paths():
    assert BUILTIN_CHECKS["ml06.code"] == "mlwarden.scan.code.check"
    check = get_check("ml06.code")
    assert check.risks == (Risk.ML06,) and check.needs == frozenset({"paths"})


def test_findings_metrics_and_inventory_reach_the_report(tmp_path):
    (tmp_path / "train.py").write_text("import torch\ntorch.load('m.pt', weights_only=False)\n")
    write_notebook(tmp_path / "explore.ipynb", [("code", "import yaml\nyaml.load(s)\n")])
    report = run_audit(AuditContext(paths=[tmp_path]), only=["ml06.code"])
    assert report.checks_run == ["ml06.code"]
    assert {(f.rule, f.severity) for f in report.findings} == {
        ("code.torch-load", Severity.HIGH),
        ("code.yaml-unsafe-load", Severity.MEDIUM),
    }
    assert all(f.check == "ml06.code" for f in report.findings)
    assert sorted(s.format for s in report.scanned) == ["notebook", "python"]
    assert report.metrics["ml06.code"]["files"] == 2
    assert report.metrics["ml06.code"]["notebooks"] == 1
    assert report.exit_code(Severity.HIGH) == ExitCode.FINDINGS
    assert report.exit_code(Severity.CRITICAL) == ExitCode.CLEAN


def test_clean_code_passes(tmp_path):
    (tmp_path / "ok.py").write_text("import json\njson.loads('{}')\n")
    report = run_audit(AuditContext(paths=[tmp_path]), only=["ml06.code"])
    assert report.findings == [] and report.exit_code(Severity.LOW) == ExitCode.CLEAN
    assert [row.status for row in report.scorecard() if row.risk is Risk.ML06] == ["pass"]


def test_no_python_file_means_not_assessed(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\x00" * 16)
    report = run_audit(AuditContext(paths=[tmp_path]), only=["ml06.code"])
    assert report.checks_run == []
    [not_assessed] = report.not_assessed
    assert not_assessed.check == "ml06.code"
    assert "no Python file or notebook" in not_assessed.reason
    assert report.exit_code(Severity.HIGH) == ExitCode.NOTHING_SCANNED


def test_errors_make_the_verdict_incomplete(tmp_path):
    report = run_audit(AuditContext(paths=[tmp_path / "absent.py"]), only=["ml06.code"])
    assert report.errors and report.exit_code(Severity.HIGH) == ExitCode.ERROR


def test_the_check_needs_paths():
    report = run_audit(AuditContext(), only=["ml06.code"])
    assert report.not_assessed[0].reason == "needs paths"
