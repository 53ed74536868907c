"""The `mlwarden` command line: exit codes, report files, error lines, audit, policy and demo.

Malicious payloads here would only create a marker file in the test's tmp_path if they ever ran;
every test that scans one asserts that the marker never appears.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mlwarden import __version__
from mlwarden import cli as cli_module
from mlwarden.cli import _colour_allowed, _interactive_stderr, main
from mlwarden.findings import Severity
from mlwarden.scan.limits import Limits
from mlwarden.scan.policy import Policy, builtin_allowlist
from mlwarden.scan.policy_template import LIMIT_HELP, starter_policy_text

MLWARDEN_SCRIPT = Path(sys.executable).with_name("mlwarden")


def run(capsys: pytest.CaptureFixture[str], *args: str | os.PathLike[str]) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    code = main([os.fspath(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def exec_pickle(marker: Path) -> bytes:
    """A protocol-0 pickle that would call builtins.exec to create `marker`."""
    code = f"open({str(marker)!r}, 'w').close()"
    return b"cbuiltins\nexec\n(V" + code.encode() + b"\ntR."


def unknown_call_pickle() -> bytes:
    """A pickle that calls a callable no allowlist knows (high, not critical)."""
    return b"cmypkg.models\nbuild_model\n(tR."


@pytest.fixture(autouse=True)
def builtin_checks_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide checks other tests registered, so `mlwarden audit` runs what a user's would."""
    from mlwarden.audit import registry

    registry.all_checks()
    builtin = {
        check_id: check
        for check_id, check in registry._CHECKS.items()
        if check.run.__module__ in registry.BUILTIN_CHECK_MODULES
    }
    monkeypatch.setattr(registry, "_CHECKS", builtin)


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "payload-ran"
    yield path
    assert not path.exists(), "a scanned payload was executed"


@pytest.fixture
def malicious(tmp_path: Path, marker: Path) -> Path:
    path = tmp_path / "model.pkl"
    path.write_bytes(exec_pickle(marker))
    return path


@pytest.fixture
def benign(tmp_path: Path) -> Path:
    path = tmp_path / "weights.npy"
    np.save(path, np.arange(12, dtype=np.float32).reshape(3, 4))
    return path


@pytest.fixture
def unknown_call(tmp_path: Path) -> Path:
    path = tmp_path / "custom.pkl"
    path.write_bytes(unknown_call_pickle())
    return path


# --- exit codes -------------------------------------------------------------------------------


def test_scan_of_benign_file_exits_0(capsys: pytest.CaptureFixture[str], benign: Path) -> None:
    code, out, err = run(capsys, "scan", benign)
    assert code == 0, out + err
    assert err == ""


def test_scan_of_malicious_pickle_exits_1_and_shows_the_call(
    capsys: pytest.CaptureFixture[str], malicious: Path
) -> None:
    code, out, _ = run(capsys, "scan", malicious)
    assert code == 1
    assert "exec" in out


def test_scan_of_unreadable_path_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dangling = tmp_path / "gone.pt"
    dangling.symlink_to(tmp_path / "never-existed.pt")
    code, _, _ = run(capsys, "scan", dangling)
    assert code == 2


def test_scan_of_folder_without_models_exits_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "README.txt").write_text("nothing to see here\n")
    code, _, _ = run(capsys, "scan", folder)
    assert code == 3


def test_scan_of_empty_folder_exits_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, _ = run(capsys, "scan", empty)
    assert code == 3


