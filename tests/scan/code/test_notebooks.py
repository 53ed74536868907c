"""Notebooks: code cells only, IPython syntax blanked, locations by cell and line within it."""

from __future__ import annotations

import json

from mlwarden.findings import Severity
from mlwarden.scan.code import audit_code
from mlwarden.scan.code.sources import notebook_cells
from tests.scan.code._helpers import fake_token, only, rules, write_notebook


def test_findings_are_located_by_cell_and_line_within_it(tmp_path):
    path = write_notebook(
        tmp_path / "train.ipynb",
        [
            ("markdown", "# Training\nimport pickle\npickle.loads(b)\n"),
            ("code", "import torch as T\n"),
            ("code", "x = 1\n\nstate = T.load('m.pt')\n"),
        ],
    )
    result = audit_code([path])
    assert [s.format for s in result.scanned] == ["notebook"]
    [finding] = result.findings
    assert finding.rule == "code.torch-load"
    location = finding.location
    assert (location.path, location.member, location.line, location.column) == (
        str(path),
        "cell 3",
        3,
        9,
    )


def test_magics_shell_lines_and_help_are_blanked_and_the_rest_audited(tmp_path):
    path = write_notebook(
        tmp_path / "nb.ipynb",
        [
            (
                "code",
                "%pip install torch\n"
                "!nvidia-smi\n"
                "files = !ls\n"
                "torch.load?\n"
                "%matplotlib inline\n"
                "import pickle\n"
                "for f in files:\n"
                "    !echo $f\n"
                "pickle.loads(b)\n",
            ),
        ],
    )
    findings = audit_code([path]).findings
    assert [(f.rule, f.location.line) for f in findings] == [("code.pickle-load", 9)]


def test_cell_magics_with_a_shell_body_are_skipped_and_python_bodies_audited(tmp_path):
    path = write_notebook(
        tmp_path / "nb.ipynb",
        [
            ("code", "%%bash\npython -c 'import pickle; pickle.loads(x)'\n"),
            ("code", "%%writefile helper.py\nimport pickle\npickle.loads(x)\n"),
            ("code", "%%time\nimport pickle\npickle.loads(x)\n"),
        ],
    )
    findings = audit_code([path]).findings
    assert [(f.location.member, f.location.line) for f in findings] == [("cell 3", 3)]


def test_a_line_continued_after_a_shell_escape_is_blanked_too(tmp_path):
    path = write_notebook(tmp_path / "nb.ipynb", [("code", "!pip install \\\n   torch\nx = 1\n")])
    result = audit_code([path])
    assert result.findings == [] and result.errors == []


def test_secret_on_a_shell_line_is_found_in_the_raw_text(tmp_path):
    token = fake_token("hf_", 34)
    path = write_notebook(
        tmp_path / "nb.ipynb", [("code", f"!huggingface-cli login --token {token}\n")]
    )
    [finding] = audit_code([path]).findings
    assert finding.rule == "code.hardcoded-secret" and finding.severity is Severity.HIGH
    assert (finding.location.member, finding.location.line, finding.location.column) == (
        "cell 1",
        1,
        32,
    )
    assert token not in repr(finding)


def test_imports_in_one_cell_serve_the_later_cells(tmp_path):
    path = write_notebook(
        tmp_path / "nb.ipynb",
        [("code", "import joblib as jb\n"), ("code", "model = jb.load('m.joblib')\n")],
    )
    assert rules(audit_code([path]).findings) == ["code.pickle-load"]


def test_a_broken_cell_does_not_stop_the_other_cells(tmp_path):
    path = write_notebook(
        tmp_path / "nb.ipynb",
        [("code", "def broken(:\n"), ("code", "import pickle\npickle.loads(b)\n")],
    )
    findings = audit_code([path]).findings
    assert [(f.rule, f.severity, f.location.member) for f in findings] == [
        ("code.unparseable", Severity.INFO, "cell 1"),
        ("code.pickle-load", Severity.HIGH, "cell 2"),
    ]


def test_suppression_comment_works_in_a_cell(tmp_path):
    path = write_notebook(
        tmp_path / "nb.ipynb",
        [("code", "import pickle\npickle.loads(b)  # mlwarden: ignore[code.pickle-load]\n")],
    )
    result = audit_code([path])
    assert result.findings == [] and result.suppressed == 1


def test_notebooks_of_other_languages_are_not_audited(tmp_path):
    path = write_notebook(tmp_path / "r.ipynb", [("code", "x <- eval(parse(text=s))\n")], "R")
    result = audit_code([path])
    assert result.findings == [] and result.errors == []
    assert [s.format for s in result.scanned] == ["notebook"]


def test_nbformat_3_worksheets_are_read(tmp_path):
    document = {
        "worksheets": [
            {"cells": [{"cell_type": "code", "input": ["import pickle\n", "pickle.loads(b)"]}]}
        ],
        "metadata": {},
        "nbformat": 3,
    }
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(document))
    assert rules(audit_code([path]).findings) == ["code.pickle-load"]


def test_cell_numbers_count_every_cell_and_lines_keep_their_numbers():
    document = {
        "cells": [
            {"cell_type": "markdown", "source": "x"},
            {"cell_type": "raw", "source": "y"},
            {"cell_type": "code", "source": ["%time f()\n", "a = 1\n"]},
        ],
        "metadata": {},
    }
    [cell] = notebook_cells(json.dumps(document).encode())
    assert cell.member == "cell 3"
    assert cell.source.split("\n") == ["pass", "a = 1", ""]
    assert cell.blanked == ((1, "%time f()"),)


def test_malformed_notebooks_become_findings_not_crashes(tmp_path):
    cases = {
        "truncated.ipynb": b'{"cells": [',
        "list.ipynb": b"[1, 2]",
        "nocells.ipynb": b'{"metadata": {}}',
        "binary.ipynb": bytes(range(256)) * 4,
        "empty.ipynb": b"",
        "cellsource.ipynb": json.dumps({"cells": [{"cell_type": "code", "source": 42}]}).encode(),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    result = audit_code([tmp_path])
    assert result.errors == []
    assert len(result.scanned) == len(cases)
    assert {f.location.path.rsplit("/", 1)[-1] for f in result.findings} == set(cases)
    assert {(f.rule, f.severity) for f in result.findings} == {("code.unparseable", Severity.INFO)}
    assert only(result.findings, "code.unparseable")[0].detail


def test_suppression_comment_works_on_a_shell_line(tmp_path):
    token = fake_token("hf_", 34)
    source = f"!login --token {token}  # mlwarden: ignore[code.hardcoded-secret]\n"
    result = audit_code([write_notebook(tmp_path / "nb.ipynb", [("code", source)])])
    assert result.findings == [] and result.suppressed == 1
