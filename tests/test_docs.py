"""The documentation stays true: every flag, rule, limit and local link it names exists.

README.md, docs/ and CHANGELOG.md change in the same commit as the behaviour; these tests fail
when one of them names a flag the CLI does not have, misses a rule id the scanner reports or a
limit it applies, or links to a file that is not there.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest
import typer

from mlwarden.cli import app
from mlwarden.scan.limits import Limits

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCE = REPO_ROOT / "src" / "mlwarden"
README = REPO_ROOT / "README.md"
SCANNING = REPO_ROOT / "docs" / "scanning.md"
DOCUMENTS = [README, REPO_ROOT / "CHANGELOG.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]

_RULE_ID = re.compile(r"^[a-z0-9]+\.[a-z0-9-]+$")
_FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z-]+)")
_LOCAL_LINK = re.compile(r"\]\(((?!https?:|#)[^)#\s]+)(?:#[^)]*)?\)")


def cli_flags() -> set[str]:
    """Every long option of every mlwarden command and subcommand."""
    flags: set[str] = set()
    pending = [typer.main.get_command(app)]
    while pending:
        command = pending.pop()
        for param in command.params:
            flags.update(o for o in param.opts if o.startswith("--"))
        pending.extend(getattr(command, "commands", {}).values())
    return flags


def reported_rule_ids() -> set[str]:
    """Rule ids the source reports: the first argument of a call that also names a severity,
    a ``rule=`` keyword, or a module constant whose name ends in ``RULE``."""
    rules: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        if "demo" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            rules.update(_rules_in(node))
    return rules


def _rules_in(node: ast.AST) -> set[str]:
    found: set[str] = set()
    if isinstance(node, ast.Call):
        for keyword in node.keywords:
            if keyword.arg == "rule" and isinstance(keyword.value, ast.Constant):
                found.add(str(keyword.value.value))
        first = node.args[0] if node.args else None
        if (
            isinstance(first, ast.Constant)
            and isinstance(first.value, str)
            and _RULE_ID.match(first.value)
            and any("everity" in ast.unparse(a) for a in node.args[1:4])
        ):
            found.add(first.value)
    elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if any(n.endswith("RULE") for n in names) and isinstance(node.value.value, str):
            found.add(node.value.value)
    return found


def readme_cli_reference() -> str:
    """The README's command-line reference: from "## Command line" to the next "## " heading."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Command line\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_every_flag_in_the_cli_reference_exists() -> None:
    documented = set(_FLAG.findall(readme_cli_reference()))
    assert documented - cli_flags() == set()


def test_every_cli_flag_is_in_the_cli_reference() -> None:
    documented = set(_FLAG.findall(readme_cli_reference()))
    assert cli_flags() - documented == set()


def test_every_rule_mlwarden_reports_is_documented() -> None:
    rules = reported_rule_ids()
    assert len(rules) > 20, "the rule extraction found too little to be trusted"
    text = "\n".join(p.read_text(encoding="utf-8") for p in (REPO_ROOT / "docs").glob("*.md"))
    assert {r for r in rules if f"`{r}`" not in text} == set()


def test_every_limit_is_documented_with_its_default() -> None:
    text = SCANNING.read_text(encoding="utf-8")
    for limit in dataclasses.fields(Limits):
        assert re.search(rf"^\| `{limit.name}` \| [^|]+ \|", text, re.M), limit.name


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_local_links_point_at_files_that_exist(document: Path) -> None:
    missing = [
        target
        for target in _LOCAL_LINK.findall(document.read_text(encoding="utf-8"))
        if not (document.parent / target).exists()
    ]
    assert missing == []