def test_allow_empty_turns_nothing_scannable_into_0(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    picture = tmp_path / "logo.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    code, _, _ = run(capsys, "scan", "--allow-empty", picture)
    assert code == 0


def test_allow_empty_still_fails_on_findings(
    capsys: pytest.CaptureFixture[str], malicious: Path
) -> None:
    code, _, _ = run(capsys, "scan", "--allow-empty", malicious)
    assert code == 1


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["scan"], id="no-path"),
        pytest.param(["scan", "--no-such-flag", "x"], id="unknown-flag"),
        pytest.param(["scan", "--format", "xml", "{file}"], id="bad-format"),
        pytest.param(["scan", "--fail-on", "severe", "{file}"], id="bad-fail-on"),
        pytest.param(["scan", "--jobs", "0", "{file}"], id="zero-jobs"),
        pytest.param(["scan", "--jobs", "many", "{file}"], id="non-integer-jobs"),
        pytest.param(["scan", "{missing}"], id="missing-path"),
        pytest.param(["scan", "--policy", "{missing}", "{file}"], id="missing-policy"),
        pytest.param(["scan", "--output", "{missing}/report.json", "{file}"], id="missing-dir"),
        pytest.param(["scan", "--output", "{dir}", "{file}"], id="output-is-dir"),
        pytest.param(["scan", "{fifo}"], id="named-pipe"),
        pytest.param(["frobnicate"], id="unknown-command"),
        pytest.param([], id="no-command"),
    ],
)
def test_usage_errors_exit_4_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, benign: Path, args: list[str]
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    filled = [
        a.format(file=benign, missing=tmp_path / "missing", dir=tmp_path, fifo=fifo) for a in args
    ]
    code, _, err = run(capsys, *filled)
    assert code == 4
    if filled:
        assert err.startswith("mlwarden: error: ")
        assert err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("[pickle\nallow = [", id="not-toml"),
        pytest.param("[pickles]\nallow = []\n", id="unknown-section"),
        pytest.param('[pickle]\nallow = "mypkg.Net"\n', id="allow-not-a-list"),
        pytest.param("[limits]\nmax_depth = -1\n", id="negative-limit"),
    ],
)
def test_bad_policy_exits_4_naming_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, benign: Path, content: str
) -> None:
    policy = tmp_path / "bad-policy.toml"
    policy.write_text(content)
    code, _, err = run(capsys, "scan", "--policy", policy, benign)
    assert code == 4
    assert err.startswith("mlwarden: error: ") and "bad-policy.toml" in err
    assert err.count("\n") == 1


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"mlwarden {__version__}"


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "scan", "--help")
    assert code == 0
    for flag in ("--format", "--output", "--fail-on", "--policy", "--jobs", "--quiet"):
        assert flag in out


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "--help"],
        ["audit", "--help"],
        ["attack", "--help"],
        ["attack", "evasion", "--help"],
        ["policy", "init", "--help"],
        ["--version", "scan"],
        ["scan", "--jobs", "0", "model.pt"],
        ["scan", "--no-such-flag"],
        ["attack", "no-such-attack"],
        ["scna"],
    ],
)
def test_building_only_the_invoked_subcommand_changes_nothing_users_see(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """`main` builds only the named subcommand's parser; the whole tree must say the same."""
    alone = run(capsys, *args)
    whole = cli_module._command([])
    monkeypatch.setattr(cli_module, "_command", lambda _args: whole)
    assert run(capsys, *args) == alone


def test_only_the_invoked_subcommand_is_built() -> None:
    assert set(cli_module._command(["scan", "x"]).commands) == {"scan"}
    assert set(cli_module._command(["--version", "attack", "evasion"]).commands) == {"attack"}
    everything = {"scan", "audit", "keygen", "sign", "verify", "demo", "policy", "attack"}
    assert set(cli_module._command(["--help"]).commands) == everything
    assert set(cli_module._command(["scna"]).commands) == everything


# --- errors that are not the user's ---------------------------------------------------------


def test_library_error_is_one_line_with_its_exit_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, benign: Path
) -> None:
    from mlwarden.errors import ScanError

    def broken_scan(*args: object, **kwargs: object) -> None:
        raise ScanError("disk vanished\nhalfway through")

    monkeypatch.setattr("mlwarden.scan.api.scan", broken_scan)
    code, _, err = run(capsys, "scan", benign)
    assert code == 2
    assert err == "mlwarden: error: disk vanished halfway through\n"


