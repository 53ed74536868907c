"""pyproject.toml: PEP 621, PEP 735 dependency groups and Poetry tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.scan.deps.inputs import SPECIFIER_ALTERNATIVES, InputProblem
from mlwarden.scan.deps.inputs.pyproject import parse, poetry_specifier

from .conftest import write

PEP621 = """\
[build-system]
requires = ["setuptools>=40"]

[project]
name = "app"
dependencies = [
  "torch>=2.0",
  "keras==3.8.0",
  "mylib @ git+https://github.com/org/mylib",
]

[project.optional-dependencies]
hf = ["transformers==4.37.0"]

[dependency-groups]
test = ["requests==2.31.0", {include-group = "lint"}]
lint = ["ruff"]
"""

POETRY = """\
[tool.poetry]
name = "app"

[tool.poetry.dependencies]
python = "^3.10"
torch = "2.5.1"
keras = "^3.0"
Transformers = { version = "~4.30", extras = ["torch"] }
local = { path = "../local" }
gitdep = { git = "https://github.com/org/gitdep.git", tag = "v1" }
numpy = [
  { version = "<2", python = "<3.9" },
  { version = ">=2", python = ">=3.9" },
]

[tool.poetry.group.dev.dependencies]
requests = "==2.31.0"
"""


def parsed(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = write(tmp_path, "pyproject.toml", text)
    return parse(path, str(path))


def test_pep621_dependencies_optional_and_groups(tmp_path: Path) -> None:
    result = parsed(tmp_path, PEP621)
    deps = {d.name: d for d in result.dependencies}
    assert deps["torch"].specifier == ">=2.0" and deps["torch"].line == 7
    assert deps["keras"].version == "3.8.0" and deps["keras"].line == 8
    assert deps["mylib"].direct_url == "git+https://github.com/org/mylib"
    assert deps["transformers"].group == "hf" and deps["transformers"].line == 13
    assert deps["requests"].group == "test" and deps["requests"].version == "2.31.0"
    assert deps["ruff"].group == "lint"
    assert "setuptools" not in deps  # build requirements do not run with the project
    assert result.errors == []


def test_poetry_tables(tmp_path: Path) -> None:
    result = parsed(tmp_path, POETRY)
    deps: dict[str, list] = {}
    for dep in result.dependencies:
        deps.setdefault(dep.name, []).append(dep)
    assert "python" not in deps
    assert deps["torch"][0].version == "2.5.1" and deps["torch"][0].line == 6
    assert deps["keras"][0].specifier == ">=3.0,<4"
    assert deps["transformers"][0].specifier == ">=4.30,<4.31"
    assert deps["transformers"][0].line == 8
    assert deps["gitdep"][0].direct_url is not None
    assert [d.specifier for d in deps["numpy"]] == ["<2", ">=2"]
    assert deps["requests"][0].group == "dev" and deps["requests"][0].version == "2.31.0"
    assert "local" not in deps and any("local path" in s for s in result.skipped)


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ("^1.2.3", ">=1.2.3,<2"),
        ("^0.2.3", ">=0.2.3,<0.3"),
        ("^0.0.3", ">=0.0.3,<0.0.4"),
        ("^0.0", ">=0.0,<0.1"),
        ("~1.2.3", ">=1.2.3,<1.3"),
        ("~1", ">=1,<2"),
        ("1.2.*", "==1.2.*"),
        ("*", ""),
        (">= 1.2, < 2.0", ">=1.2,<2.0"),
        (">=1.2 <2.0", ">=1.2,<2.0"),
        ("^1.0 || ^2.0", f">=1.0,<2{SPECIFIER_ALTERNATIVES}>=2.0,<3"),
        ("^1.0 || *", ""),
    ],
)
def test_poetry_constraints_become_pep440(constraint: str, expected: str) -> None:
    assert poetry_specifier(constraint) == expected


def test_unreadable_poetry_constraint_is_an_error(tmp_path: Path) -> None:
    result = parsed(tmp_path, '[tool.poetry.dependencies]\ntorch = "^banana"\nnumpy = "1.26.0"\n')
    assert [d.name for d in result.dependencies] == ["numpy"]
    assert "torch" in result.errors[0].message and result.errors[0].message.startswith("line 2")


def test_dynamic_dependencies_are_noted(tmp_path: Path) -> None:
    result = parsed(tmp_path, '[project]\nname = "x"\ndynamic = ["dependencies"]\n')
    assert result.dependencies == [] and any("dynamic" in s for s in result.skipped)


@pytest.mark.parametrize(
    "text",
    [
        '[project]\ndependencies = "torch"\n',
        "[project]\ndependencies = [1, 2]\n",
        '[project]\ndependencies = ["torch >>> 2"]\n',
        "[project]\noptional-dependencies = 3\n",
        '[dependency-groups]\ntest = "x"\n',
        "dependency-groups = 1\n",
        "project = 1\n",
        "[tool.poetry]\ndependencies = 1\n",
        "[tool.poetry.dependencies]\ntorch = 3\n",
        "[tool.poetry]\ngroup = 1\n",
    ],
)
def test_wrong_types_are_errors_not_crashes(tmp_path: Path, text: str) -> None:
    assert parsed(tmp_path, text).errors


def test_invalid_toml_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(InputProblem, match="not valid TOML"):
        parsed(tmp_path, "[project\ndependencies = [")


def test_pyproject_without_dependencies_is_empty(tmp_path: Path) -> None:
    result = parsed(tmp_path, "[tool.ruff]\nline-length = 100\n")
    assert result.dependencies == [] and result.errors == []
