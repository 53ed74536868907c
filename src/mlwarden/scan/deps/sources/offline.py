"""Advisories from an OSV export on disk: a zip (such as the ``all.zip`` OSV publishes for each
ecosystem), a folder of OSV JSON files, or one JSON file (an advisory, a list of them, or an
API answer with ``vulns``).

Only PyPI entries about the packages asked for are parsed: each file is first searched for one
of their names, so a whole-ecosystem export is read in seconds. An entry that is not valid OSV
JSON is an error naming it; a zip that cannot be opened is an error saying to download it again;
nothing is ever a crash or a silent gap.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mlwarden.errors import UsageError
from mlwarden.report.model import ErrorEntry
from mlwarden.scan.deps.osv import MalformedAdvisory, parse_advisory
from mlwarden.scan.deps.sources import SourceResult

MAX_ENTRY_BYTES = 16 * 1024 * 1024
"""An OSV entry larger than this is an error (real entries are a few KiB)."""
MAX_SINGLE_FILE_BYTES = 1024 * 1024 * 1024
"""An export given as one JSON file may hold many advisories, up to this size."""
MAX_DATABASE_FILES = 2_000_000
SAMPLED_FILES = 3
"""An export none of whose first files is an OSV advisory is not an OSV export (an error,
rather than every package looking clean)."""
_NOT_OSV = (
    "does not look like an OSV export (none of its first files is an advisory with an id); "
    "no advisory was read"
)
"""Files of an export read at most; past that the export is an error."""


def load_offline(database: Path, names: Iterable[str]) -> SourceResult:
    """The advisories in the export at `database` that concern any of `names` (canonical).
    A `database` that does not exist is a `UsageError`."""
    names = set(names)
    shown = str(database)
    result = SourceResult(source=f"OSV export {shown}")
    if not database.exists():
        raise UsageError(
            f"OSV database {shown} does not exist; download an OSV export (for PyPI: the "
            "ecosystem's all.zip) and pass its path to --osv-db"
        )
    pattern = _name_pattern(names)
    single = not database.is_dir() and not _is_zip(database)
    files = 0
    try:
        entries = iter(_entries(database, result))
        sample = list(itertools.islice(entries, SAMPLED_FILES))
        if not single and sample and not any(_looks_like_osv(data) for _, data in sample):
            result.errors.append(ErrorEntry(shown, _NOT_OSV))
            return result
        for member, data in itertools.chain(sample, entries):
            files += 1
            if files > MAX_DATABASE_FILES:
                result.errors.append(
                    ErrorEntry(shown, f"more than {MAX_DATABASE_FILES} files; the rest not read")
                )
                break
            if single or (pattern is not None and pattern.search(data)):
                _read_entry(data, shown, member, names, result)
    except zipfile.BadZipFile as exc:
        result.errors.append(
            ErrorEntry(shown, f"not a readable zip archive ({exc}); download the OSV export again")
        )
        return result
    if files == 0 and not result.errors:
        result.errors.append(
            ErrorEntry(shown, "holds no OSV JSON files: no advisory was read, results incomplete")
        )
    return result


def _is_zip(path: Path) -> bool:
    return path.suffix.lower() == ".zip" or zipfile.is_zipfile(path)


def _looks_like_osv(data: bytes) -> bool:
    try:
        document = json.loads(data)
    except ValueError:
        return False
    return isinstance(document, dict) and isinstance(document.get("id"), str)


def _name_pattern(names: set[str]) -> re.Pattern[bytes] | None:
    """Finds a ``"name": "<project>"`` field for any spelling of the projects' names."""
    if not names:
        return None
    spellings = []
    for name in sorted(names):
        words = [re.escape(w) for w in re.split(r"[-_.]+", name)]
        spellings.append(r"[-_.]+".join(words))
    alternatives = "|".join(spellings)
    return re.compile(rf'"name"\s*:\s*"(?:{alternatives})"'.encode(), re.IGNORECASE)


def _entries(database: Path, result: SourceResult) -> Iterator[tuple[str | None, bytes]]:
    """(member name or None, bytes) of each JSON document of the export."""
    if database.is_dir():
        yield from _folder_entries(database, result)
    elif _is_zip(database):
        yield from _zip_entries(database, result)
    else:
        data = _read_file(database, result, MAX_SINGLE_FILE_BYTES)
        if data is not None:
            yield None, data


def _folder_entries(folder: Path, result: SourceResult) -> Iterator[tuple[str | None, bytes]]:
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(".json"):
                path = Path(root) / name
                data = _read_file(path, result, MAX_ENTRY_BYTES)
                if data is not None:
                    yield str(path.relative_to(folder)), data


def _zip_entries(path: Path, result: SourceResult) -> Iterator[tuple[str | None, bytes]]:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.is_dir() or not info.filename.lower().endswith(".json"):
                continue
            if info.file_size > MAX_ENTRY_BYTES:
                result.errors.append(
                    ErrorEntry(str(path), "entry larger than the size limit", info.filename)
                )
                continue
            try:
                with archive.open(info) as handle:
                    data = handle.read(MAX_ENTRY_BYTES + 1)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
                result.errors.append(
                    ErrorEntry(str(path), f"cannot read entry ({exc})", info.filename)
                )
                continue
            if len(data) > MAX_ENTRY_BYTES:
                result.errors.append(
                    ErrorEntry(str(path), "entry larger than the size limit", info.filename)
                )
                continue
            yield info.filename, data


def _read_file(path: Path, result: SourceResult, limit: int) -> bytes | None:
    try:
        if path.stat().st_size > limit:
            result.errors.append(
                ErrorEntry(str(path), f"OSV file larger than {limit // 2**20} MiB; not read")
            )
            return None
        return path.read_bytes()
    except OSError as exc:
        result.errors.append(ErrorEntry(str(path), f"cannot read OSV file: {exc.strerror or exc}"))
        return None


def _read_entry(
    data: bytes, shown: str, member: str | None, names: set[str], result: SourceResult
) -> None:
    try:
        document = json.loads(data)
    except ValueError as exc:
        result.errors.append(ErrorEntry(shown, f"not valid OSV JSON: {exc}", member))
        return
    for item in _documents(document):
        try:
            advisory = parse_advisory(item)
        except MalformedAdvisory as exc:
            result.errors.append(ErrorEntry(shown, f"malformed OSV entry: {exc}", member))
            continue
        if advisory is not None:
            result.advisories_read += 1
            result.add(advisory, names)


def _documents(document: Any) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and isinstance(document.get("vulns"), list):
        return list(document["vulns"])
    return [document]
