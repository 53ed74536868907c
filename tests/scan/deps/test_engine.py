"""The dependency audit end to end: files found, advisories matched, findings that guide."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlwarden.findings import Finding, Risk, Severity
from mlwarden.scan.deps.engine import (
    KNOWN_VULNERABILITY_RULE,
    UNPINNED_RULE,
    UNPINNED_VULNERABLE_RULE,
    audit_dependencies,
)
from mlwarden.scan.deps.settings import DepsSettings

from .conftest import OSV_FOLDER, write

REQUIREMENTS = """\
torch==2.5.1
keras==3.8.0
requests==2.31.0
transformers>=4.30
numpy==2.1.0
"""


def offline(db: Path = OSV_FOLDER, **kwargs) -> DepsSettings:  # type: ignore[no-untyped-def]
    return DepsSettings(osv_db=db, online=False, **kwargs)


def known(findings: list[Finding], package: str) -> list[Finding]:
    return [
        f
        for f in findings
        if f.rule == KNOWN_VULNERABILITY_RULE and f.evidence["package"] == package
    ]


def test_pinned_vulnerable_versions_are_findings_with_evidence(
    tmp_path: Path, osv_zip: Path
) -> None:
    write(tmp_path, "requirements.txt", REQUIREMENTS)
    result = audit_dependencies([tmp_path], offline(osv_zip))
    assert result.errors == []
    [torch] = known(result.findings, "torch")  # GHSA and PYSEC alias: one finding
    assert torch.risk is Risk.ML06 and torch.check == "ml06.dependencies"
    assert torch.severity is Severity.CRITICAL
    assert torch.location is not None and torch.location.line == 1
    assert torch.location.path.endswith("requirements.txt")
    evidence = torch.evidence
    assert evidence["advisory"] == "GHSA-53q9-r3pm-6pq6"
    assert set(evidence["aliases"]) == {"CVE-2025-32434", "PYSEC-2025-TEST1"}
    assert evidence["version"] == "2.5.1" and evidence["fixed_versions"] == ["2.6.0"]
    assert evidence["affected_ranges"] == ["< 2.6.0"]
    assert evidence["ml_specific"] is True and evidence["category"] == "unsafe deserialisation"
    assert "ML-specific" in torch.title and "CVE-2025-32434" in torch.title
    assert "Upgrade torch to >= 2.6.0" in torch.remediation
    assert "crafted model file" in torch.detail and "###" not in torch.detail
    assert "numpy" not in {f.evidence.get("package") for f in result.findings}


def test_two_keras_advisories_and_severity_raised_for_code_on_load(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "keras==3.8.0\n")
    findings = audit_dependencies([tmp_path], offline()).findings
    by_id = {f.evidence["advisory"]: f for f in known(findings, "keras")}
    assert set(by_id) == {"GHSA-48g7-3x6r-xfhp", "GHSA-c9rc-mg46-23w3"}
    moderate = by_id["GHSA-c9rc-mg46-23w3"]
    assert moderate.evidence["advisory_severity"] == "medium"
    assert moderate.severity is Severity.HIGH  # safe_mode bypass: code runs on model load
    assert by_id["GHSA-48g7-3x6r-xfhp"].remediation.startswith("Upgrade keras to >= 3.9.0")


def test_fixed_versions_are_clean(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "torch==2.6.0\nkeras==3.11.0\nrequests==2.32.0\n")
    result = audit_dependencies([tmp_path], offline())
    assert result.findings == [] and result.errors == []
    assert result.metrics["pinned"] == 3 and result.metrics["advisories_read"] > 0


def test_non_ml_advisory_is_reported_plainly(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "requests==2.31.0\n")
    [finding] = audit_dependencies([tmp_path], offline()).findings
    assert finding.evidence["ml_specific"] is False
    assert finding.severity is Severity.MEDIUM
    assert finding.title.startswith("Known vulnerability in requests 2.31.0")


def test_range_that_admits_vulnerable_versions(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "transformers>=4.30\nkeras>=3.11\n")
    result = audit_dependencies([tmp_path], offline())
    ranges = [f for f in result.findings if f.rule == UNPINNED_VULNERABLE_RULE]
    assert [f.evidence["package"] for f in ranges] == ["transformers"]
    finding = ranges[0]
    assert finding.severity is Severity.MEDIUM  # a range is less certain than a pin
    assert finding.evidence["suggested_minimum"] == "4.38.0"
    assert finding.evidence["advisories"][0]["admitted_versions"] == ["4.30"]
    assert "pin" in finding.detail.lower() and "transformers>=4.38.0" in finding.remediation
    assert finding.location is not None and finding.location.line == 1
    info = [f for f in result.findings if f.rule == UNPINNED_RULE]
    assert len(info) == 1 and info[0].severity is Severity.INFO


def test_range_severity_is_one_step_below_and_never_above_medium(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "requests<3\n")
    [finding] = [
        f
        for f in audit_dependencies([tmp_path], offline()).findings
        if f.rule == UNPINNED_VULNERABLE_RULE
    ]
    assert finding.severity is Severity.LOW


def test_lock_beside_a_manifest_resolves_its_ranges(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", '[project]\nname = "app"\ndependencies = ["torch>=2.0"]\n')
    write(
        tmp_path,
        "uv.lock",
        'version = 1\n\n[[package]]\nname = "torch"\nversion = "2.5.1"\n'
        'source = { registry = "https://mirror.example/simple" }\n',
    )
    result = audit_dependencies([tmp_path], offline())
    rules = sorted(
        (f.rule, f.location.path.rsplit("/", 1)[-1]) for f in result.findings if f.location
    )
    assert rules == [(KNOWN_VULNERABILITY_RULE, "uv.lock")]
    assert result.metrics["resolved_by_lock"] == 1
    assert {s.format for s in result.scanned} == {"pyproject", "uv.lock"}


def test_ignore_list_is_counted_and_justified_never_silent(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "torch==2.5.1\nrequests==2.31.0\n")
    settings = offline(ignore={"cve-2025-32434": "we only load our own checkpoints"})
    result = audit_dependencies([tmp_path], settings)
    assert known(result.findings, "torch") == []
    assert len(known(result.findings, "requests")) == 1
    assert result.metrics["ignored_count"] == 1
    [ignored] = result.metrics["ignored"]
    assert ignored["advisory"] == "GHSA-53q9-r3pm-6pq6"
    assert ignored["justification"] == "we only load our own checkpoints"
    assert ignored["location"].endswith("requirements.txt:1")


def test_no_advisory_source_is_an_error_naming_the_fix(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "torch==2.5.1\n")
    result = audit_dependencies([tmp_path], DepsSettings(online=False))
    assert result.findings == []
    assert len(result.errors) == 1 and "--osv-db FILE" in result.errors[0].message


def test_nothing_to_look_up_needs_no_source(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "# nothing yet\n-e .\n")
    result = audit_dependencies([tmp_path], DepsSettings(online=False))
    assert result.errors == [] and result.findings == []
    assert [s.format for s in result.scanned] == ["requirements"]


def test_folders_that_are_environments_or_caches_are_not_searched(tmp_path: Path) -> None:
    for folder in (".git", ".venv", "node_modules", "lib/site-packages", "env"):
        write(tmp_path, f"{folder}/requirements.txt", "torch==2.5.1\n")
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr\n", encoding="utf-8")
    write(tmp_path, "app/requirements.txt", "requests==2.31.0\n")
    result = audit_dependencies([tmp_path], offline())
    assert [s.path for s in result.scanned] == [str(tmp_path / "app" / "requirements.txt")]


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    result = audit_dependencies([tmp_path / "nope"], offline())
    assert result.errors[0].message == "no such file or directory"


def test_unreadable_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", "[project\n")
    result = audit_dependencies([tmp_path], offline())
    assert "cannot read pyproject file" in result.errors[0].message


def test_explicit_file_with_any_name_is_read_by_content(tmp_path: Path) -> None:
    path = write(tmp_path, "deps.list", "torch==2.5.1\n")
    result = audit_dependencies([path], offline())
    assert len(known(result.findings, "torch")) == 1


def test_unknown_versions_are_listed_in_an_info_finding(tmp_path: Path) -> None:
    write(
        tmp_path,
        "requirements.txt",
        "mylib @ git+https://github.com/org/mylib\nscipy===1.0-custom\n",
    )
    [info] = audit_dependencies([tmp_path], offline()).findings
    assert info.rule == UNPINNED_RULE
    assert len(info.evidence["unknown_version"]) == 2
    assert "mylib" in info.detail


def test_installed_environment_from_a_site_packages_folder(tmp_path: Path) -> None:
    site = tmp_path / "venv" / "lib" / "site-packages"
    meta = site / "torch-2.5.1.dist-info" / "METADATA"
    meta.parent.mkdir(parents=True)
    meta.write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.5.1\n", encoding="utf-8")
    result = audit_dependencies([], offline(site_packages=[site]))
    [finding] = known(result.findings, "torch")
    assert finding.location is not None and finding.location.path == str(meta)
    assert finding.evidence["input_format"] == "installed"
    assert (
        result.scanned[0].format == "installed" and result.scanned[0].severity is Severity.CRITICAL
    )


def test_running_interpreter_can_be_audited(tmp_path: Path) -> None:
    result = audit_dependencies([], DepsSettings(installed=True, online=False, osv_db=OSV_FOLDER))
    assert result.metrics["pinned"] > 5
    assert result.scanned and result.scanned[0].format == "installed"


def test_metrics_table_lists_the_vulnerabilities(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", REQUIREMENTS)
    metrics = audit_dependencies([tmp_path], offline()).metrics
    table = metrics["vulnerabilities"]
    assert table["columns"][:3] == ["package", "version", "advisory"]
    assert table["rows"][0][:3] == ["torch", "2.5.1", "GHSA-53q9-r3pm-6pq6"]
    assert metrics["ml_specific"] >= 3


def test_a_file_included_and_found_alone_is_reported_once(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "-r requirements-dev.txt\n")
    write(tmp_path, "requirements-dev.txt", "requests==2.31.0\n")
    result = audit_dependencies([tmp_path], offline())
    assert len(known(result.findings, "requests")) == 1
    assert len(result.scanned) == 2


def test_nothing_is_imported_or_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    write(tmp_path, "setup.py", f"open({str(marker)!r}, 'w')\n")
    write(tmp_path, "requirements.txt", "-e .\ntorch==2.5.1\n")
    audit_dependencies([tmp_path], offline())
    assert not marker.exists()


def test_the_package_imports_no_heavy_module() -> None:
    heavy = "('numpy', 'torch', 'urllib.request', 'jinja2')"
    code = (
        "import sys, mlwarden.scan.deps.check;"
        f"print(sorted(m for m in {heavy} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("extra", ["", "\n" * 3])
def test_progress_is_reported(tmp_path: Path, extra: str) -> None:
    write(tmp_path, "requirements.txt", "torch==2.5.1\n" + extra)
    calls: list[tuple[str, int, int]] = []
    audit_dependencies([tmp_path], offline(), progress=lambda *a: calls.append(a))
    assert calls[-1] == ("reading dependency files", 1, 1)


def test_symlinks_are_followed_only_inside_the_folder(tmp_path: Path) -> None:
    outside = write(tmp_path, "outside/requirements.txt", "torch==2.5.1\n")
    project = tmp_path / "project"
    write(project, "real/requirements.txt", "requests==2.31.0\n")
    (project / "requirements.txt").symlink_to(project / "real" / "requirements.txt")
    (project / "requirements-other.txt").symlink_to(outside)
    result = audit_dependencies([project], offline())
    assert {f.evidence.get("package") for f in result.findings} == {"requests"}
    assert len(result.scanned) == 1


def test_an_include_spelled_another_way_is_still_one_file(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "-r sub/../base-requirements.txt\n")
    write(tmp_path, "base-requirements.txt", "requests==2.31.0\n")
    (tmp_path / "sub").mkdir()
    result = audit_dependencies([tmp_path], offline())
    assert len(known(result.findings, "requests")) == 1
