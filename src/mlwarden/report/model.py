"""The report every check contributes to and every renderer reads.

A `Report` holds findings, the inventory of scanned files, errors, the checks that ran or could
not, metrics and figures. The few summaries renderers need (the Top-10 scorecard, the exit code)
are computed here, once, so that renderers only format.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlwarden import __version__
from mlwarden.findings import Finding, Risk, Severity

REPORT_SCHEMA_VERSION = "1.0"
"""Version of the JSON report schema (docs/report-schema.md); bumped on incompatible change."""


class ExitCode:
    """Exit codes a CI can act on: a superset of modelscan's."""

    CLEAN = 0
    FINDINGS = 1
    ERROR = 2
    NOTHING_SCANNED = 3
    USAGE = 4


@dataclass(frozen=True)
class ScannedFile:
    """One file or archive member that was scanned, with what it turned out to be."""

    path: str
    member: str | None
    """Archive member chain inside `path`, joined by ``!``; None for the file itself."""
    format: str
    """Detected format (``pickle``, ``pytorch-zip``, ``safetensors``, ``unknown`` ...)."""
    size: int | None
    """Size in bytes (decompressed size for archive members)."""
    severity: Severity | None = None
    """Highest severity among the findings located on this item or inside it."""


@dataclass(frozen=True)
class ErrorEntry:
    """Something that could not be scanned, and why. Any error makes the verdict incomplete."""

    path: str
    message: str
    member: str | None = None


@dataclass(frozen=True)
class NotAssessed:
    """A check that did not run, and the reason (usually: what it needs was not given)."""

    check: str
    risks: tuple[Risk, ...]
    reason: str


@dataclass(frozen=True)
class Figure:
    """A picture or a table for the HTML report, drawn by the check that measured it.

    `kind` says what `data` holds: ``svg`` (inline SVG text, mlwarden's own drawing), ``png``
    (base64 PNG) or ``table`` (a `Table` as JSON text, `Table.to_json`; its cells are text or
    base64 PNG images, such as an adversarial-example gallery).
    """

    id: str
    title: str
    kind: str
    """``svg``, ``png`` or ``table``."""
    data: str
    risk: Risk | None = None
    caption: str = ""


@dataclass(frozen=True)
class ImageCell:
    """A picture inside a table cell."""

    png: str
    """Base64 PNG data."""
    alt: str
    """What the picture shows, for readers who cannot see it."""


TableCell = str | ImageCell


@dataclass(frozen=True)
class Table:
    """Rows of cells under column headings, already formatted for people.

    The data of a ``table`` figure, and the shape of a metric meant to be shown as a table:
    ``{"title": str, "columns": [str, ...], "rows": [[cell, ...], ...]}`` where a cell is text or
    ``{"png": base64, "alt": str}``. Renderers show such metrics as tables and print nothing they
    would have to compute.
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[TableCell, ...], ...]
    title: str = ""

    def to_data(self) -> dict[str, Any]:
        """The table as JSON-ready data (the shape `from_data` reads)."""
        return {
            "title": self.title,
            "columns": list(self.columns),
            "rows": [[_cell_data(cell) for cell in row] for row in self.rows],
        }

    def to_json(self) -> str:
        """The table as JSON text, for `Figure.data` of a ``table`` figure."""
        return json.dumps(self.to_data(), ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_data(cls, value: Any) -> Table | None:
        """`value` read as a table, or None when it does not have the shape of one."""
        if not isinstance(value, Mapping) or not {"columns", "rows"} <= set(value):
            return None
        if set(value) - {"title", "columns", "rows"}:
            return None
        columns, rows, title = value["columns"], value["rows"], value.get("title", "")
        if (
            not isinstance(title, str)
            or not _is_list_of(columns, str)
            or not isinstance(rows, list)
        ):
            return None
        parsed: list[tuple[TableCell, ...]] = []
        for row in rows:
            if not isinstance(row, list) or len(row) != len(columns):
                return None
            cells = [_cell(item) for item in row]
            if any(cell is None for cell in cells):
                return None
            parsed.append(tuple(c for c in cells if c is not None))
        return cls(tuple(columns), tuple(parsed), title)

    @classmethod
    def in_metrics(cls, metrics: Mapping[str, Any]) -> list[tuple[str, Table]]:
        """Every table-shaped value of a report's metrics, at the top level or inside a check's
        metrics, with its check id (or key), in key order."""
        found: list[tuple[str, Table]] = []
        for key in sorted(metrics, key=str):
            value = metrics[key]
            table = cls.from_data(value)
            if table is not None:
                found.append((str(key), table))
            elif isinstance(value, Mapping):
                found += [
                    (str(key), inner)
                    for _, item in sorted(value.items(), key=lambda kv: str(kv[0]))
                    if (inner := cls.from_data(item)) is not None
                ]
        return found

    @classmethod
    def from_json(cls, text: str) -> Table | None:
        """A ``table`` figure's data read back, or None when it is not a table."""
        try:
            return cls.from_data(json.loads(text))
        except ValueError:
            return None


