"""SARIF 2.1.0 for GitHub code scanning and any other SARIF consumer.

One run, one rule per distinct rule id, one result per finding. Model files are binary: a result
on one has no region but names the archive member chain as a logical location and carries the
byte offset in its properties. GitHub keeps at most 25,000 results per run, so only the worst
25,000 are written and the run says so. Not for: the full inventory of scanned files (that is the
JSON report) nor people (HTML, console).
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, ClassVar
from urllib.parse import quote

from mlwarden.findings import Finding, Severity
from mlwarden.report._text import clip, encodable, jsonable, verdict_text
from mlwarden.report.interface import Renderer
from mlwarden.report.json import TOOL_NAME
from mlwarden.report.model import Report, finding_id

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
INFORMATION_URI = "https://github.com/mlwarden/mlwarden"
FINGERPRINT_KEY = "mlwardenFindingId/v1"

MAX_RESULTS_PER_RUN = 25_000
"""GitHub code scanning rejects runs with more results than this."""
MAX_EVIDENCE_VALUE_CHARS = 2_000
"""Evidence strings can be whole templates or code objects; SARIF files have a size limit too."""
MAX_MESSAGE_CHARS = 1_000
PRETTY_MAX_RESULTS = 1_000

SECURITY_SEVERITY: dict[Severity, str] = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "1.0",
}
"""GitHub's ``security-severity`` score (CVSS-like, as text) that ranks alerts."""

LEVEL: dict[Severity, str] = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}


class SarifRenderer(Renderer):
    """The report as a SARIF 2.1.0 log with one run."""

    name: ClassVar[str] = "sarif"
    extension: ClassVar[str] = ".sarif"
    media_type: ClassVar[str] = "application/sarif+json"

    def render(self, report: Report, *, color: bool = False) -> str:
        """SARIF JSON ending with a newline, indented unless large; `color` is ignored."""
        log = sarif_log(report)
        # json's indenting encoder is pure Python and takes seconds on 25,000 results; a large
        # log is read by machines, so it is written compactly by the C encoder instead.
        indent = 2 if len(log["runs"][0]["results"]) <= PRETTY_MAX_RESULTS else None
        text = json.dumps(log, indent=indent, ensure_ascii=False, allow_nan=False)
        return encodable(text) + "\n"


def sarif_log(report: Report) -> dict[str, Any]:
    """The SARIF log as JSON data."""
    findings = report.sorted_findings()
    kept = findings[:MAX_RESULTS_PER_RUN]
    rules, rule_index = _rules(kept)
    fallback = report.inputs[0] if report.inputs else None
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": TOOL_NAME,
                "version": report.tool_version,
                "semanticVersion": report.tool_version,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }
        },
        "invocations": [_invocation(report, len(findings), len(kept))],
        "results": [_result(f, rule_index[f.rule], fallback) for f in kept],
        "columnKind": "unicodeCodePoints",
        "properties": _run_properties(report, len(findings), len(kept)),
    }
    return {"$schema": SARIF_SCHEMA_URI, "version": SARIF_VERSION, "runs": [run]}


