"""``pylock.toml`` (PEP 751): the standard lock file format.

A file named ``pylock.toml`` or ``pylock.<name>.toml``, or any TOML file the user names that
declares a ``lock-version``. Packages from ``vcs`` have an unknown version; ``directory``
packages are skipped (the project's own code); a package without a version but with an
``archive`` or wheels takes its version from the file name where it can.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from mlwarden.report.model import ErrorEntry
from mlwarden.scan.deps.inputs import Dependency, InputFormat, ParsedInput
from mlwarden.scan.deps.inputs._lock import open_lock, package_tables
from mlwarden.scan.deps.inputs._text import canonical, redact_url

FORMAT_NAME = "pylock"
_NAME = re.compile(r"^pylock\.([^.]+\.)?toml$")
_LOCK_VERSION = re.compile(r"^\s*lock-version\s*=", re.MULTILINE)


def recognise(path: Path, head: str, explicit: bool) -> bool:
    """``pylock.toml`` / ``pylock.<name>.toml``, or a named TOML file with ``lock-version``."""
    if _NAME.match(path.name):
        return True
    return explicit and path.suffix == ".toml" and bool(_LOCK_VERSION.search(head))


def parse(disk_path: Path, shown_path: str) -> ParsedInput:
    """Every ``[[packages]]`` entry of a PEP 751 lock file."""
    text, data, result = open_lock(disk_path, shown_path, FORMAT_NAME)
    if "lock-version" not in data:
        result.errors.append(
            ErrorEntry(shown_path, "no lock-version: not a PEP 751 lock file, nothing was read")
        )
        return result
    for index, package, line in package_tables(data, "packages", text.splitlines()):
        name = package.get("name") if isinstance(package, dict) else None
        if not isinstance(name, str):
            result.errors.append(
                ErrorEntry(shown_path, f"package #{index + 1} (line {line}) has no name")
            )
            continue
        dependency = _dependency(package, canonical(name), shown_path, line)
        if dependency is None:
            result.skipped.append(f"{shown_path}:{line}: {name} is a local directory")
        elif dependency.version is None and dependency.direct_url is None:
            result.errors.append(
                ErrorEntry(shown_path, f"package {name} (line {line}) has no version")
            )
        else:
            result.dependencies.append(dependency)
    return result


def _dependency(
    package: dict[str, Any], name: str, shown: str, line: int | None
) -> Dependency | None:
    if "directory" in package:
        return None
    vcs = package.get("vcs")
    if isinstance(vcs, dict):
        url = str(vcs.get("url") or vcs.get("path") or "")
        commit = vcs.get("commit-id") or vcs.get("requested-revision")
        shown_url = f"{vcs.get('type', 'vcs')}+{redact_url(url)}" + (f"@{commit}" if commit else "")
        return Dependency(name, shown, line, direct_url=shown_url)
    version = package.get("version")
    if not isinstance(version, str):
        version = _version_from_files(package)
    return Dependency(name, shown, line, version=version, marker=_marker(package))


def _version_from_files(package: dict[str, Any]) -> str | None:
    candidates: list[Any] = [package.get("archive"), package.get("sdist")]
    wheels = package.get("wheels")
    if isinstance(wheels, list):
        candidates += wheels
    for item in candidates:
        if not isinstance(item, dict):
            continue
        filename = item.get("name") or urlsplit(str(item.get("url") or item.get("path") or "")).path
        filename = str(filename).rsplit("/", 1)[-1]
        try:
            if filename.endswith(".whl"):
                return str(parse_wheel_filename(filename)[1])
            return str(parse_sdist_filename(filename)[1])
        except (InvalidWheelFilename, InvalidSdistFilename):
            continue
    return None


def _marker(package: dict[str, Any]) -> str | None:
    marker = package.get("marker")
    return str(marker) if marker else None


FORMAT = InputFormat(name=FORMAT_NAME, is_lock=True, recognise=recognise, parse=parse)
