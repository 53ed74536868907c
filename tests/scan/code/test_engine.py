"""The engine: which files it reads, how it survives bad input, suppression, and that it never
executes what it audits."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from mlwarden.errors import UsageError
from mlwarden.findings import Severity
from mlwarden.scan.code import CodeLimits, audit_code
from mlwarden.scan.code import engine as engine_module
from tests.scan.code._helpers import only, rules, write_notebook

PICKLE = "import pickle\npickle.loads(b)\n"


# --- which files are audited -------------------------------------------------------------


def test_folders_are_walked_for_py_pyw_and_notebooks_in_a_stable_order(tmp_path):
    (tmp_path / "b.py").write_text(PICKLE)
    (tmp_path / "a.pyw").write_text(PICKLE)
    (tmp_path / "sub").mkdir()
    write_notebook(tmp_path / "sub" / "n.ipynb", [("code", PICKLE)])
    (tmp_path / "notes.txt").write_text(PICKLE)
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04K\x01.")
    result = audit_code([tmp_path])
    assert [(os.path.relpath(s.path, tmp_path), s.format) for s in result.scanned] == [
        ("a.pyw", "python"),
        ("b.py", "python"),
        (os.path.join("sub", "n.ipynb"), "notebook"),
    ]
    assert len(result.findings) == 3


@pytest.mark.parametrize(
    "folder",
    [
        ".git",
        "__pycache__",
        ".venv",
        "venv",
        "site-packages",
        "node_modules",
        ".ipynb_checkpoints",
        ".tox",
    ],
)
def test_tooling_and_third_party_folders_are_skipped(tmp_path, folder):
    (tmp_path / folder / "pkg").mkdir(parents=True)
    (tmp_path / folder / "pkg" / "evil.py").write_text(PICKLE)
    (tmp_path / "mine.py").write_text("x = 1\n")
    result = audit_code([tmp_path])
    assert [os.path.basename(s.path) for s in result.scanned] == ["mine.py"]


def test_a_virtual_environment_is_skipped_whatever_its_name(tmp_path):
    (tmp_path / "env311" / "lib").mkdir(parents=True)
    (tmp_path / "env311" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (tmp_path / "env311" / "lib" / "x.py").write_text(PICKLE)
    assert audit_code([tmp_path]).scanned == []


def test_symlinks_are_never_followed_out_of_the_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.py").write_text(PICKLE)
    inside = tmp_path / "project"
    inside.mkdir()
    (inside / "main.py").write_text("x = 1\n")
    os.symlink(outside / "evil.py", inside / "linked.py")
    os.symlink(outside, inside / "linked_dir")
    result = audit_code([inside])
    assert [os.path.basename(s.path) for s in result.scanned] == ["main.py"]
    assert result.findings == [] and result.errors == []


def test_a_named_file_is_audited_once_and_a_named_non_python_file_is_skipped(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(PICKLE)
    model = tmp_path / "model.bin"
    model.write_bytes(b"\x00\x01")
    result = audit_code([script, script, tmp_path, model])
    assert [s.path for s in result.scanned] == [str(script)]
    assert len(result.findings) == 1 and result.errors == []


def test_a_named_script_with_a_python_shebang_is_audited(tmp_path):
    script = tmp_path / "train"
    script.write_text("#!/usr/bin/env python3\n" + PICKLE)
    assert rules(audit_code([script]).findings) == ["code.pickle-load"]


def test_a_missing_path_is_an_error(tmp_path):
    result = audit_code([tmp_path / "absent.py"])
    assert [e.message for e in result.errors] == ["no such file or directory"]


# --- bad input ----------------------------------------------------------------------------


def test_a_syntax_error_is_an_info_finding_and_other_files_still_count(tmp_path):
    (tmp_path / "a_broken.py").write_text("print 'python 2'\n")
    (tmp_path / "b_good.py").write_text(PICKLE)
    result = audit_code([tmp_path])
    assert [(f.rule, f.severity) for f in result.findings] == [
        ("code.unparseable", Severity.INFO),
        ("code.pickle-load", Severity.HIGH),
    ]
    broken = result.findings[0]
    assert broken.location.line == 1 and "cannot parse" in broken.evidence["reason"]
    assert result.errors == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes(range(256)) * 8, "NUL"),
        (b"x = '\xff\xfe\xfa'\n", "decode"),
        (b"# -*- coding: no-such-codec -*-\nx = 1\n", "decode"),
    ],
)
def test_binary_or_undecodable_py_files_are_info_findings(tmp_path, data, reason):
    (tmp_path / "weird.py").write_bytes(data)
    result = audit_code([tmp_path])
    [finding] = result.findings
    assert finding.rule == "code.unparseable" and reason in finding.evidence["reason"]
    assert result.errors == [] and len(result.scanned) == 1


def test_a_declared_encoding_is_honoured(tmp_path):
    source = "# -*- coding: latin-1 -*-\nnom = 'é'\nimport pickle\npickle.loads(b)\n"
    (tmp_path / "latin.py").write_bytes(source.encode("latin-1"))
    assert rules(audit_code([tmp_path]).findings) == ["code.pickle-load"]


def test_an_empty_file_is_audited_and_clean(tmp_path):
    (tmp_path / "__init__.py").write_bytes(b"")
    result = audit_code([tmp_path])
    assert result.findings == [] and result.errors == [] and len(result.scanned) == 1


def test_a_file_over_the_size_cap_is_a_finding_not_parsed(tmp_path):
    big = tmp_path / "generated.py"
    cap = CodeLimits().max_source_bytes
    big.write_bytes(PICKLE.encode() + b"#" * cap)
    result = audit_code([tmp_path])
    [finding] = result.findings
    assert (finding.rule, finding.severity) == ("code.too-large", Severity.LOW)
    assert finding.evidence == {"bytes": cap + len(PICKLE), "cap_bytes": cap}
    assert result.scanned[0].size == cap + len(PICKLE)


def test_the_cap_is_configurable_for_notebooks_too(tmp_path):
    write_notebook(tmp_path / "n.ipynb", [("code", PICKLE)])
    result = audit_code([tmp_path], limits=CodeLimits(max_notebook_bytes=50))
    assert rules(result.findings) == ["code.too-large"]


def test_an_unreadable_file_is_an_error_entry(tmp_path):
    dangling = tmp_path / "gone.py"
    os.symlink(tmp_path / "nowhere.py", dangling)
    result = audit_code([dangling])
    assert len(result.errors) == 1 and "cannot read" in result.errors[0].message
    assert result.findings == []


def test_a_named_fifo_is_an_error_not_a_hang(tmp_path):
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    result = audit_code([fifo])
    assert [e.message for e in result.errors] == ["not a regular file (pipe, socket or device)"]


def test_a_rule_that_crashes_costs_one_file_not_the_audit(tmp_path, monkeypatch):
    def broken_rule(node, ctx):
        if "boom" in ctx.path:
            raise RuntimeError("rule bug")

    real = engine_module.node_rules()
    patched = {**real, type(compile("x", "", "eval", 0x400).body): (broken_rule,)}
    monkeypatch.setattr(engine_module, "node_rules", lambda: patched)
    (tmp_path / "boom.py").write_text("x\n")
    (tmp_path / "fine.py").write_text(PICKLE)
    result = audit_code([tmp_path])
    assert [e.path for e in result.errors] == [str(tmp_path / "boom.py")]
    assert "rule bug" in result.errors[0].message
    assert rules(result.findings) == ["code.pickle-load"]


# --- suppression --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "comment",
    [
        "# mlwarden: ignore[code.pickle-load]",
        "# mlwarden: ignore[code.torch-load, code.pickle-load]",
        "# mlwarden: ignore",
        "#mlwarden:ignore[code.pickle-load]",
        "# noqa: S301  # mlwarden: ignore[code.pickle-load]",
    ],
)
def test_suppression_comments_silence_the_line(audit, comment, tmp_path):
    path = tmp_path / "s.py"
    path.write_text(f"import pickle\npickle.loads(b)  {comment}\npickle.loads(c)\n")
    result = audit_code([path])
    assert [f.location.line for f in result.findings] == [3]
    assert result.suppressed == 1
    assert result.metrics()["suppressed"] == 1


def test_a_suppression_naming_another_rule_does_not_silence(audit):
    findings = audit("import pickle\npickle.loads(b)  # mlwarden: ignore[code.torch-load]\n")
    assert rules(findings) == ["code.pickle-load"]


def test_a_suppression_on_the_closing_line_of_a_call_counts(audit):
    source = """
    from transformers import AutoModel
    model = AutoModel.from_pretrained(
        "gpt2",
    )  # mlwarden: ignore[code.unpinned-hub-download]
    """
    assert audit(source) == []


def test_a_suppression_only_silences_what_it_names(audit):
    source = (
        "m = f('gpt2', trust_remote_code=True)  # mlwarden: ignore[code.unpinned-hub-download]\n"
    )
    assert rules(audit(source)) == ["code.trust-remote-code"]


def test_a_suppression_inside_a_string_is_not_a_comment(audit):
    assert rules(audit("import pickle\npickle.loads('# mlwarden: ignore')\n")) == [
        "code.pickle-load"
    ]


# --- results, metrics, progress, parallel -------------------------------------------------


def test_metrics_count_files_notebooks_rules_and_suppressed(tmp_path):
    (tmp_path / "a.py").write_text(PICKLE + "pickle.load(f)  # mlwarden: ignore\n")
    (tmp_path / "b.py").write_text("import torch\ntorch.load(p)\n")
    write_notebook(tmp_path / "c.ipynb", [("code", PICKLE)])
    metrics = audit_code([tmp_path]).metrics()
    assert metrics == {
        "files": 3,
        "python_files": 2,
        "notebooks": 1,
        "findings": {"code.pickle-load": 2, "code.torch-load": 1},
        "suppressed": 1,
    }


def test_the_inventory_carries_the_worst_severity_per_file(tmp_path):
    (tmp_path / "a.py").write_text(PICKLE)
    (tmp_path / "b.py").write_text("x = 1\n")
    assert [s.severity for s in audit_code([tmp_path]).scanned] == [Severity.HIGH, None]


def test_progress_is_reported_per_file(tmp_path):
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text("x = 1\n")
    calls = []
    audit_code([tmp_path], progress=lambda *args: calls.append(args))
    assert calls == [("auditing code", 0, 2), ("auditing code", 1, 2), ("auditing code", 2, 2)]


def test_parallel_workers_give_the_same_result(tmp_path, monkeypatch):
    for index in range(4):
        (tmp_path / f"m{index}.py").write_text(PICKLE * (index + 1))
    serial = audit_code([tmp_path])
    monkeypatch.setattr(engine_module, "PARALLEL_MIN_FILES", 2)
    parallel = audit_code([tmp_path], jobs=2)
    assert parallel.findings == serial.findings and parallel.scanned == serial.scanned


# --- never executes -----------------------------------------------------------------------


def test_nothing_audited_is_ever_executed(tmp_path):
    marker = tmp_path / "MARKER"
    payload = textwrap.dedent(
        f"""
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("executed")
        command = "pathlib.Path({str(marker)!r}).write_text('exec')"
        exec(command + pathlib.Path.home().name)
        raise SystemExit(__import__("os").system("touch {marker}"))
        """
    )
    (tmp_path / "payload.py").write_text(payload)
    (tmp_path / "setup.py").write_text(payload)
    (tmp_path / "conftest.py").write_text(payload)
    (tmp_path / "__init__.py").write_text(payload)
    write_notebook(tmp_path / "payload.ipynb", [("code", payload), ("code", f"!touch {marker}")])
    result = audit_code([tmp_path])
    assert len(result.scanned) == 5
    assert only(result.findings, "code.dynamic-exec")
    assert not marker.exists()


def test_auditing_imports_neither_numpy_nor_torch(tmp_path):
    (tmp_path / "a.py").write_text("import numpy, torch\nnumpy.load(p, allow_pickle=True)\n")
    script = (
        "import sys\n"
        "from mlwarden.scan.code import audit_code\n"
        f"findings = audit_code([{str(tmp_path)!r}]).findings\n"
        "assert findings and findings[0].rule == 'code.numpy-allow-pickle', findings\n"
        "heavy = {'numpy', 'torch'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_a_single_path_may_be_given_without_a_list(tmp_path):
    (tmp_path / "a.py").write_text(PICKLE)
    assert rules(audit_code(tmp_path).findings) == ["code.pickle-load"]
    assert rules(audit_code(str(tmp_path)).findings) == ["code.pickle-load"]


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True])
def test_bad_jobs_is_a_usage_error(tmp_path, jobs):
    with pytest.raises(UsageError, match="jobs"):
        audit_code([tmp_path], jobs=jobs)


def test_bad_limits_are_a_usage_error():
    with pytest.raises(UsageError, match="max_source_bytes"):
        CodeLimits(max_source_bytes=-1)