def _rules(findings: list[Finding]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    # Findings come worst first, so the first finding of a rule is its worst: it names the rule.
    first: dict[str, Finding] = {}
    for finding in findings:
        first.setdefault(finding.rule, finding)
    ordered = sorted(first)
    return [_rule(first[rule_id]) for rule_id in ordered], {r: i for i, r in enumerate(ordered)}


def _rule(example: Finding) -> dict[str, Any]:
    risk = example.risk
    summary = clip(example.title, MAX_MESSAGE_CHARS)
    help_text = example.remediation or "Review the finding before loading the file."
    return {
        "id": example.rule,
        "name": _rule_name(example.rule),
        "shortDescription": {"text": summary},
        "fullDescription": {"text": clip(example.detail or example.title, MAX_MESSAGE_CHARS)},
        "helpUri": risk.url,
        "help": {
            "text": f"{help_text}\n\nOWASP {risk.value}: {risk.title} ({risk.url})",
            "markdown": (
                f"{_markdown_text(help_text)}\n\nOWASP [{risk.value}: {risk.title}]({risk.url})"
            ),
        },
        "defaultConfiguration": {"level": LEVEL[example.severity]},
        "properties": {
            "tags": _unique(["security", risk.value, example.check]),
            "security-severity": SECURITY_SEVERITY[example.severity],
            "risk": risk.value,
            "risk_title": risk.title,
        },
    }


def _rule_name(rule_id: str) -> str:
    # SARIF wants an identifier-like name: "pickle.dangerous-call" -> "PickleDangerousCall".
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", rule_id))


def _result(finding: Finding, rule_index: int, fallback_path: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.rule,
        "ruleIndex": rule_index,
        "level": LEVEL[finding.severity],
        "message": {"text": _message(finding)},
    }
    if finding.location is not None:
        result["locations"] = [_location(finding)]
    elif fallback_path is not None:
        # GitHub code scanning rejects a result without a location; a finding about the system
        # as a whole (an audit metric) is shown on what was assessed.
        physical = {"artifactLocation": {"uri": artifact_uri(fallback_path)}}
        result["locations"] = [{"physicalLocation": physical}]
    identity = finding_id(finding)
    result["partialFingerprints"] = {FINGERPRINT_KEY: identity}
    result["properties"] = {
        "id": identity,
        "severity": finding.severity.value,
        "security-severity": SECURITY_SEVERITY[finding.severity],
        "risk": finding.risk.value,
        "check": finding.check,
        "evidence": _clipped_evidence(finding),
        "remediation": finding.remediation,
    }
    return result


def _message(finding: Finding) -> str:
    text = finding.title.rstrip(".")
    if finding.detail:
        text += ". " + finding.detail
    return clip(text, MAX_MESSAGE_CHARS)


def _location(finding: Finding) -> dict[str, Any]:
    where = finding.location
    assert where is not None
    physical: dict[str, Any] = {"artifactLocation": {"uri": artifact_uri(where.path)}}
    if where.line is not None:
        region: dict[str, int] = {"startLine": where.line}
        if where.column is not None:
            region["startColumn"] = where.column
        physical["region"] = region
    location: dict[str, Any] = {"physicalLocation": physical}
    if where.member:
        location["logicalLocations"] = [
            {
                "name": where.member.rsplit("!", 1)[-1],
                "fullyQualifiedName": f"{where.path}!{where.member}",
                "kind": "resource",
            }
        ]
    properties = {
        key: value
        for key, value in (("member", where.member), ("offset", where.offset))
        if value is not None
    }
    if properties:
        location["properties"] = properties
    return location


@functools.lru_cache(maxsize=4096)
def artifact_uri(path: str) -> str:
    """`path` as a SARIF artifact URI: relative and forward-slashed, percent-escaped.

    Absolute paths (the user scanned ``/abs/dir``) become ``file://`` URIs, since a relative URI
    would point into the repository at the wrong place.
    """
    if PureWindowsPath(path).drive or path.startswith("\\\\"):
        windows = PureWindowsPath(path)
        return windows.as_uri() if windows.is_absolute() else _relative_uri(windows.as_posix())
    posix = PurePosixPath(path.replace("\\", "/"))
    if posix.is_absolute():
        return "file://" + quote(posix.as_posix(), safe="/", errors="backslashreplace")
    return _relative_uri(posix.as_posix())


def _relative_uri(path: str) -> str:
    while path.startswith("./"):
        path = path[2:]
    return quote(path, safe="/", errors="backslashreplace") or "."


def _clipped_evidence(finding: Finding) -> dict[str, Any]:
    evidence = jsonable(finding.evidence)
    return {key: _clip_strings(value) for key, value in evidence.items()}


def _clip_strings(value: Any) -> Any:
    if isinstance(value, str):
        return clip(value, MAX_EVIDENCE_VALUE_CHARS)
    if isinstance(value, dict):
        return {k: _clip_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip_strings(v) for v in value]
    return value


def _invocation(report: Report, total: int, kept: int) -> dict[str, Any]:
    errors = sorted(report.errors, key=lambda e: (e.path, e.member or "", e.message))
    notifications = [
        _notification("error", _error_text(e.path, e.member, e.message), e.path) for e in errors
    ]
    if kept < total:
        notifications.append(_notification("warning", _truncation_text(total, kept), None))
    invocation: dict[str, Any] = {"executionSuccessful": not report.errors}
    started = _utc_timestamp(report.created)
    if started is not None:
        invocation["startTimeUtc"] = started
    if notifications:
        invocation["toolExecutionNotifications"] = _unique(notifications)
    return invocation


def _utc_timestamp(created: str) -> str | None:
    # SARIF wants UTC with a trailing Z; a timestamp without a zone cannot be placed in UTC.
    try:
        moment = _dt.datetime.fromisoformat(created)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error_text(path: str, member: str | None, message: str) -> str:
    where = f"{path}!{member}" if member else path
    return f"{where}: {message}"


def _truncation_text(total: int, kept: int) -> str:
    return (
        f"{total:,} findings found; only the worst {kept:,} are in this SARIF run "
        f"(GitHub code scanning accepts at most {MAX_RESULTS_PER_RUN:,} results per run). "
        "The JSON report lists them all."
    )


def _notification(level: str, text: str, path: str | None) -> dict[str, Any]:
    notification: dict[str, Any] = {"level": level, "message": {"text": text}}
    if path is not None:
        notification["locations"] = [
            {"physicalLocation": {"artifactLocation": {"uri": artifact_uri(path)}}}
        ]
    return notification


def _run_properties(report: Report, total: int, kept: int) -> dict[str, Any]:
    counts = report.counts()
    return {
        "verdict": report.verdict().status,
        "verdictText": verdict_text(report),
        "counts": {s.value: counts[s] for s in sorted(Severity, key=lambda s: -s.rank)},
        "totalFindings": total,
        "resultsInRun": kept,
        "truncated": kept < total,
        "inputs": list(report.inputs),
    }


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~@&])")


def _markdown_text(text: str) -> str:
    # GitHub renders help.markdown: a hostile remediation must not become a link or HTML.
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def _unique(items: list[Any]) -> list[Any]:
    # The SARIF schema declares tags and notifications uniqueItems; duplicates make it invalid.
    seen: set[str] = set()
    unique = []
    for item in items:
        key = json.dumps(item, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique
