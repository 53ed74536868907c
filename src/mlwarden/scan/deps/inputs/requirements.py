"""pip requirements files (``requirements*.txt``, ``*.in``, ``constraints*.txt``).

Reads the syntax pip reads: continuation lines, comments, ``-r`` / ``-c`` includes (relative to
the including file, each file read once, so include cycles end), per-requirement options such as
``--hash``, PEP 508 requirements with extras and markers, direct URLs and VCS references (audited
as "version unknown"), wheel and sdist URLs or paths (their file name gives the version) and
``-e`` local paths (skipped: they are the project's own code). A pin found in a constraints file
fixes the version of a requirement that names the same project. Nothing is fetched: an include
given as a URL is an error saying so.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from mlwarden.report.model import ErrorEntry
from mlwarden.scan.deps.inputs import Dependency, InputFormat, InputProblem, ParsedInput
from mlwarden.scan.deps.inputs._text import canonical, exact_version, read_text, redact_url

FORMAT_NAME = "requirements"
MAX_INCLUDE_DEPTH = 16
"""Nested ``-r`` / ``-c`` levels followed before the include is reported as an error."""
SNIFF_LINES = 200
"""Significant lines of a file of unknown name checked before calling it a requirements file."""

_NAME_PATTERNS = (
    re.compile(r"^(.*[-_.])?requirements([-_.].*)?\.(txt|in)$", re.IGNORECASE),
    re.compile(r"^(.*[-_.])?constraints([-_.].*)?\.txt$", re.IGNORECASE),
)
_NEVER = frozenset({"manifest.in"})
_COMMENT = re.compile(r"(^|\s+)#.*$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^(git|hg|svn|bzr)\+", re.IGNORECASE)
_ARCHIVE = re.compile(r"\.(whl|zip|tar\.gz|tgz|tar\.bz2|tar\.xz|tar)$", re.IGNORECASE)
_EGG = re.compile(r"(?:^|&)egg=([A-Za-z0-9][A-Za-z0-9._-]*)")
_INCLUDE_OPTIONS = {
    "-r": "requirement",
    "--requirement": "requirement",
    "-c": "constraint",
    "--constraint": "constraint",
}
_EDITABLE_OPTIONS = ("-e", "--editable")


def recognise(path: Path, head: str, explicit: bool) -> bool:
    """Requirements by name (``requirements*.txt``, ``*-requirements.in``, a ``.txt`` or ``.in``
    inside a ``requirements`` folder); another ``.txt`` / ``.in`` file, or any file the user
    named, only when its content reads as requirements."""
    name = path.name.lower()
    if name in _NEVER:
        return False
    if any(p.match(name) for p in _NAME_PATTERNS):
        return True
    in_folder = path.parent.name.lower() in ("requirements", "requirement", "reqs")
    if in_folder and name.endswith((".txt", ".in")):
        return True
    if explicit or name.endswith(".in"):
        return looks_like_requirements(head)
    return False


def looks_like_requirements(text: str) -> bool:
    """Whether every significant line of `text` (up to `SNIFF_LINES`) is a pip option or a
    requirement, and at least one is a requirement."""
    seen = 0
    requirements = 0
    for _, line in _logical_lines(text):
        if seen >= SNIFF_LINES:
            break
        seen += 1
        if line.startswith("-"):
            continue
        args, _ = _split_options(line)
        if _URL.match(args) or _parse_requirement(args) is not None:
            requirements += 1
        else:
            return False
    return requirements > 0


def parse(disk_path: Path, shown_path: str) -> ParsedInput:
    """Read a requirements file and every file it includes."""
    reader = _Reader(shown_root=shown_path, disk_root=disk_path)
    text = read_text(disk_path)
    reader.read(disk_path, shown_path, text, depth=0, constraint=False)
    result = ParsedInput(
        path=shown_path,
        format=FORMAT_NAME,
        is_lock=False,
        errors=reader.errors,
        skipped=reader.skipped,
        files=reader.files,
        size=len(text.encode("utf-8")),
    )
    result.dependencies = _apply_constraints(reader.requirements, reader.constraints)
    return result


@dataclass
class _Reader:
    shown_root: str
    disk_root: Path
    requirements: list[Dependency] = field(default_factory=list)
    constraints: list[Dependency] = field(default_factory=list)
    errors: list[ErrorEntry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    _seen: set[Path] = field(default_factory=set)

    def read(self, disk: Path, shown: str, text: str, *, depth: int, constraint: bool) -> None:
        self._seen.add(disk.resolve())
        self.files.append(shown)
        for number, line in _logical_lines(text):
            if line.startswith("-"):
                self._option(disk, shown, number, line, depth=depth, constraint=constraint)
            else:
                self._requirement(shown, number, line, constraint=constraint)

    def _option(
        self, disk: Path, shown: str, number: int, line: str, *, depth: int, constraint: bool
    ) -> None:
        option, value = _option_value(line)
        if option in _INCLUDE_OPTIONS:
            kind = _INCLUDE_OPTIONS[option]
            self._include(disk, shown, number, value, kind, depth=depth, constraint=constraint)
        elif option in _EDITABLE_OPTIONS:
            self._editable(shown, number, value, constraint=constraint)

    def _include(
        self,
        disk: Path,
        shown: str,
        number: int,
        target: str,
        kind: str,
        *,
        depth: int,
        constraint: bool,
    ) -> None:
        where = f"line {number}"
        if not target:
            self._error(shown, f"{where}: -{kind[0]} names no file")
            return
        if _URL.match(target):
            self._error(
                shown,
                f"{where}: the {kind} file {redact_url(target)} is a URL and is never fetched; "
                "download it and audit the local copy",
            )
            return
        child_disk = disk.parent / target
        child_shown = os.path.normpath(Path(shown).parent / target)
        if child_disk.resolve() in self._seen:
            self.skipped.append(f"{child_shown}: already read (include cycle or repeat)")
            return
        if depth + 1 > MAX_INCLUDE_DEPTH:
            self._error(
                shown,
                f"{where}: includes nest deeper than {MAX_INCLUDE_DEPTH} levels; "
                f"{child_shown} was not read",
            )
            return
        try:
            text = read_text(child_disk)
        except InputProblem as exc:
            self._error(child_shown, f"included from {shown} {where}: {exc}")
            return
        as_constraint = constraint or kind == "constraint"
        self.read(child_disk, child_shown, text, depth=depth + 1, constraint=as_constraint)

    def _editable(self, shown: str, number: int, value: str, *, constraint: bool) -> None:
        if _URL.match(value) and not value.lower().startswith("file:"):
            self._requirement(shown, number, value, constraint=constraint)
        else:
            self.skipped.append(f"{shown}:{number}: editable local path {value!r} (own code)")

    def _requirement(self, shown: str, number: int, line: str, *, constraint: bool) -> None:
        args, _ = _split_options(line)
        try:
            dependency = _dependency(args, shown, number)
        except ValueError as exc:
            self._error(shown, f"line {number}: cannot read requirement: {exc}")
            return
        if dependency is None:
            self.skipped.append(f"{shown}:{number}: local path {redact_url(args)!r}")
            return
        (self.constraints if constraint else self.requirements).append(dependency)

    def _error(self, path: str, message: str) -> None:
        self.errors.append(ErrorEntry(path=path, message=message))


def _dependency(args: str, shown: str, number: int) -> Dependency | None:
    """The dependency a requirement line names; None for a local path that is not an archive."""
    if _URL.match(args):
        return _url_dependency(args, None, shown, number)
    requirement = _parse_requirement(args)
    if requirement is None or (not requirement.url and _ARCHIVE.search(requirement.name)):
        if _looks_like_path(args):
            filename = Path(args.split(";", maxsplit=1)[0].strip()).name
            return _archive_dependency(filename, None, shown, number)
        raise ValueError(redact_url(args))
    name = canonical(requirement.name)
    marker = str(requirement.marker) if requirement.marker else None
    if requirement.url:
        return _url_dependency(requirement.url, name, shown, number, marker=marker)
    version = exact_version(requirement.specifier)
    return Dependency(
        name=name,
        source=shown,
        line=number,
        version=version,
        specifier="" if version else str(requirement.specifier),
        marker=marker,
    )


def _url_dependency(
    url: str, name: str | None, shown: str, number: int, marker: str | None = None
) -> Dependency | None:
    parts = urlsplit(url.split("+", 1)[1] if _is_vcs(url) else url)
    filename = unquote(parts.path.rsplit("/", 1)[-1])
    if not _is_vcs(url) and _ARCHIVE.search(filename):
        archive = _archive_dependency(filename, name, shown, number, url=url)
        if archive is not None:
            return archive
    if name is None:
        egg = _EGG.search(parts.fragment)
        if egg is None:
            raise ValueError(
                f"{redact_url(url)} names no project; write it as 'name @ {redact_url(url)}' "
                "or add '#egg=name'"
            )
        name = canonical(egg.group(1))
    return Dependency(
        name=name, source=shown, line=number, direct_url=redact_url(url), marker=marker
    )


def _archive_dependency(
    filename: str, name: str | None, shown: str, number: int, url: str | None = None
) -> Dependency | None:
    """A wheel or sdist names its project and exact version in its file name."""
    try:
        if filename.lower().endswith(".whl"):
            project, version, _, _ = parse_wheel_filename(filename)
        else:
            project, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        if url is not None and name is not None:
            return Dependency(name=name, source=shown, line=number, direct_url=redact_url(url))
        return None
    return Dependency(
        name=canonical(name or project), source=shown, line=number, version=str(version)
    )


def _apply_constraints(
    requirements: list[Dependency], constraints: list[Dependency]
) -> list[Dependency]:
    """Requirements with the pins of the constraints files applied: a constraint only matters
    for a project that is required, and its pin (with its own location) replaces a range."""
    pins = {c.name: c for c in constraints if c.pinned}
    result = []
    for requirement in requirements:
        pin = pins.get(requirement.name)
        if pin is not None and not requirement.pinned and requirement.direct_url is None:
            result.append(pin)
        else:
            result.append(requirement)
    return result


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each non-empty line, continuations joined as pip joins
    them (a trailing backslash glues the next line on), comments cut."""
    result: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        if raw.endswith("\\") and not _COMMENT.match(raw):
            pending.append(raw[:-1])
            continue
        pending.append(raw)
        _add_line(result, start, "".join(pending))
        pending = []
    if pending:
        _add_line(result, start, "".join(pending))
    return result


