"""``pyproject.toml``: PEP 621 ``[project]`` dependencies and optional dependencies, PEP 735
``[dependency-groups]`` and Poetry's ``[tool.poetry.*dependencies]`` tables.

Poetry's own constraint syntax (``^1.2``, ``~1.2``, ``1.2.*``, ``||``) is translated into PEP 440
specifiers; ``path`` dependencies are skipped (the project's own code), ``git`` and ``url`` ones
have an unknown version. Build requirements (``[build-system]``) are not audited: they do not
run with the project. Not for: lock files (each has its own module).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from mlwarden.report.model import ErrorEntry
from mlwarden.scan.deps.inputs import (
    SPECIFIER_ALTERNATIVES,
    Dependency,
    InputFormat,
    ParsedInput,
)
from mlwarden.scan.deps.inputs._text import (
    canonical,
    exact_version,
    key_pattern,
    line_of,
    load_toml,
    parse_specifier,
    quoted,
    read_text,
    redact_url,
)

FORMAT_NAME = "pyproject"


def recognise(path: Path, head: str, explicit: bool) -> bool:
    """A file named ``pyproject.toml``."""
    return path.name == "pyproject.toml"


def parse(disk_path: Path, shown_path: str) -> ParsedInput:
    """Read every dependency table of a ``pyproject.toml``."""
    text = read_text(disk_path)
    data = load_toml(text)
    reader = _Reader(shown_path, text.splitlines())
    project = data.get("project")
    if isinstance(project, dict):
        reader.pep621(project)
    elif project is not None:
        reader.error("[project] is not a table")
    reader.dependency_groups(data.get("dependency-groups"))
    tool = data.get("tool")
    poetry = tool.get("poetry") if isinstance(tool, dict) else None
    if isinstance(poetry, dict):
        reader.poetry(poetry)
    return ParsedInput(
        path=shown_path,
        format=FORMAT_NAME,
        is_lock=False,
        dependencies=reader.dependencies,
        errors=reader.errors,
        skipped=reader.skipped,
        files=[shown_path],
        size=len(text.encode("utf-8")),
    )


@dataclass
class _Reader:
    shown: str
    lines: Sequence[str]

    def __post_init__(self) -> None:
        self.dependencies: list[Dependency] = []
        self.errors: list[ErrorEntry] = []
        self.skipped: list[str] = []

    def error(self, message: str, line: int | None = None) -> None:
        where = f"line {line}: " if line else ""
        self.errors.append(ErrorEntry(path=self.shown, message=where + message))

    def section_start(self, header: str) -> int:
        """0-based index of the line after a table header (0 when the header is not there)."""
        found = line_of(self.lines, re.compile(rf"^\s*\[{re.escape(header)}\]\s*(#.*)?$"))
        return found or 0

    # PEP 621 and PEP 735

    def pep621(self, project: dict[str, Any]) -> None:
        start = self.section_start("project")
        if "dependencies" in project.get("dynamic", ()):
            self.skipped.append(
                f"{self.shown}: [project] dependencies are dynamic (computed at build time); "
                "audit the requirements or lock file they come from"
            )
        self.pep508_list(project.get("dependencies", []), "[project] dependencies", None, start)
        optional = project.get("optional-dependencies", {})
        if not isinstance(optional, dict):
            self.error("[project] optional-dependencies is not a table")
            return
        opt_start = self.section_start("project.optional-dependencies") or start
        for extra, items in optional.items():
            where = f"[project.optional-dependencies] {extra}"
            self.pep508_list(items, where, str(extra), opt_start)

    def dependency_groups(self, groups: Any) -> None:
        if groups is None:
            return
        if not isinstance(groups, dict):
            self.error("[dependency-groups] is not a table")
            return
        start = self.section_start("dependency-groups")
        for group, items in groups.items():
            if not isinstance(items, list):
                self.error(f"[dependency-groups] {group} is not a list")
                continue
            # {include-group = "..."} entries point at groups audited where they are defined
            strings = [item for item in items if not isinstance(item, dict)]
            self.pep508_list(strings, f"[dependency-groups] {group}", str(group), start)

    def pep508_list(self, items: Any, where: str, group: str | None, start: int) -> None:
        if not isinstance(items, list):
            self.error(f"{where} is not a list of requirements")
            return
        for item in items:
            if not isinstance(item, str):
                self.error(f"{where}: {item!r} is not a requirement string")
                continue
            line = line_of(self.lines, quoted(item), start) or line_of(self.lines, quoted(item))
            self.pep508(item, group, line)

    def pep508(self, text: str, group: str | None, line: int | None) -> None:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            self.error(f"cannot read requirement {redact_url(text)!r}: {exc}", line)
            return
        name = canonical(requirement.name)
        marker = str(requirement.marker) if requirement.marker else None
        if requirement.url:
            self.dependencies.append(
                Dependency(
                    name=name,
                    source=self.shown,
                    line=line,
                    direct_url=redact_url(requirement.url),
                    marker=marker,
                    group=group,
                )
            )
            return
        version = exact_version(requirement.specifier)
        self.dependencies.append(
            Dependency(
                name=name,
                source=self.shown,
                line=line,
                version=version,
                specifier="" if version else str(requirement.specifier),
                marker=marker,
                group=group,
            )
        )

    # Poetry

    def poetry(self, poetry: dict[str, Any]) -> None:
        self.poetry_table(poetry.get("dependencies"), "tool.poetry.dependencies", None)
        self.poetry_table(poetry.get("dev-dependencies"), "tool.poetry.dev-dependencies", "dev")
        groups = poetry.get("group", {})
        if not isinstance(groups, dict):
            self.error("[tool.poetry.group] is not a table")
            return
        for group, table in groups.items():
            deps = table.get("dependencies") if isinstance(table, dict) else None
            self.poetry_table(deps, f"tool.poetry.group.{group}.dependencies", str(group))

    def poetry_table(self, table: Any, header: str, group: str | None) -> None:
        if table is None:
            return
        if not isinstance(table, dict):
            self.error(f"[{header}] is not a table")
            return
        start = self.section_start(header)
        for raw_name, value in table.items():
            if str(raw_name).lower() == "python":
                continue
            name = canonical(str(raw_name))
            line = line_of(self.lines, key_pattern(str(raw_name)), start)
            for constraint in value if isinstance(value, list) else [value]:
                self.poetry_dependency(name, constraint, header, group, line)

    def poetry_dependency(
        self, name: str, value: Any, header: str, group: str | None, line: int | None
    ) -> None:
        if isinstance(value, str):
            value = {"version": value}
        if not isinstance(value, dict):
            self.error(f"[{header}] {name}: {value!r} is not a version or a table", line)
            return
        if "path" in value:
            self.skipped.append(f"{self.shown}:{line}: {name} is a local path (own code)")
            return
        url = value.get("git") or value.get("url")
        if url is not None:
            self.dependencies.append(
                Dependency(
                    name=name,
                    source=self.shown,
                    line=line,
                    direct_url=redact_url(str(url)),
                    group=group,
                )
            )
            return
        try:
            specifier = poetry_specifier(str(value.get("version", "*")))
        except ValueError as exc:
            self.error(f"[{header}] {name}: {exc}", line)
            return
        version = (
            exact_version(parse_specifier(specifier))
            if SPECIFIER_ALTERNATIVES not in specifier
            else None
        )
        markers = value.get("markers")
        self.dependencies.append(
            Dependency(
                name=name,
                source=self.shown,
                line=line,
                version=version,
                specifier="" if version else specifier,
                marker=str(markers) if markers else None,
                group=group,
            )
        )


_POETRY_OPERATOR = re.compile(r"^(\^|~=|~|===|==|!=|>=|<=|>|<)?\s*(.*)$")


def poetry_specifier(constraint: str) -> str:
    """A Poetry version constraint as PEP 440 specifiers, alternatives (``||``) joined by
    `SPECIFIER_ALTERNATIVES`: ``^1.2`` -> ``>=1.2,<2``, ``~1.2`` -> ``>=1.2,<1.3``,
    ``1.2`` -> ``==1.2``, ``*`` -> any version (empty). `ValueError` when it cannot be read."""
    alternatives = []
    for alternative in constraint.split("||"):
        parts = [p.strip() for p in re.split(r",|\s+(?=[<>=!~^])", alternative) if p.strip()]
        specs = [spec for part in parts for spec in _poetry_part(part)]
        text = ",".join(specs)
        parse_specifier(text)
        alternatives.append(text)
    if any(a == "" for a in alternatives):
        return ""
    return SPECIFIER_ALTERNATIVES.join(alternatives)


def _poetry_part(part: str) -> list[str]:
    if part in ("*", ""):
        return []
    match = _POETRY_OPERATOR.match(part)
    operator, version = (match.group(1) or "", match.group(2).strip()) if match else ("", part)
    if operator == "^":
        return [f">={version}", f"<{_caret_upper(version)}"]
    if operator == "~":
        return [f">={version}", f"<{_tilde_upper(version)}"]
    if operator == "":
        return [f"=={version}"]
    return [f"{operator}{version}"]


def _release(version: str) -> list[int]:
    try:
        return list(Version(version).release)
    except InvalidVersion:
        raise ValueError(f"invalid version {version!r} in constraint") from None


def _caret_upper(version: str) -> str:
    release = _release(version)
    for index, part in enumerate(release):
        if part != 0 or index == len(release) - 1:
            return ".".join(str(p) for p in [*release[:index], part + 1])
    return ".".join(str(p) for p in release)  # pragma: no cover - the loop always returns


def _tilde_upper(version: str) -> str:
    release = _release(version)
    if len(release) == 1:
        return str(release[0] + 1)
    return f"{release[0]}.{release[1] + 1}"


FORMAT = InputFormat(name=FORMAT_NAME, is_lock=False, recognise=recognise, parse=parse)
