"""The ``ml06.dependencies`` audit check through the audit runner, as the CLI runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlwarden.audit.registry import get_check
from mlwarden.audit.runner import AuditContext, run_audit
from mlwarden.errors import UsageError
from mlwarden.findings import Risk, Severity
from mlwarden.report.interface import get_renderer
from mlwarden.report.model import ExitCode
from mlwarden.scan.deps.settings import OSV_URL_ENV, DepsSettings

from .conftest import OSV_FOLDER, FakeOsv, write

ONLY = ["ml06.dependencies"]


def test_check_is_registered_for_ml06_with_no_needs() -> None:
    check = get_check("ml06.dependencies")
    assert check.risks == (Risk.ML06,) and check.needs == frozenset()


def test_vulnerable_pin_fails_the_gate(tmp_path: Path, osv_zip: Path) -> None:
    write(tmp_path, "requirements.txt", "torch==2.5.1\n")
    context = AuditContext(paths=[tmp_path], deps=DepsSettings(osv_db=osv_zip))
    report = run_audit(context, only=ONLY)
    assert report.checks_run == ["ml06.dependencies"]
    assert report.max_severity() is Severity.CRITICAL
    assert report.exit_code(Severity.HIGH) == ExitCode.FINDINGS
    assert report.metrics["ml06.dependencies"]["known_vulnerabilities"] == 1
    assert [s.format for s in report.scanned] == ["requirements"]


def test_clean_dependencies_pass(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "torch==2.6.0\n")
    report = run_audit(
        AuditContext(paths=[tmp_path], deps=DepsSettings(osv_db=OSV_FOLDER)), only=ONLY
    )
    assert report.findings == [] and report.exit_code(Severity.HIGH) == ExitCode.CLEAN


def test_offline_without_database_exits_2_never_clean(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "torch==2.5.1\n")
    report = run_audit(AuditContext(paths=[tmp_path], deps=DepsSettings(online=False)), only=ONLY)
    assert report.exit_code(Severity.HIGH) == ExitCode.ERROR
    assert "--osv-db FILE" in report.errors[0].message


def test_unreachable_api_exits_2_never_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    write(tmp_path, "requirements.txt", "torch==2.5.1\n")
    with socket.socket() as sock:  # bound, never listening: refused, and no one else's port
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv(OSV_URL_ENV, f"http://127.0.0.1:{sock.getsockname()[1]}")
        context = AuditContext(paths=[tmp_path], deps=DepsSettings(timeout_s=2))
        report = run_audit(context, only=ONLY)
    assert report.findings == []
    assert report.exit_code(Severity.HIGH) == ExitCode.ERROR
    assert "incomplete" in report.errors[0].message


def test_online_mode_through_the_environment_variable(
    tmp_path: Path, fake_osv: FakeOsv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(OSV_URL_ENV, fake_osv.url)
    fake_osv.answers[("torch", "2.5.1")] = ["GHSA-53q9-r3pm-6pq6"]
    fake_osv.answers[("keras", None)] = ["GHSA-48g7-3x6r-xfhp", "GHSA-c9rc-mg46-23w3"]
    write(tmp_path, "requirements.txt", "torch==2.5.1\nkeras>=3.0\n")
    report = run_audit(AuditContext(paths=[tmp_path]), only=ONLY)  # deps None: the defaults
    rules = sorted(f.rule for f in report.findings)
    assert rules == ["deps.known-vulnerability", "deps.unpinned", "deps.unpinned-vulnerable-range"]
    assert report.metrics["ml06.dependencies"]["advisory_source"] == f"OSV API {fake_osv.url}"


def test_no_dependency_file_is_nothing_to_assess(tmp_path: Path) -> None:
    write(tmp_path, "model.txt", "not a dependency file\n")
    report = run_audit(AuditContext(paths=[tmp_path], deps=DepsSettings(online=False)), only=ONLY)
    assert report.checks_run == []
    assert "no dependency file found" in report.not_assessed[0].reason
    assert report.exit_code(Severity.HIGH) == ExitCode.NOTHING_SCANNED


def test_no_paths_and_no_environment_is_nothing_to_assess() -> None:
    report = run_audit(AuditContext(), only=ONLY)
    assert report.not_assessed[0].check == "ml06.dependencies"


def test_installed_environment_without_paths(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    meta = site / "keras-3.8.0.dist-info" / "METADATA"
    meta.parent.mkdir(parents=True)
    meta.write_text("Metadata-Version: 2.1\nName: keras\nVersion: 3.8.0\n", encoding="utf-8")
    settings = DepsSettings(osv_db=OSV_FOLDER, site_packages=[site])
    report = run_audit(AuditContext(deps=settings), only=ONLY)
    assert {f.evidence["advisory"] for f in report.findings} == {
        "GHSA-48g7-3x6r-xfhp",
        "GHSA-c9rc-mg46-23w3",
    }


def test_wrong_settings_type_is_a_usage_error(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "torch==2.5.1\n")
    with pytest.raises(UsageError, match="DepsSettings"):
        run_audit(AuditContext(paths=[tmp_path], deps={"online": False}), only=ONLY)


def test_missing_osv_database_is_a_usage_error(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "torch==2.5.1\n")
    settings = DepsSettings(osv_db=tmp_path / "PyPI-all.zip")
    with pytest.raises(UsageError, match="does not exist"):
        run_audit(AuditContext(paths=[tmp_path], deps=settings), only=ONLY)


@pytest.mark.parametrize("fmt", ["json", "sarif", "console", "markdown", "html"])
def test_every_renderer_renders_the_findings(tmp_path: Path, fmt: str) -> None:
    write(tmp_path, "requirements.txt", "torch==2.5.1\ntransformers>=4.0\n")
    report = run_audit(
        AuditContext(paths=[tmp_path], deps=DepsSettings(osv_db=OSV_FOLDER)), only=ONLY
    )
    text = get_renderer(fmt).render(report)
    assert "GHSA-53q9-r3pm-6pq6" in text
    if fmt == "json":
        data = json.loads(text)
        assert data["metrics"]["ml06.dependencies"]["ignored"] == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": float("nan")}, "timeout_s"),
        ({"osv_url": "ftp://mirror.example"}, "http"),
        ({"osv_url": "not a url"}, "http"),
        ({"ignore": {"": "why"}}, "non-empty"),
        ({"ignore": {"GHSA-x": 3}}, "text"),
    ],
)
def test_invalid_settings_are_usage_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        DepsSettings(**kwargs)


def test_settings_default_to_the_public_api_and_accept_strings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(OSV_URL_ENV, raising=False)
    settings = DepsSettings(osv_db="db.zip", site_packages=["a"])  # type: ignore[arg-type,list-item]
    assert settings.osv_url == "https://api.osv.dev"
    assert settings.osv_db == Path("db.zip") and settings.site_packages == [Path("a")]