def _is_list_of(value: Any, kind: type) -> bool:
    return isinstance(value, list) and all(isinstance(item, kind) for item in value)


def _cell_data(cell: TableCell) -> Any:
    return {"png": cell.png, "alt": cell.alt} if isinstance(cell, ImageCell) else cell


def _cell(value: Any) -> TableCell | None:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    if isinstance(value, Mapping) and set(value) == {"png", "alt"}:
        png, alt = value["png"], value["alt"]
        if isinstance(png, str) and isinstance(alt, str):
            return ImageCell(png, alt)
    return None


@dataclass(frozen=True)
class RiskSummary:
    """One row of the Top-10 scorecard."""

    risk: Risk
    assessed: bool
    counts: Mapping[Severity, int]
    worst: Severity | None
    checks: tuple[str, ...]
    """Checks that assessed this risk."""
    reasons: tuple[str, ...]
    """Why it was not assessed, when it was not."""

    @property
    def status(self) -> str:
        """``not assessed``, ``pass`` or the worst severity found."""
        if not self.assessed:
            return "not assessed"
        return self.worst.value if self.worst else "pass"


@dataclass(frozen=True)
class Verdict:
    """The judgement a report ends with, against the gate the report carries."""

    status: str
    """``fail`` (findings at or above the gate), ``incomplete`` (errors), ``nothing assessed``
    or ``pass``."""
    exit_code: int
    fail_on: Severity | None
    """The gate; None never fails on findings."""
    failing: int
    """Number of findings at or above the gate."""


def finding_id(finding: Finding) -> str:
    """A stable id for a finding: the same rule, location and title always give the same id."""
    where = finding.location
    parts = [
        finding.rule,
        where.path if where else "",
        (where.member or "") if where else "",
        "" if where is None or where.offset is None else str(where.offset),
        "" if where is None or where.line is None else str(where.line),
        "" if where is None or where.column is None else str(where.column),
        finding.title,
    ]
    import hashlib  # here: a report without findings never needs it

    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


