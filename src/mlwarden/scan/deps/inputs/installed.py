"""Installed environments: the distributions in a ``site-packages`` folder.

Each ``*.dist-info/METADATA`` (or ``*.egg-info/PKG-INFO``) is read as an e-mail style header
block for its ``Name`` and ``Version``; nothing in the environment is imported or executed, so
an environment of another interpreter, a container image's unpacked file system or a virtual
environment that would not even start can be audited. Not for: dependency files.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from mlwarden.report.model import ErrorEntry
from mlwarden.scan.deps.inputs import Dependency, ParsedInput
from mlwarden.scan.deps.inputs._text import canonical

FORMAT_NAME = "installed"
MAX_METADATA_HEAD_BYTES = 256 * 1024
"""Bytes of each METADATA file read: the headers come first, the long description after."""


def running_environment() -> list[Path]:
    """The folders on the running interpreter's ``sys.path`` that hold installed distributions,
    in import order."""
    folders = []
    for entry in sys.path:
        folder = Path(entry or os.getcwd())
        if folder.is_dir() and any(_metadata_files([folder])):
            folders.append(folder)
    return list(dict.fromkeys(folders))


def read_environment(folders: Iterable[Path], shown: str) -> ParsedInput:
    """The distributions installed in `folders`; a project found twice counts once, as the
    first folder has it (the one Python would import)."""
    folders = list(folders)
    result = ParsedInput(
        path=shown, format=FORMAT_NAME, is_lock=True, files=[str(f) for f in folders]
    )
    seen: set[str] = set()
    for folder in folders:
        if not folder.is_dir():
            result.errors.append(
                ErrorEntry(str(folder), "not a folder: give the environment's site-packages folder")
            )
    for metadata in _metadata_files(f for f in folders if f.is_dir()):
        dependency = _read_metadata(metadata, result)
        if dependency is not None and dependency.name not in seen:
            seen.add(dependency.name)
            result.dependencies.append(dependency)
    return result


def _metadata_files(folders: Iterable[Path]) -> Iterable[Path]:
    for folder in folders:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.endswith(".dist-info") and entry.is_dir():
                yield Path(entry.path) / "METADATA"
            elif entry.name.endswith(".egg-info"):
                yield Path(entry.path) / "PKG-INFO" if entry.is_dir() else Path(entry.path)


def _read_metadata(path: Path, result: ParsedInput) -> Dependency | None:
    try:
        with path.open("rb") as handle:
            head = handle.read(MAX_METADATA_HEAD_BYTES).decode("utf-8", errors="replace")
    except OSError as exc:
        result.errors.append(ErrorEntry(str(path), f"cannot read metadata: {exc.strerror or exc}"))
        return None
    from email.parser import HeaderParser  # only when an environment is audited

    headers = HeaderParser().parsestr(head.split("\n\n", 1)[0])
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        result.errors.append(ErrorEntry(str(path), "metadata without Name or Version"))
        return None
    line = next(
        (n for n, text in enumerate(head.splitlines(), 1) if text.startswith("Version:")), None
    )
    return Dependency(canonical(str(name).strip()), str(path), line, version=str(version).strip())
