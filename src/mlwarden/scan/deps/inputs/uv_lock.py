"""``uv.lock``: the exact version of every package uv resolved, for every platform.

The project itself and local packages (``editable``, ``virtual``, ``directory``, ``path``
sources) are skipped; ``git`` and ``url`` sources have an unknown version.
"""

from __future__ import annotations

from pathlib import Path

from mlwarden.report.model import ErrorEntry
from mlwarden.scan.deps.inputs import Dependency, InputFormat, ParsedInput
from mlwarden.scan.deps.inputs._lock import open_lock, package_tables
from mlwarden.scan.deps.inputs._text import canonical, redact_url

FORMAT_NAME = "uv.lock"
_LOCAL_SOURCES = ("editable", "virtual", "directory", "path")


def recognise(path: Path, head: str, explicit: bool) -> bool:
    """A file named ``uv.lock``."""
    return path.name == "uv.lock"


def parse(disk_path: Path, shown_path: str) -> ParsedInput:
    """Every ``[[package]]`` of a uv lock file."""
    text, data, result = open_lock(disk_path, shown_path, FORMAT_NAME)
    for index, package, line in package_tables(data, "package", text.splitlines()):
        name = package.get("name") if isinstance(package, dict) else None
        if not isinstance(name, str):
            result.errors.append(
                ErrorEntry(shown_path, f"package #{index + 1} (line {line}) has no name")
            )
            continue
        source = package.get("source", {})
        source = source if isinstance(source, dict) else {}
        local = next((kind for kind in _LOCAL_SOURCES if kind in source), None)
        if local is not None:
            result.skipped.append(f"{shown_path}:{line}: {name} is a local {local} package")
            continue
        url = source.get("git") or source.get("url")
        version = package.get("version")
        if url is not None:
            kind = "git" if "git" in source else "url"
            result.dependencies.append(
                Dependency(
                    canonical(name), shown_path, line, direct_url=f"{kind}+{redact_url(str(url))}"
                )
            )
        elif isinstance(version, str):
            result.dependencies.append(
                Dependency(canonical(name), shown_path, line, version=version)
            )
        else:
            result.errors.append(
                ErrorEntry(shown_path, f"package {name} (line {line}) has no version")
            )
    return result


FORMAT = InputFormat(name=FORMAT_NAME, is_lock=True, recognise=recognise, parse=parse)
