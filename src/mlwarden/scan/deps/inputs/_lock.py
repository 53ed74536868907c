"""What the TOML lock readers share: walking an array of package tables with their lines."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mlwarden.scan.deps.inputs import ParsedInput
from mlwarden.scan.deps.inputs._text import header_lines, load_toml, read_text

_NAME = re.compile(r"^name\s*=")


def open_lock(
    disk_path: Path, shown_path: str, format_name: str
) -> tuple[str, dict[str, Any], ParsedInput]:
    """Read a TOML lock file: its text, its parsed tables, and an empty result to fill."""
    text = read_text(disk_path)
    data = load_toml(text)
    result = ParsedInput(
        path=shown_path,
        format=format_name,
        is_lock=True,
        files=[shown_path],
        size=len(text.encode("utf-8")),
    )
    return text, data, result


def package_tables(
    data: dict[str, Any], key: str, lines: Sequence[str]
) -> Iterator[tuple[int, Any, int | None]]:
    """(index, table, 1-based line of its ``name``) of each entry of the array `key`; the line
    is None when the file does not spell the array as ``[[key]]`` headers."""
    entries = data.get(key, [])
    if not isinstance(entries, list):
        return
    headers = header_lines(lines, f"[[{key}]]")
    known = len(headers) == len(entries)
    for index, entry in enumerate(entries):
        yield index, entry, (_name_line(lines, headers[index]) if known else None)


def _name_line(lines: Sequence[str], header: int) -> int:
    """1-based line of the table's ``name =`` key (the header's line when it has none)."""
    for offset, line in enumerate(lines[header + 1 :], start=header + 1):
        stripped = line.strip()
        if stripped.startswith("["):
            break
        if _NAME.match(stripped):
            return offset + 1
    return header + 1
