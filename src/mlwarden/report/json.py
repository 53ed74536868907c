"""The versioned JSON report: what CI jobs and other tools parse.

Its shape is the contract in ``report/schema/report.schema.json`` and ``docs/report-schema.md``
(version `REPORT_SCHEMA_VERSION`); keys come in a fixed order and lists in a stable order, so the
same report always gives the same text. Not for: people (console, HTML) or GitHub code scanning
(SARIF).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from mlwarden.findings import Finding, Location, Severity
from mlwarden.report._text import encodable, jsonable, verdict_text
from mlwarden.report.interface import Renderer
from mlwarden.report.model import (
    REPORT_SCHEMA_VERSION,
    ErrorEntry,
    NotAssessed,
    Report,
    RiskSummary,
    ScannedFile,
    finding_id,
)

TOOL_NAME = "mlwarden"


class JsonRenderer(Renderer):
    """The report as one JSON document following the published schema."""

    name: ClassVar[str] = "json"
    extension: ClassVar[str] = ".json"
    media_type: ClassVar[str] = "application/json"

    def render(self, report: Report, *, color: bool = False) -> str:
        """Indented JSON text ending with a newline, one line per scanned file; `color` is
        ignored."""
        return encodable(_dumps(report_document(report))) + "\n"


ONE_LINE_LISTS = frozenset({"files"})
"""Top-level lists written one item per line: a scan of a large folder lists thousands of
files, and Python's indenting JSON encoder is pure Python (5x slower than the compact one)."""


def _dumps(document: dict[str, Any]) -> str:
    """`document` indented by two spaces, except the items of `ONE_LINE_LISTS`."""

    compact = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
    indented = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=2).encode
    parts = []
    for key, value in document.items():
        if key in ONE_LINE_LISTS and value:
            items = ",\n".join(f"    {_flat(item) or compact(item)}" for item in value)
            text = f"[\n{items}\n  ]"
        else:
            # Strings in JSON text never hold a raw newline, so this only re-indents.
            text = indented(value).replace("\n", "\n  ")
        parts.append(f"  {compact(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}" if parts else "{}"


def _flat(item: dict[str, Any]) -> str | None:
    """`item` as compact JSON if every value is a string, an integer or null, else None.

    Exactly what the C encoder writes for such a dict, without building an encoder per item
    (most of the cost of a list of 100,000 small entries); anything else goes to the encoder.
    """
    fields = []
    for key, value in item.items():
        if isinstance(value, str):
            text = _STRING(value)
        elif value is None:
            text = "null"
        elif type(value) is int:
            text = int.__repr__(value)
        else:
            return None
        fields.append(f"{_STRING(key)}: {text}")
    return "{" + ", ".join(fields) + "}"


_STRING = json.encoder.encode_basestring  # the C function when available
"""A string as JSON text, non-ASCII kept as is (``ensure_ascii=False``)."""


def report_document(report: Report) -> dict[str, Any]:
    """The report as JSON data, in the key order the schema documents."""
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "tool": {"name": TOOL_NAME, "version": report.tool_version},
        "created": report.created,
        "duration_s": round(report.duration_s, 3),
        "inputs": list(report.inputs),
        "verdict": _verdict(report),
        "summary": _summary(report),
        "scorecard": [_scorecard_row(row) for row in report.scorecard()],
        "findings": [finding_document(f) for f in report.sorted_findings()],
        "files": [_file(s) for s in report.sorted_scanned()],
        "errors": [_error(e) for e in sorted(report.errors, key=_error_key)],
        "not_assessed": [_not_assessed(n) for n in sorted(report.not_assessed, key=_na_key)],
        "checks_run": sorted(report.checks_run),
        "metrics": jsonable(report.metrics),
    }


def finding_document(finding: Finding) -> dict[str, Any]:
    """One finding as JSON data; `id` is stable across runs for the same rule, place and title."""
    return {
        "id": finding_id(finding),
        "risk": finding.risk.value,
        "risk_title": finding.risk.title,
        "check": finding.check,
        "rule": finding.rule,
        "severity": finding.severity.value,
        "title": finding.title,
        "detail": finding.detail,
        "location": _location(finding.location),
        "evidence": jsonable(finding.evidence),
        "remediation": finding.remediation,
    }


def _severity_counts(counts: dict[Severity, int]) -> dict[str, int]:
    return {s.value: counts.get(s, 0) for s in sorted(Severity, key=lambda s: -s.rank)}


def _verdict(report: Report) -> dict[str, Any]:
    verdict = report.verdict()
    return {
        "status": verdict.status,
        "fail_on": verdict.fail_on.value if verdict.fail_on else None,
        "exit_code": verdict.exit_code,
        "failing": verdict.failing,
        "text": verdict_text(report),
    }


def _summary(report: Report) -> dict[str, Any]:
    worst = report.max_severity()
    return {
        "counts": _severity_counts(report.counts()),
        "total": len(report.findings),
        "max_severity": worst.value if worst else None,
        "files_scanned": report.files_scanned(),
        "items_scanned": len(report.scanned),
        "recognised": len(report.recognised_files()),
        "errors": len(report.errors),
    }


def _scorecard_row(row: RiskSummary) -> dict[str, Any]:
    return {
        "risk": row.risk.value,
        "title": row.risk.title,
        "url": row.risk.url,
        "assessed": row.assessed,
        "status": row.status,
        "worst": row.worst.value if row.worst else None,
        "counts": _severity_counts(dict(row.counts)),
        "checks": list(row.checks),
        "reasons": list(row.reasons),
    }


def _location(location: Location | None) -> dict[str, Any] | None:
    if location is None:
        return None
    return {
        "path": location.path,
        "member": location.member,
        "offset": location.offset,
        "line": location.line,
        "column": location.column,
    }


def _file(scanned: ScannedFile) -> dict[str, Any]:
    return {
        "path": scanned.path,
        "member": scanned.member,
        "format": scanned.format,
        "size": scanned.size,
        "severity": scanned.severity.value if scanned.severity else None,
    }


def _error(error: ErrorEntry) -> dict[str, Any]:
    return {"path": error.path, "member": error.member, "message": error.message}


def _error_key(error: ErrorEntry) -> tuple[str, str, str]:
    return (error.path, error.member or "", error.message)


def _not_assessed(entry: NotAssessed) -> dict[str, Any]:
    return {
        "check": entry.check,
        "risks": [r.value for r in entry.risks],
        "reason": entry.reason,
    }


def _na_key(entry: NotAssessed) -> tuple[str, str]:
    return (entry.check, entry.reason)
