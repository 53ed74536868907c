"""The audit runner runs checks whose needs are met and says why the others did not run."""

from __future__ import annotations

import pickle

import pytest

from mlwarden.audit import AuditContext, CheckResult, register_check, run_audit
from mlwarden.audit.plan import load_plan
from mlwarden.audit.registry import all_checks
from mlwarden.errors import ConfigError, UsageError
from mlwarden.findings import Risk, Severity


def test_scan_check_is_registered():
    [check] = [c for c in all_checks() if c.id == "ml06.model_files"]
    assert check.risks == (Risk.ML06,)
    assert check.needs == frozenset({"paths"})


def test_checks_without_their_needs_are_not_assessed():
    report = run_audit(AuditContext())
    reasons = {n.check: n.reason for n in report.not_assessed}
    assert reasons["ml06.model_files"] == "needs paths"
    scorecard = {row.risk: row for row in report.scorecard()}
    assert scorecard[Risk.ML06].status == "not assessed"
    assert scorecard[Risk.ML01].status == "not assessed"


def test_scorecard_shows_worst_severity_of_assessed_risks(tmp_path):
    (tmp_path / "m.pkl").write_bytes(b"cos\nsystem\n(S'x'\ntR.")
    report = run_audit(AuditContext(paths=[tmp_path]))
    row = next(r for r in report.scorecard() if r.risk is Risk.ML06)
    assert row.status == "critical"
    assert row.counts[Severity.CRITICAL] == 1


def test_a_failing_check_is_an_error_and_others_still_run(tmp_path, monkeypatch):
    from mlwarden.audit import registry

    monkeypatch.setattr(registry, "_CHECKS", dict(registry._CHECKS))

    @register_check("ml99.broken", title="broken", risks=(Risk.ML09,), needs=("paths",))
    def broken(context: AuditContext) -> CheckResult:
        raise RuntimeError("bug")

    (tmp_path / "m.pkl").write_bytes(pickle.dumps(1))
    report = run_audit(AuditContext(paths=[tmp_path]), only=["ml99.broken", "ml06.model_files"])
    assert "ml06.model_files" in report.checks_run
    assert any("check failed" in e.message for e in report.errors)


def test_unknown_check_names_the_known_ones():
    with pytest.raises(UsageError, match=r"ml06\.model_files"):
        run_audit(AuditContext(), only=["nope"])


def test_plan_resolves_paths_against_its_folder(tmp_path):
    (tmp_path / "plan.yaml").write_text("version: 1\nscan:\n  paths: [models]\nfail_on: medium\n")
    plan = load_plan(tmp_path / "plan.yaml")
    assert plan.scan is not None and plan.scan.paths == [tmp_path / "models"]
    assert plan.fail_on is Severity.MEDIUM


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 2\n", "version"),
        ("- a\n", "must be a mapping"),
        ("scan: {paths: []}\n", "scan.paths"),
        ("scan: {paths: [a], colour: red}\n", "colour"),
        ("fail_on: loud\n", "fail_on"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_plans_name_the_problem(tmp_path, text, message):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_plan(path)
