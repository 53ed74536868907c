"""Dependency inputs: one module per file format, behind a small registry.

Each module names one `InputFormat` as ``FORMAT``: how a file of that format is recognised (by
its name, then by its content) and how it is read into `Dependency` values. Adding a format means
adding a module and naming it in `INPUT_MODULES`. Everything here reads text or metadata only;
nothing is imported, built or executed. Not for: matching advisories (`mlwarden.scan.deps.osv`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlwarden.report.model import ErrorEntry

INPUT_MODULES: tuple[str, ...] = (
    "mlwarden.scan.deps.inputs.pyproject",
    "mlwarden.scan.deps.inputs.poetry_lock",
    "mlwarden.scan.deps.inputs.uv_lock",
    "mlwarden.scan.deps.inputs.pipfile_lock",
    "mlwarden.scan.deps.inputs.pylock",
    "mlwarden.scan.deps.inputs.requirements",
)
"""Modules that each define one file format, tried in this order (specific names first, the
content-sniffed requirements format last). Installed environments are read by
`mlwarden.scan.deps.inputs.installed`, which is not a file format."""


SPECIFIER_ALTERNATIVES = " || "
"""Separates alternative specifier sets in `Dependency.specifier`: any of them may be chosen."""


@dataclass(frozen=True)
class Dependency:
    """One package a project depends on, as one file states it."""

    name: str
    """Canonical project name (PEP 503: lower case, runs of ``-_.`` as ``-``)."""
    source: str
    """The file it was read from, as the user named it (or under the folder they named)."""
    line: int | None
    """1-based line in `source`, when known."""
    version: str | None = None
    """The exact version: pinned (``==``), locked or installed. None when only a range is known."""
    specifier: str = ""
    """The PEP 440 version specifiers when not pinned (``>=2.0,<3``); empty means any version.
    Alternatives (Poetry's ``||``) are joined by `SPECIFIER_ALTERNATIVES`."""
    direct_url: str | None = None
    """A URL or VCS reference (credentials redacted): its version is unknown."""
    marker: str | None = None
    """The environment marker, kept as written; markers are not evaluated, so every platform's
    dependencies are audited."""
    group: str | None = None
    """The extra, dependency group or lock section it belongs to, when there is one."""

    @property
    def pinned(self) -> bool:
        """Whether the exact version is known."""
        return self.version is not None


@dataclass
class ParsedInput:
    """What one dependency file said, including what could not be read."""

    path: str
    format: str
    """``requirements``, ``pyproject``, ``poetry.lock``, ``uv.lock``, ``Pipfile.lock``,
    ``pylock`` or ``installed``."""
    is_lock: bool
    """Whether the file fixes exact versions for a whole environment (a lock or an installed
    environment), so that the ranges of manifests beside it are resolved by it."""
    dependencies: list[Dependency] = field(default_factory=list)
    errors: list[ErrorEntry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Entries deliberately not audited (local paths, the project itself), each with why."""
    files: list[str] = field(default_factory=list)
    """Every file read for this input (a requirements file and the files it includes)."""
    size: int | None = None
    """Size of the file in bytes."""


class InputProblem(Exception):
    """A dependency file that cannot be read at all; the message says why and what to do."""


Recogniser = Callable[[Path, str, bool], bool]
"""``recognise(path, head, explicit)``: `head` is the file's first few KiB as text, `explicit`
says the user named this file rather than a folder holding it."""
Parser = Callable[[Path, str], ParsedInput]
"""``parse(disk_path, shown_path)``; raises `InputProblem` when the file is unreadable."""


@dataclass(frozen=True)
class InputFormat:
    """One dependency file format."""

    name: str
    is_lock: bool
    recognise: Recogniser
    parse: Parser


_formats: list[InputFormat] | None = None


def input_formats() -> list[InputFormat]:
    """Every registered format, in recognition order (modules imported on first use)."""
    global _formats
    if _formats is None:
        _formats = [importlib.import_module(m).FORMAT for m in INPUT_MODULES]
    return _formats


def recognise(path: Path, head: str, *, explicit: bool) -> InputFormat | None:
    """The format of the file at `path` (whose first KiB are `head`), or None."""
    for fmt in input_formats():
        if fmt.recognise(path, head, explicit):
            return fmt
    return None
