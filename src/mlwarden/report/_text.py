"""Wording and value conversions shared by the renderers, so every format says the same thing.

Only formatting lives here: the verdict sentence, severity counts as words, evidence values as
text or JSON-safe data, clipping of long hostile strings. Not for: deciding anything (that is
`report.model`) nor escaping for one target format (each renderer escapes for its own syntax).
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from mlwarden.findings import Severity
from mlwarden.report.model import Report

SEVERITIES_WORST_FIRST: tuple[Severity, ...] = tuple(sorted(Severity, key=lambda s: -s.rank))

PRIMARY_EVIDENCE_KEYS: tuple[str, ...] = ("call", "global", "callable", "code", "template")
"""Evidence keys shown first and highlighted: what would run on load."""

ELLIPSIS = "…"


_INVISIBLE_CODEPOINTS = frozenset(
    [
        *range(0x00, 0x20),
        0x7F,
        *range(0x80, 0xA0),
        0x061C,
        0x200E,
        0x200F,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
        0xFEFF,
    ]
) - {0x09, 0x0A}
"""Control, bidirectional and zero-width-no-break characters: hostile names use them to rewrite
a terminal or to make text read differently from what it is (Trojan Source)."""


def printable(text: str) -> str:
    """`text` with control and bidi characters shown as ``\\xNN`` / ``\\uNNNN`` escapes."""
    if not any(ord(ch) in _INVISIBLE_CODEPOINTS for ch in text):
        return text
    return "".join(_escape_invisible(ch) for ch in text)


def _escape_invisible(ch: str) -> str:
    code = ord(ch)
    if code not in _INVISIBLE_CODEPOINTS:
        return ch
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def encodable(text: str) -> str:
    """`text` made writable as UTF-8: lone surrogates (undecodable file names) become escapes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def clip(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars` characters, marked with an ellipsis when cut."""
    if len(text) <= max_chars:
        return text
    return text[: max(max_chars - 1, 0)] + ELLIPSIS


def counts_text(counts: Mapping[Severity, int]) -> str:
    """``"1 critical, 2 medium"`` (worst first, zeros left out) or ``"none"``."""
    parts = [f"{counts[s]} {s.value}" for s in SEVERITIES_WORST_FIRST if counts.get(s, 0)]
    return ", ".join(parts) if parts else "none"


def plural(count: int, word: str) -> str:
    """``"1 finding"``, ``"2 findings"``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def verdict_text(report: Report) -> str:
    """One sentence a person reads last: the verdict and why, against the report's gate."""
    verdict = report.verdict()
    gate = verdict.fail_on.value if verdict.fail_on else None
    errors = plural(len(report.errors), "error")
    if verdict.status == "fail":
        failing = [f.severity for f in report.failing(verdict.fail_on)] if verdict.fail_on else []
        by_severity = {s: failing.count(s) for s in Severity}
        text = (
            f"FAIL: {plural(verdict.failing, 'finding')} at or above {gate}"
            f" ({counts_text(by_severity)})"
        )
        if report.errors:
            text += f"; {errors} also left part of the input unscanned"
        return text + "."
    if verdict.status == "incomplete":
        return (
            f"INCOMPLETE: {errors} left part of the input unscanned; {_below_gate(report, gate)}."
        )
    if verdict.status == "nothing assessed":
        return "NOTHING ASSESSED: no check found anything to assess."
    return f"PASS: {_below_gate(report, gate)}."


def _below_gate(report: Report, gate: str | None) -> str:
    total = len(report.findings)
    if gate is None:
        return f"{plural(total, 'finding')}, no gate set"
    if total == 0:
        return "no findings"
    return f"no finding at or above {gate} ({plural(total, 'finding')} below it)"


def evidence_items(evidence: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """Evidence as ``(key, value as text, primary)`` rows: what would run first, then by key."""
    by_key = {str(k): v for k, v in evidence.items()}
    primary = [k for k in PRIMARY_EVIDENCE_KEYS if k in by_key]
    rest = sorted(k for k in by_key if k not in primary)
    return [(key, value_text(by_key[key]), key in primary) for key in [*primary, *rest]]


def value_text(value: Any) -> str:
    """An evidence or metric value as one readable string (strings as they are, rest as JSON)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    return json.dumps(jsonable(value), ensure_ascii=False, sort_keys=True)


def jsonable(value: Any) -> Any:
    """`value` as plain JSON data with a stable key order; anything exotic becomes its text.

    Non-finite floats become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` because
    strict JSON has no such numbers and CI parsers reject them.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, Iterable):
        try:
            return [jsonable(v) for v in value]
        except TypeError:  # iterable in type only, such as a 0-d numpy array
            return _scalar(value)
    return _scalar(value)


def _scalar(value: Any) -> Any:
    # numpy scalars and similar expose item(); anything else is shown as text.
    item = getattr(value, "item", None)
    if callable(item):
        try:
            converted = item()
        except (TypeError, ValueError):
            return str(value)
        if isinstance(converted, (bool, int, float, str)):
            return jsonable(converted)
    return str(value)