def test_unexpected_exception_is_one_line_exit_2_and_asks_for_a_report(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, benign: Path
) -> None:
    def buggy_scan(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("mlwarden.scan.api.scan", buggy_scan)
    monkeypatch.delenv("MLWARDEN_DEBUG", raising=False)
    code, _, err = run(capsys, "scan", benign)
    assert code == 2
    assert err.count("\n") == 1
    assert "RuntimeError: boom" in err and "bug" in err
    assert "Traceback" not in err


def test_debug_variable_adds_the_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, benign: Path
) -> None:
    def buggy_scan(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("mlwarden.scan.api.scan", buggy_scan)
    monkeypatch.setenv("MLWARDEN_DEBUG", "1")
    code, _, err = run(capsys, "scan", benign)
    assert code == 2
    assert "Traceback" in err


# --- formats and output ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "looks_right"),
    [
        ("console", lambda text: "exec" in text),
        ("json", lambda text: isinstance(json.loads(text), dict)),
        ("sarif", lambda text: json.loads(text)["version"] == "2.1.0"),
        ("html", lambda text: "<html" in text.lower() and "exec" in text),
        ("markdown", lambda text: text.lstrip().startswith("#") and "exec" in text),
    ],
)
def test_each_format_writes_its_file_and_a_summary(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    malicious: Path,
    fmt: str,
    looks_right: object,
) -> None:
    target = tmp_path / f"report.{fmt}"
    code, out, err = run(capsys, "scan", "--format", fmt, "--output", target, malicious)
    assert code == 1
    assert out == ""
    text = target.read_text(encoding="utf-8")
    assert callable(looks_right) and looks_right(text)
    assert "\x1b[" not in text, "no terminal colours in a file"
    assert err.startswith("mlwarden: ") and str(target) in err and "critical" in err


def test_quiet_drops_the_summary_but_writes_the_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, malicious: Path
) -> None:
    target = tmp_path / "report.json"
    code, out, err = run(capsys, "scan", "-q", "-f", "json", "-o", target, malicious)
    assert code == 1
    assert (out, err) == ("", "")
    assert target.stat().st_size > 0


def test_json_to_stdout_lists_every_scanned_file(
    capsys: pytest.CaptureFixture[str], benign: Path, malicious: Path
) -> None:
    code, out, _ = run(capsys, "scan", "--format", "json", benign, malicious)
    assert code == 1
    text = json.dumps(json.loads(out))
    assert benign.name in text and malicious.name in text


def test_console_output_to_a_pipe_has_no_colour(
    capsys: pytest.CaptureFixture[str], malicious: Path
) -> None:
    _, out, _ = run(capsys, "scan", malicious)
    assert "\x1b[" not in out


# --- the gate -------------------------------------------------------------------------------


def test_fail_on_never_exits_0_despite_findings(
    capsys: pytest.CaptureFixture[str], malicious: Path
) -> None:
    code, _, _ = run(capsys, "scan", "--fail-on", "never", malicious)
    assert code == 0


def test_fail_on_critical_ignores_high_findings(
    capsys: pytest.CaptureFixture[str], unknown_call: Path
) -> None:
    assert run(capsys, "scan", unknown_call)[0] == 1
    assert run(capsys, "scan", "--fail-on", "critical", unknown_call)[0] == 0


def test_report_verdict_follows_the_fail_on_gate(
    capsys: pytest.CaptureFixture[str], unknown_call: Path
) -> None:
    code, out, _ = run(capsys, "scan", "--format", "json", "--fail-on", "critical", unknown_call)
    verdict = json.loads(out)["verdict"]
    assert (code, verdict["status"], verdict["fail_on"]) == (0, "pass", "critical")


def test_fail_on_critical_still_fails_on_critical(
    capsys: pytest.CaptureFixture[str], malicious: Path
) -> None:
    assert run(capsys, "scan", "--fail-on", "CRITICAL", malicious)[0] == 1


def test_policy_allowing_a_callable_turns_its_finding_off(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, unknown_call: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[pickle]\nallow = ["mypkg.models.build_model"]\n')
    code, out, _ = run(capsys, "scan", "--format", "json", "--policy", policy, unknown_call)
    assert code == 0
    assert "mypkg.models.build_model" not in json.dumps(json.loads(out)["findings"])


def test_policy_never_allows_a_dangerous_callable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, malicious: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[pickle]\nallow = ["builtins.exec"]\n')
    assert run(capsys, "scan", "--policy", policy, malicious)[0] == 1


def test_jobs_scan_a_folder_in_parallel_with_the_same_verdict(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, marker: Path
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):
        np.save(folder / f"w{i:02}.npy", np.zeros(3, dtype=np.float32))
    (folder / "z-evil.bin").write_bytes(exec_pickle(marker))
    serial = run(capsys, "scan", "-f", "json", folder)
    parallel = run(capsys, "scan", "-f", "json", "--jobs", "2", folder)
    assert serial[0] == parallel[0] == 1
    assert len(json.loads(serial[1])["findings"]) == len(json.loads(parallel[1])["findings"])


# --- audit ----------------------------------------------------------------------------------


def test_audit_runs_a_yaml_plan_with_paths_relative_to_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, malicious: Path
) -> None:
    plan = tmp_path / "audit.yaml"
    plan.write_text(f"version: 1\nscan:\n  paths: [{malicious.name}]\nfail_on: high\n")
    code, out, _ = run(capsys, "audit", "--config", plan, "--format", "json")
    assert code == 1
    assert malicious.name in out


def test_audit_plan_fail_on_is_used_and_the_flag_overrides_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, unknown_call: Path
) -> None:
    plan = tmp_path / "audit.yaml"
    plan.write_text(f"scan:\n  paths: [{unknown_call.name}]\nfail_on: critical\n")
    assert run(capsys, "audit", "-c", plan)[0] == 0
    assert run(capsys, "audit", "-c", plan, "--fail-on", "high")[0] == 1


def test_audit_paths_on_the_command_line_replace_the_plans(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, benign: Path, malicious: Path
) -> None:
    plan = tmp_path / "audit.yaml"
    plan.write_text(f"scan:\n  paths: [{malicious.name}]\n")
    assert run(capsys, "audit", "-c", plan, benign)[0] == 0


def test_audit_skipping_the_only_check_assesses_nothing(
    capsys: pytest.CaptureFixture[str], malicious: Path
) -> None:
    code, _, _ = run(capsys, "audit", malicious, "--skip", "ml06.model_files")
    assert code == 3


def test_audit_without_inputs_assesses_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(capsys, "audit")
    assert code == 3


def test_audit_only_an_unknown_check_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], benign: Path
) -> None:
    code, _, err = run(capsys, "audit", benign, "--only", "ml99.nothing")
    assert code == 4
    assert "ml99.nothing" in err and "ml06.model_files" in err


def test_audit_invalid_plan_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan = tmp_path / "audit.yaml"
    plan.write_text("version: 1\nscan:\n  pathz: [x]\n")
    code, _, err = run(capsys, "audit", "--config", plan)
    assert code == 4
    assert "audit.yaml" in err and err.count("\n") == 1


def test_audit_list_checks_names_each_check_with_risks_and_needs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "audit", "--list-checks")
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("ml06.model_files"))
    assert "ML06" in line and "paths" in line


# --- policy ---------------------------------------------------------------------------------


def test_policy_init_writes_a_policy_that_changes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "mlwarden-policy.toml"
    code, out, _ = run(capsys, "policy", "init", "--output", target)
    assert code == 0 and str(target) in out
    policy = Policy.from_file(target)
    assert (policy.allow, policy.allow_prefixes, policy.deny) == (frozenset(),) * 3
    assert policy.limits == Limits()


def test_policy_init_refuses_to_overwrite_without_force(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "p.toml"
    target.write_text("# mine\n")
    code, _, err = run(capsys, "policy", "init", "-o", target)
    assert code == 4 and "--force" in err
    assert target.read_text() == "# mine\n"
    assert run(capsys, "policy", "init", "-o", target, "--force")[0] == 0
    assert "[pickle]" in target.read_text()


def test_starter_policy_shows_every_limit_with_its_default(tmp_path: Path) -> None:
    assert set(LIMIT_HELP) == set(Limits.__dataclass_fields__)
    uncommented = re.sub(r"(?m)^# (\w+ = )", r"\1", starter_policy_text())
    assert "\n# max_" not in uncommented and "\nmax_depth = 10 " in uncommented
    target = tmp_path / "all-limits.toml"
    target.write_text(uncommented)
    assert Policy.from_file(target).limits == Limits()


def test_policy_show_allowlist_prints_every_entry_with_its_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "policy", "show-allowlist")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(builtin_allowlist()) > 0
    assert any(line.startswith("torch._utils._rebuild_tensor_v2 ") for line in lines)
    assert all("  # " in line for line in lines)


# --- terminal behaviour ---------------------------------------------------------------------


class _Tty:
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert _colour_allowed(_Tty())  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "1")
    assert not _colour_allowed(_Tty())  # type: ignore[arg-type]


