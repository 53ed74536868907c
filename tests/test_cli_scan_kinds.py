"""`mlwarden scan` over model files, code and dependency files: which checks run, and exit codes.

A plain `mlwarden scan PATH` runs all three; `--models`, `--code`, `--deps` choose. The dependency
audit never reports clean without an advisory source: asked for explicitly it is an error (exit
2), in a plain scan it is "not assessed" so that a scan without network still gates on the rest.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from mlwarden.cli import main

OSV_FIXTURES = Path(__file__).parent / "scan" / "deps" / "fixtures" / "osv"
CLOSED_PORT_URL = "http://127.0.0.1:9"
"""The discard port on loopback: nothing listens, so a connection is refused at once."""


def run(capsys: pytest.CaptureFixture[str], *args: str | os.PathLike[str]) -> tuple[int, str, str]:
    code = main([os.fspath(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small ML project: a malicious-looking pickle, unsafe code, a vulnerable pin."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "model.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    (root / "train.py").write_text(
        "import torch\n\nstate = torch.load('model.pt', weights_only=False)\n"
    )
    (root / "requirements.txt").write_text("torch==2.5.1\nnumpy>=1.24\n")
    return root


@pytest.fixture
def osv_db(tmp_path: Path) -> Path:
    folder = tmp_path / "osv"
    shutil.copytree(OSV_FIXTURES, folder)
    return folder


@pytest.fixture(autouse=True)
def no_real_osv_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLWARDEN_OSV_URL", CLOSED_PORT_URL)


def checks(report: dict[str, object]) -> tuple[set[str], dict[str, str]]:
    ran = set(report["checks_run"])  # type: ignore[arg-type]
    not_assessed = {
        entry["check"]: entry["reason"]
        for entry in report["not_assessed"]  # type: ignore[attr-defined]
    }
    return ran, not_assessed


def test_plain_scan_runs_models_and_code_and_marks_deps_not_assessed_without_network(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "scan", project, "-f", "json")
    report = json.loads(out)
    ran, not_assessed = checks(report)
    assert {"ml06.model_files", "ml06.code"} <= ran
    assert "ml06.dependencies" in not_assessed
    assert "--osv-db" in not_assessed["ml06.dependencies"]
    assert "code.torch-load" in {f["rule"] for f in report["findings"]}
    assert code == 1  # weights_only=False is high
    assert report["errors"] == []


def test_plain_scan_with_osv_db_reports_vulnerable_pin(
    project: Path, osv_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "scan", project, "--osv-db", osv_db, "-f", "json")
    report = json.loads(out)
    ran, _ = checks(report)
    assert {"ml06.model_files", "ml06.code", "ml06.dependencies"} <= ran
    vulns = [f for f in report["findings"] if f["rule"] == "deps.known-vulnerability"]
    assert any(f["evidence"]["advisory"] == "GHSA-53q9-r3pm-6pq6" for f in vulns)
    assert code == 1


def test_code_flag_runs_only_the_code_audit(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "scan", "--code", project, "-f", "json")
    report = json.loads(out)
    assert set(report["checks_run"]) == {"ml06.code"}
    assert {f["rule"] for f in report["findings"]} == {"code.torch-load"}
    assert code == 1


def test_models_flag_keeps_the_scanner_alone(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "scan", "--models", project, "-f", "json")
    report = json.loads(out)
    assert set(report["checks_run"]) == {"ml06.model_files"}
    assert not [f for f in report["findings"] if f["check"] != "ml06.model_files"]
    assert code == 0


def test_deps_flag_without_advisory_source_is_an_error_not_clean(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "scan", "--deps", project, "-f", "json", "--fail-on", "never")
    report = json.loads(out)
    assert code == 2
    assert report["verdict"]["status"] == "incomplete"
    assert any("--osv-db" in e["message"] for e in report["errors"])


def test_deps_offline_with_database(
    project: Path, osv_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "scan", "--deps", "--offline", "--osv-db", osv_db, project, "-f", "json"
    )
    report = json.loads(out)
    assert set(report["checks_run"]) == {"ml06.dependencies"}
    assert "deps.known-vulnerability" in {f["rule"] for f in report["findings"]}
    assert code == 1


def test_ignore_vuln_accepts_an_advisory_and_keeps_it_listed(
    project: Path, osv_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["scan", "--deps", "--osv-db", osv_db, project, "-f", "json"]
    before = json.loads(run(capsys, *args)[1])
    ids = {
        f["evidence"]["advisory"]
        for f in before["findings"]
        if f["rule"] == "deps.known-vulnerability"
    }
    assert ids
    ignored = [a for i in sorted(ids) for a in ("--ignore-vuln", i)]
    _, out, _ = run(capsys, *args, *ignored)
    after = json.loads(out)
    assert not [f for f in after["findings"] if f["rule"] == "deps.known-vulnerability"]
    assert str(sorted(ids)[0]) in json.dumps(after["metrics"]["ml06.dependencies"])


def test_installed_environment_needs_no_path(
    osv_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "scan", "--deps", "--installed", "--osv-db", osv_db, "-f", "json")
    report = json.loads(out)
    assert set(report["checks_run"]) == {"ml06.dependencies"}
    assert code in (0, 1)  # whatever this environment holds; it was audited, not skipped


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scan"], "at least one PATH"),
        (["scan", "--code", "--osv-db", "{db}", "{project}"], "need --deps"),
        (["scan", "--deps", "--osv-db", "{missing}", "{project}"], "no such file"),
    ],
)
def test_scan_kind_usage_errors(
    project: Path,
    osv_db: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    values = {"project": str(project), "db": str(osv_db), "missing": str(tmp_path / "nope")}
    code, _, err = run(capsys, *(a.format(**values) for a in args))
    assert code == 4
    assert message in err


def test_missing_path_is_reported_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import mlwarden

    report = mlwarden.scan([tmp_path / "absent"])
    assert len(report.errors) == len(set(report.errors)) >= 1


def test_unrequested_dependency_audit_gets_a_short_osv_timeout(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlwarden
    from mlwarden.scan import api

    seen = []
    real = api.run_audit

    def capture(context, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(context.deps)
        return real(context, **kwargs)

    monkeypatch.setattr(api, "run_audit", capture)
    mlwarden.scan(project)
    mlwarden.scan(project, kinds=["deps"])
    assert seen[0].timeout_s == api.UNREQUESTED_OSV_TIMEOUT_S and not seen[0].required
    assert seen[1].timeout_s == 10.0 and seen[1].required
