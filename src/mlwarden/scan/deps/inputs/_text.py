"""Shared helpers of the input readers: bounded text reading, line lookup, URL redaction."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from mlwarden.scan.deps.inputs import InputProblem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

MAX_DEPENDENCY_FILE_BYTES = 32 * 1024 * 1024
"""A dependency file larger than this is refused with an error (the largest real lock files
are a few MiB)."""

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def read_text(path: Path) -> str:
    """The file's text (UTF-8, BOM tolerated), or `InputProblem` saying why it cannot be read."""
    try:
        size = path.stat().st_size
        if size > MAX_DEPENDENCY_FILE_BYTES:
            raise InputProblem(
                f"file is {size / 2**20:.1f} MiB, more than the "
                f"{MAX_DEPENDENCY_FILE_BYTES // 2**20} MiB a dependency file may be; "
                "audit a smaller file or the installed environment instead"
            )
        with path.open("rb") as handle:
            data = handle.read(MAX_DEPENDENCY_FILE_BYTES + 1)
    except OSError as exc:
        raise InputProblem(f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > MAX_DEPENDENCY_FILE_BYTES:
        raise InputProblem("file grew past the size limit while being read")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputProblem(f"not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def load_toml(text: str) -> dict[str, Any]:
    """Parsed TOML, or `InputProblem` with the parser's message."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputProblem(f"not valid TOML: {exc}") from None


def redact_url(text: str) -> str:
    """`text` with the credentials of every URL in it shortened (first 4 and last 2 characters
    kept), so that a token in a requirements line never reaches a report."""

    def shorten(secret: str) -> str:
        return secret if len(secret) <= 8 else f"{secret[:4]}…{secret[-2:]}"

    def replace(match: re.Match[str]) -> str:
        user, sep, password = match["userinfo"].partition(":")
        hidden = f"{user}:{shorten(password)}" if sep else shorten(user)
        return f"{match['scheme']}{hidden}@"

    return _USERINFO.sub(replace, text)


def line_of(lines: Sequence[str], pattern: re.Pattern[str], start: int = 0) -> int | None:
    """1-based number of the first line at or after index `start` matching `pattern`."""
    for index in range(max(start, 0), len(lines)):
        if pattern.search(lines[index]):
            return index + 1
    return None


def header_lines(lines: Sequence[str], header: str) -> list[int]:
    """0-based indexes of the lines that are exactly the TOML table header `header`."""
    return [i for i, line in enumerate(lines) if line.strip() == header]


def quoted(text: str) -> re.Pattern[str]:
    """A pattern matching `text` inside single or double quotes."""
    escaped = re.escape(text)
    return re.compile(rf"[\"']{escaped}[\"']")


def key_pattern(name: str) -> re.Pattern[str]:
    """A pattern matching a TOML key `name` (bare or quoted, any spelling of the project name)
    at the start of a line."""
    words = re.split(r"[-_.]+", name)
    flexible = r"[-_.]+".join(re.escape(w) for w in words)
    return re.compile(rf"^\s*[\"']?{flexible}[\"']?\s*=", re.IGNORECASE)


def exact_version(specifiers: SpecifierSet) -> str | None:
    """The version a specifier set pins (one ``==X`` without wildcard, or ``===X``), else None."""
    specs = list(specifiers)
    if len(specs) != 1:
        return None
    spec = specs[0]
    if spec.operator == "===" or (spec.operator == "==" and not spec.version.endswith(".*")):
        return spec.version
    return None


def parse_specifier(text: str) -> SpecifierSet:
    """A PEP 440 specifier set, or `ValueError` with the reason."""
    try:
        return SpecifierSet(text)
    except InvalidSpecifier as exc:
        raise ValueError(f"invalid version specifier {text!r}: {exc}") from None


def canonical(name: str) -> str:
    """The canonical (PEP 503) form of a project name."""
    return str(canonicalize_name(name))