def test_progress_only_on_an_interactive_terminal_outside_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stderr", _Tty())
    monkeypatch.delenv("CI", raising=False)
    assert _interactive_stderr(quiet=False)
    assert not _interactive_stderr(quiet=True)
    monkeypatch.setenv("CI", "true")
    assert not _interactive_stderr(quiet=False)


def test_progress_bar_runs_no_thread_so_scans_can_fork_workers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import threading

    from mlwarden.cli import _progress
    from mlwarden.scan import parallel

    monkeypatch.setattr(cli_module, "_interactive_stderr", lambda quiet: True)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    # Compared as sets, not counts: a daemon thread an earlier test left behind (a loopback
    # server's handler, a pool's worker) may end meanwhile without _progress starting one.
    threads_before = set(threading.enumerate())
    with _progress(quiet=False) as update:
        assert update is not None
        assert set(threading.enumerate()) - threads_before == set()  # no refresh thread
        for done in range(1, 201):
            update("scanning", done, 200)
        assert set(threading.enumerate()) - threads_before == set()
        if len(threads_before) == 1:
            assert parallel.can_fork()


# --- the installed command ------------------------------------------------------------------


def test_installed_command_runs_and_sets_the_exit_code(malicious: Path) -> None:
    done = subprocess.run(
        [MLWARDEN_SCRIPT, "scan", "--format", "json", malicious],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)


def test_console_entry_exits_with_the_code_and_skips_the_last_collection(
    monkeypatch: pytest.MonkeyPatch, benign: Path, malicious: Path
) -> None:
    import gc

    frozen: list[bool] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    for path, code in ((benign, 0), (malicious, 1)):
        monkeypatch.setattr(
            sys, "argv", ["mlwarden", "scan", "--quiet", "-o", os.devnull, str(path)]
        )
        with pytest.raises(SystemExit) as exited:
            cli_module.run()
        assert exited.value.code == code
    assert frozen == [True, True]


def test_python_dash_m_is_the_same_command(malicious: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlwarden", "scan", "--format", "json", malicious],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["verdict"]["exit_code"] == 1


def test_help_imports_no_heavy_module() -> None:
    probe = (
        "import sys\n"
        "from mlwarden.cli import main\n"
        "assert main(['--help']) == 0\n"
        "assert main(['scan', '--help']) == 0\n"
        "heavy = {'numpy', 'torch', 'jinja2', 'h5py', 'py7zr', 'joblib'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


# --- demo -----------------------------------------------------------------------------------


@pytest.fixture
def quick_evasion_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's evasion part on a few samples with the quick suite (the real one takes a
    minute); what it attacks and how it reports are the same."""
    from mlwarden.demo import evasion

    monkeypatch.setattr(evasion, "DEMO_SUITE", "quick")
    monkeypatch.setattr(evasion, "DEMO_MAX_SAMPLES", 24)


@pytest.fixture
def quick_privacy_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's privacy part with two reference models, two attacks, one defence and short
    inversions (the real one takes about a minute); what it measures and reports is the same."""
    from mlwarden.demo import privacy

    monkeypatch.setattr(privacy, "DEMO_N_REFERENCE", 2)
    monkeypatch.setattr(privacy, "DEMO_ATTACKS", ("loss", "lira-offline"))
    monkeypatch.setattr(privacy, "DEMO_DEFENCES", ("label-only",))
    monkeypatch.setattr(privacy, "INVERSION_STEPS", 20)


@pytest.mark.slow
@pytest.mark.usefixtures("quick_evasion_demo", "quick_privacy_demo")
def test_demo_builds_the_folder_and_writes_the_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "demo-models"
    report = tmp_path / "report.html"
    code, out, err = run(capsys, "demo", "--out", out_dir, "--report", report)
    assert code == 0, err
    assert (out_dir / "benign").is_dir() and (out_dir / "malicious").is_dir()
    html = report.read_text(encoding="utf-8")
    assert "<html" in html.lower()
    assert str(report.resolve()) in out
    assert Severity.CRITICAL.value in out
    assert "Trained and attacked digits-cnn and breast-cancer-mlp" in out
    assert "and verified it; the tampered copy" in out and "was caught" in out
    assert "Audited digits-mlp.pt for membership inference (OWASP ML04): " in out
    assert "The same attacks behind each defence" in out and "label-only" in out
    assert "Inverted digits-cnn.pt class by class (OWASP ML03, mi-face)" in out


@pytest.mark.slow
@pytest.mark.usefixtures("quick_evasion_demo", "quick_privacy_demo")
def test_demo_report_holds_the_scan_and_both_evasion_evaluations(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "demo-models"
    report_file = tmp_path / "r.json"
    code, _, err = run(capsys, "demo", "--out", out_dir, "--report", report_file, "-f", "json")
    assert code == 0, err
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert {"ml06.model_files", "ml01.evasion"} <= set(report["checks_run"])
    evasion = [f for f in report["findings"] if f["rule"] == "evasion.low-robust-accuracy"]
    assert {f["location"]["path"] for f in evasion} == {"digits-cnn.pt", "breast-cancer-mlp.pt"}
    assert "ml01.evasion" in report["metrics"] and "ml01.evasion (2)" in report["metrics"]
    # the saved TorchScript models are part of the scan, and clean
    models = [f for f in report["files"] if f["member"] is None and f["path"].endswith("-cnn.pt")]
    assert [(f["format"], f["severity"]) for f in models] == [("torchscript", None)]
    # the signing demo: the signed folder verifies, every change to the tampered copy is named
    assert "ml10.signature" in report["checks_run"]
    verified = {
        Path(m["model"]).name: m["verified"] for m in report["metrics"]["ml10.signature"]["models"]
    }
    assert verified == {"signed-model": True, "tampered-model": False}
    tampering = {f["rule"] for f in report["findings"] if "tampered-model" in f["location"]["path"]}
    assert tampering == {"integrity.modified", "integrity.added"}
    assert not [f for f in report["findings"] if "signed-model" in f["location"]["path"]]
    # the privacy part: the overfit model leaks membership, the CNN is inverted class by class
    assert {"ml04.membership", "ml03.inversion"} <= set(report["checks_run"])
    rules = {f["rule"] for f in report["findings"]}
    assert {"membership.low-fpr-leak", "membership.epsilon"} <= rules
    [leak] = [f for f in report["findings"] if f["rule"] == "membership.low-fpr-leak"]
    assert leak["location"]["path"] == "digits-mlp.pt"
    membership = report["metrics"]["ml04.membership"]
    assert membership["member_accuracy"] == 1.0
    assert [r["defence"] for r in membership["defence_results"]] == ["none", "label-only"]
    assert len(report["metrics"]["ml03.inversion"]["classes"]) == 10
    privacy_files = [f for f in report["files"] if "/privacy/" in f["path"] and f["member"] is None]
    assert privacy_files and all(f["severity"] is None for f in privacy_files)


@pytest.mark.slow
@pytest.mark.usefixtures("quick_evasion_demo", "quick_privacy_demo")
def test_demo_runs_again_over_its_own_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "demo-models"
    args = ("demo", "--out", out_dir, "--report", tmp_path / "r.json", "--format", "json")
    assert run(capsys, *args)[0] == 0
    assert run(capsys, *args)[0] == 0


def test_demo_refuses_a_folder_it_did_not_make(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    mine = tmp_path / "my-models"
    mine.mkdir()
    (mine / "precious.pt").write_bytes(b"keep me")
    code, _, err = run(capsys, "demo", "--out", mine, "--report", tmp_path / "r.html")
    assert code == 4 and "my-models" in err
    assert (mine / "precious.pt").read_bytes() == b"keep me"


@pytest.mark.usefixtures("quick_evasion_demo", "quick_privacy_demo")
def test_demo_names_the_samples_it_could_not_build(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlwarden.demo import builder, corpus

    def torch_missing(technique: corpus.Technique) -> tuple[str, ...]:
        return ("torch",) if "torch" in technique.needs else ()

    monkeypatch.setattr(corpus, "missing_needs", torch_missing)
    monkeypatch.setattr(builder, "missing_needs", torch_missing)
    out_dir = tmp_path / "demo-models"
    code, out, _ = run(
        capsys, "demo", "--out", out_dir, "--report", tmp_path / "r.md", "-f", "markdown"
    )
    assert code == 0
    assert "Skipped torch/state-dict (not installed: torch)." in out
    assert not (out_dir / "benign" / "torch").exists()
    assert (out_dir / "malicious").is_dir()