def _add_line(result: list[tuple[int, str]], number: int, raw: str) -> None:
    line = _COMMENT.sub("", raw).strip()
    if line:
        result.append((number, line))


def _split_options(line: str) -> tuple[str, str]:
    """The requirement part of a line and its trailing per-requirement options (``--hash``)."""
    tokens = line.split()
    for index, token in enumerate(tokens):
        if token.startswith("-"):
            return " ".join(tokens[:index]), " ".join(tokens[index:])
    return line, ""


def _option_value(line: str) -> tuple[str, str]:
    """An option line as (option, value): ``-r a.txt``, ``-ra.txt``, ``--requirement=a.txt``."""
    head, _, rest = line.partition(" ")
    rest = rest.strip()
    if head.startswith("--"):
        option, eq, value = head.partition("=")
        return option, value if eq else rest
    if len(head) > 2:
        return head[:2], head[2:]
    return head, rest


def _parse_requirement(text: str) -> Requirement | None:
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def _looks_like_path(text: str) -> bool:
    first = text.split(";", maxsplit=1)[0].strip()
    return (
        first.startswith((".", "/", "~"))
        or "/" in first
        or "\\" in first
        or bool(_ARCHIVE.search(first))
    )


def _is_vcs(url: str) -> bool:
    return bool(re.match(r"^(git|hg|svn|bzr)\+", url, re.IGNORECASE))


FORMAT = InputFormat(name=FORMAT_NAME, is_lock=False, recognise=recognise, parse=parse)
