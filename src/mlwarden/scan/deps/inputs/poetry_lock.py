"""``poetry.lock``: the exact version of every package Poetry resolved.

Packages whose ``source`` is a local ``directory`` or ``file`` are the project's own code and
skipped; ``git`` and ``url`` sources have an unknown version (the lock records the version the
repository declared, not a release anyone audited).
"""

from __future__ import annotations

from pathlib import Path

from mlwarden.report.model import ErrorEntry
from mlwarden.scan.deps.inputs import Dependency, InputFormat, ParsedInput
from mlwarden.scan.deps.inputs._lock import open_lock, package_tables
from mlwarden.scan.deps.inputs._text import canonical, redact_url

FORMAT_NAME = "poetry.lock"


def recognise(path: Path, head: str, explicit: bool) -> bool:
    """A file named ``poetry.lock``."""
    return path.name == "poetry.lock"


def parse(disk_path: Path, shown_path: str) -> ParsedInput:
    """Every ``[[package]]`` of a Poetry lock file."""
    text, data, result = open_lock(disk_path, shown_path, FORMAT_NAME)
    for index, package, line in package_tables(data, "package", text.splitlines()):
        name = package.get("name") if isinstance(package, dict) else None
        version = package.get("version") if isinstance(package, dict) else None
        if not isinstance(name, str) or not isinstance(version, str):
            result.errors.append(
                ErrorEntry(shown_path, f"package #{index + 1} (line {line}) has no name or version")
            )
            continue
        source = package.get("source")
        kind = source.get("type") if isinstance(source, dict) else None
        if kind in ("directory", "file"):
            result.skipped.append(f"{shown_path}:{line}: {name} is a local {kind} (own code)")
            continue
        group = _group(package)
        if kind in ("git", "url") and isinstance(source, dict):
            url = redact_url(str(source.get("url", "")))
            reference = source.get("resolved_reference") or source.get("reference")
            shown_url = f"{kind}+{url}@{reference}" if reference else f"{kind}+{url}"
            result.dependencies.append(
                Dependency(canonical(name), shown_path, line, direct_url=shown_url, group=group)
            )
            continue
        result.dependencies.append(
            Dependency(canonical(name), shown_path, line, version=version, group=group)
        )
    return result


def _group(package: dict[str, object]) -> str | None:
    groups = package.get("groups")
    if isinstance(groups, list) and groups:
        return ",".join(str(g) for g in groups)
    category = package.get("category")
    return str(category) if category else None


FORMAT = InputFormat(name=FORMAT_NAME, is_lock=True, recognise=recognise, parse=parse)