@dataclass
class Report:
    """Findings plus everything needed to judge them; built by the audit runner."""

    findings: list[Finding] = field(default_factory=list)
    scanned: list[ScannedFile] = field(default_factory=list)
    errors: list[ErrorEntry] = field(default_factory=list)
    checks_run: list[str] = field(default_factory=list)
    risks_assessed: dict[str, list[Risk]] = field(default_factory=dict)
    """Check id -> the risks it assessed."""
    not_assessed: list[NotAssessed] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    """What was assessed, as the user named it (paths, model, data)."""
    tool_version: str = __version__
    created: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    )
    duration_s: float = 0.0
    fail_on: Severity | None = Severity.HIGH
    """The gate the verdict is judged against (the CLI's ``--fail-on``); None never fails."""

    def sorted_findings(self) -> list[Finding]:
        """Findings worst first, then by location, for stable output."""
        return sorted(
            self.findings,
            key=lambda f: (-f.severity.rank, f.risk.value, str(f.location or ""), f.rule),
        )

    def counts(self) -> dict[Severity, int]:
        """Number of findings per severity (every severity present, zeros included)."""
        counter = Counter(f.severity for f in self.findings)
        return {s: counter.get(s, 0) for s in Severity}

    def max_severity(self) -> Severity | None:
        """The worst severity found, or None when there is no finding."""
        return max((f.severity for f in self.findings), default=None)

    def scorecard(self) -> list[RiskSummary]:
        """One row per OWASP ML Top 10 risk: assessed or not, and what was found."""
        rows = []
        for risk in Risk:
            checks = tuple(c for c, risks in self.risks_assessed.items() if risk in risks)
            found = [f for f in self.findings if f.risk is risk]
            counter = Counter(f.severity for f in found)
            reasons = tuple(f"{n.check}: {n.reason}" for n in self.not_assessed if risk in n.risks)
            rows.append(
                RiskSummary(
                    risk=risk,
                    assessed=bool(checks) or bool(found),
                    counts={s: counter.get(s, 0) for s in Severity},
                    worst=max(counter, default=None),
                    checks=checks,
                    reasons=reasons,
                )
            )
        return rows

    def failing(self, fail_on: Severity) -> list[Finding]:
        """Findings at or above `fail_on`."""
        return [f for f in self.findings if f.severity >= fail_on]

    def exit_code(self, fail_on: Severity | None) -> int:
        """0 clean, 1 findings at or above `fail_on`, 2 errors, 3 no check assessed anything.

        Findings win over errors: a CI that sees 1 knows something bad was found; errors alone
        mean the verdict is incomplete. `fail_on=None` never fails on findings.
        """
        if fail_on is not None and self.failing(fail_on):
            return ExitCode.FINDINGS
        if self.errors:
            return ExitCode.ERROR
        if not self.checks_run:
            return ExitCode.NOTHING_SCANNED
        return ExitCode.CLEAN

    def verdict(self) -> Verdict:
        """Pass, fail, incomplete or nothing assessed, judged against `fail_on`."""
        code = self.exit_code(self.fail_on)
        status = {
            ExitCode.FINDINGS: "fail",
            ExitCode.ERROR: "incomplete",
            ExitCode.NOTHING_SCANNED: "nothing assessed",
        }.get(code, "pass")
        failing = len(self.failing(self.fail_on)) if self.fail_on is not None else 0
        return Verdict(status=status, exit_code=code, fail_on=self.fail_on, failing=failing)

    def findings_by_risk(self) -> list[tuple[Risk, list[tuple[Severity, list[Finding]]]]]:
        """Findings grouped by risk (ML01 first), then by severity (worst first); no empty group."""
        groups: dict[Risk, dict[Severity, list[Finding]]] = {}
        for finding in self.sorted_findings():
            groups.setdefault(finding.risk, {}).setdefault(finding.severity, []).append(finding)
        return [
            (risk, sorted(groups[risk].items(), key=lambda item: -item[0].rank))
            for risk in Risk
            if risk in groups
        ]

    def sorted_scanned(self) -> list[ScannedFile]:
        """The inventory in a stable order: by path, the file itself before its members."""
        return sorted(self.scanned, key=lambda s: (s.path, s.member is not None, s.member or ""))

    def scanned_files(self) -> bool:
        """Whether this report is (partly) a file scan: files were scanned or the scan ran."""
        return bool(self.scanned) or "ml06.model_files" in self.checks_run

    def files_scanned(self) -> int:
        """Number of distinct files on disk in the inventory (archive members not counted)."""
        return len({s.path for s in self.scanned})

    def recognised_files(self) -> list[ScannedFile]:
        """Inventory entries whose format was recognised (not ``unknown``)."""
        return [s for s in self.scanned if s.format != "unknown"]

    def extend(
        self,
        *,
        findings: Iterable[Finding] = (),
        scanned: Iterable[ScannedFile] = (),
        errors: Iterable[ErrorEntry] = (),
    ) -> None:
        """Add a check's results."""
        self.findings.extend(findings)
        self.scanned.extend(scanned)
        self.errors.extend(errors)
