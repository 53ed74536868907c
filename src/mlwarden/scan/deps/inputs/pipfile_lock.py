"""``Pipfile.lock``: the exact versions pipenv resolved (``default`` and ``develop`` sections).

Entries with ``path`` or ``file`` are local (skipped); ``git`` / ``hg`` / ``svn`` / ``bzr``
entries have an unknown version.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mlwarden.report.model import ErrorEntry
from mlwarden.scan.deps.inputs import Dependency, InputFormat, InputProblem, ParsedInput
from mlwarden.scan.deps.inputs._text import (
    canonical,
    exact_version,
    line_of,
    parse_specifier,
    read_text,
    redact_url,
)

FORMAT_NAME = "Pipfile.lock"
SECTIONS = ("default", "develop")
_VCS = ("git", "hg", "svn", "bzr")


def recognise(path: Path, head: str, explicit: bool) -> bool:
    """A file named ``Pipfile.lock``, or a named JSON file with pipenv's ``_meta`` section."""
    if path.name == "Pipfile.lock":
        return True
    return explicit and head.lstrip().startswith("{") and '"_meta"' in head and '"default"' in head


def parse(disk_path: Path, shown_path: str) -> ParsedInput:
    """Every package of the ``default`` and ``develop`` sections."""
    text = read_text(disk_path)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputProblem(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputProblem("not a Pipfile.lock: the top level is not a JSON object")
    lines = text.splitlines()
    result = ParsedInput(
        path=shown_path,
        format=FORMAT_NAME,
        is_lock=True,
        files=[shown_path],
        size=len(text.encode("utf-8")),
    )
    for section in SECTIONS:
        packages = data.get(section, {})
        if not isinstance(packages, dict):
            result.errors.append(ErrorEntry(shown_path, f"section {section!r} is not an object"))
            continue
        start = (line_of(lines, re.compile(rf'^\s*"{section}"\s*:')) or 1) - 1
        for raw_name, entry in packages.items():
            line = line_of(lines, re.compile(rf'^\s*"{re.escape(raw_name)}"\s*:'), start)
            _add(result, canonical(raw_name), entry, section, line)
    return result


def _add(result: ParsedInput, name: str, entry: Any, section: str, line: int | None) -> None:
    shown = result.path
    if not isinstance(entry, dict):
        result.errors.append(ErrorEntry(shown, f"line {line}: {name} is not an object"))
        return
    if "path" in entry or "file" in entry:
        result.skipped.append(f"{shown}:{line}: {name} is a local path or file")
        return
    vcs = next((kind for kind in _VCS if kind in entry), None)
    if vcs is not None:
        ref = entry.get("ref")
        url = f"{vcs}+{redact_url(str(entry[vcs]))}" + (f"@{ref}" if ref else "")
        result.dependencies.append(Dependency(name, shown, line, direct_url=url, group=section))
        return
    pinned = entry.get("version")
    version = None
    if isinstance(pinned, str):
        try:
            version = exact_version(parse_specifier(pinned))
        except ValueError:
            version = None
    if version is None:
        result.errors.append(
            ErrorEntry(shown, f"line {line}: {name} has no exact version ({pinned!r})")
        )
        return
    marker = entry.get("markers")
    result.dependencies.append(
        Dependency(
            name,
            shown,
            line,
            version=version,
            marker=str(marker) if marker else None,
            group=section,
        )
    )


FORMAT = InputFormat(name=FORMAT_NAME, is_lock=True, recognise=recognise, parse=parse)
