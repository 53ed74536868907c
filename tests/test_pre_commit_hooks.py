"""`.pre-commit-hooks.yaml`: the hooks parse, name the real command, and gate as documented.

The hooks are run here the way pre-commit runs them: the entry split into words, the hook's file
names appended (or none for the whole-repository hook), in the repository's folder.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlwarden.cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parents[1]
HOOKS_FILE = REPO_ROOT / ".pre-commit-hooks.yaml"


def hooks() -> dict[str, dict[str, Any]]:
    entries = yaml.safe_load(HOOKS_FILE.read_text(encoding="utf-8"))
    assert isinstance(entries, list)
    return {entry["id"]: entry for entry in entries}


def run_hook(hook_id: str, files: list[Path], capsys: pytest.CaptureFixture[str]) -> int:
    hook = hooks()[hook_id]
    words = shlex.split(hook["entry"])
    assert words[0] == "mlwarden"
    argv = words[1:] + [str(f) for f in files] if hook.get("pass_filenames", True) else words[1:]
    code = main(argv)
    capsys.readouterr()
    return code


def harmless_exec_pickle(marker: Path) -> bytes:
    return b"cbuiltins\nexec\n(V" + f"open({str(marker)!r}, 'w').close()".encode() + b"\ntR."


def test_hooks_file_declares_the_file_hook_and_the_repository_hook() -> None:
    declared = hooks()
    assert set(declared) == {"mlwarden-scan", "mlwarden-code", "mlwarden-scan-all"}
    for hook in declared.values():
        assert hook["language"] == "python"
        assert hook["name"] and hook["description"]
    assert declared["mlwarden-scan"]["types"] == ["binary"]
    assert declared["mlwarden-scan"]["pass_filenames"] is True
    assert declared["mlwarden-scan-all"]["pass_filenames"] is False
    assert declared["mlwarden-code"]["types_or"] == ["python", "jupyter"]
    assert declared["mlwarden-code"]["pass_filenames"] is True


def test_code_hook_fails_on_unsafe_loading_and_passes_clean_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = tmp_path / "clean.py"
    clean.write_text("import json\n\nconfig = json.loads('{}')\n")
    assert run_hook("mlwarden-code", [clean], capsys) == 0
    unsafe = tmp_path / "load.py"
    unsafe.write_text("import pickle\n\nmodel = pickle.load(open('m.pkl', 'rb'))\n")
    assert run_hook("mlwarden-code", [clean, unsafe], capsys) == 1


def test_hook_entries_call_the_installed_console_script() -> None:
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mlwarden"] == "mlwarden.cli:run"
    for hook in hooks().values():
        words = shlex.split(hook["entry"])
        assert words[:2] == ["mlwarden", "scan"]
        assert main([*words[1:], "--help"]) == 0, "the hook's flags must all exist"


def test_file_hook_passes_a_commit_of_pictures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    assert run_hook("mlwarden-scan", [logo], capsys) == 0


def test_file_hook_fails_on_a_pickle_disguised_as_a_picture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "payload-ran"
    disguised = tmp_path / "logo.png"
    disguised.write_bytes(harmless_exec_pickle(marker))
    assert run_hook("mlwarden-scan", [disguised], capsys) == 1
    assert not marker.exists()


def test_repository_hook_scans_the_working_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "payload-ran"
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    (repo / "README.md").write_text("# a project without models yet\n")
    monkeypatch.chdir(repo)
    assert run_hook("mlwarden-scan-all", [], capsys) == 0
    (repo / "models" / "notes.txt").write_bytes(harmless_exec_pickle(marker))
    assert run_hook("mlwarden-scan-all", [], capsys) == 1
    assert not marker.exists()
