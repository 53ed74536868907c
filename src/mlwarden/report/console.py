"""The report for a person at a terminal, drawn with rich.

Header, the OWASP ML Top 10 scorecard, findings worst first with their evidence and fix, the
checks' measurement tables (robust accuracy by eps ...), errors, checks not assessed, and a
one-line verdict. Every string that came from a scanned file is shown as plain text: never read
as rich markup, with control and bidi characters escaped so that a file name cannot rewrite the
terminal. Not for: machines (JSON, SARIF).
"""

from __future__ import annotations

from io import StringIO
from typing import ClassVar

from rich import box
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from mlwarden.findings import Finding, Severity
from mlwarden.report._text import (
    clip,
    counts_text,
    encodable,
    evidence_items,
    plural,
    printable,
    verdict_text,
)
from mlwarden.report.interface import Renderer
from mlwarden.report.model import ImageCell, Report, RiskSummary, TableCell
from mlwarden.report.model import Table as ReportTable

DEFAULT_WIDTH_COLUMNS = 100
MAX_EVIDENCE_VALUE_CHARS = 400
"""Evidence can be a whole template; the terminal shows its start, the JSON report all of it."""
MAX_INPUTS_SHOWN = 3
MAX_EVIDENCE_KEY_COLUMNS = 16
MAX_METRIC_CELL_CHARS = 80

SEVERITY_STYLE: dict[Severity, str] = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "blue",
}
VERDICT_STYLE: dict[str, str] = {
    "fail": "bold red",
    "incomplete": "bold yellow",
    "nothing assessed": "bold yellow",
    "pass": "bold green",
}


class ConsoleRenderer(Renderer):
    """Rich text for a terminal; plain text when `color` is off."""

    name: ClassVar[str] = "console"
    extension: ClassVar[str] = ".txt"
    media_type: ClassVar[str] = "text/plain"

    def __init__(self, width: int = DEFAULT_WIDTH_COLUMNS) -> None:
        self.width = width

    def render(self, report: Report, *, color: bool = False) -> str:
        """The report as terminal text, with ANSI colours only when `color` is true."""
        out = StringIO()
        console = Console(
            file=out,
            width=self.width,
            force_terminal=color,
            no_color=not color,
            color_system="standard" if color else None,
            highlight=False,
            markup=False,
            emoji=False,
            legacy_windows=False,
            _environ={},
        )
        for part in _sections(report):
            console.print(part)
        # rich pads every line to the full width; trailing blanks only get in the way of a reader.
        lines = out.getvalue().split("\n")
        return encodable("\n".join(line.rstrip(" ") for line in lines))


def _sections(report: Report) -> list[RenderableType]:
    parts: list[RenderableType] = [_header(report), Text(), _scorecard(report.scorecard())]
    if report.findings:
        parts += [Text(), _findings(report)]
    tables = ReportTable.in_metrics(report.metrics)
    if tables:
        parts += [Text(), _measurements(tables)]
    if report.errors:
        parts += [Text(), _errors(report)]
    if report.not_assessed:
        parts += [Text(), _not_assessed(report)]
    parts += [Text(), _verdict(report)]
    return parts


def _header(report: Report) -> Text:
    header = Text()
    header.append(f"mlwarden {report.tool_version}", style="bold")
    inputs = [printable(i) for i in report.inputs[:MAX_INPUTS_SHOWN]]
    if len(report.inputs) > MAX_INPUTS_SHOWN:
        inputs.append(f"+{len(report.inputs) - MAX_INPUTS_SHOWN} more")
    if inputs:
        header.append("  ·  ")
        header.append(", ".join(inputs))
    header.append(f"  ·  {report.duration_s:.2f} s  ·  {report.created}", style="dim")
    if report.scanned_files():
        scanned = (
            f"{plural(report.files_scanned(), 'file')} scanned"
            f" ({plural(len(report.scanned), 'item')} counting archive members;"
            f" {len(report.recognised_files())} recognised)"
        )
        header.append("\n" + scanned, style="dim")
    return header


def _status_text(row: RiskSummary) -> Text:
    if row.worst is not None:
        return Text(row.worst.value.upper(), style=SEVERITY_STYLE[row.worst])
    if row.assessed:
        return Text("pass", style="green")
    return Text("not assessed", style="dim")


def _scorecard(rows: list[RiskSummary]) -> Table:
    table = Table(
        title="OWASP ML Security Top 10",
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("Risk", no_wrap=True)
    table.add_column("Title", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Findings")
    for row in rows:
        found = counts_text(row.counts)
        table.add_row(
            row.risk.value,
            row.risk.title,
            _status_text(row),
            Text(found if found != "none" else "—", style="" if row.worst else "dim"),
        )
    return table


def _findings(report: Report) -> Group:
    counts = report.counts()
    parts: list[RenderableType] = [Text(f"Findings ({len(report.findings)})", style="bold")]
    current: Severity | None = None
    for finding in report.sorted_findings():
        if finding.severity is not current:
            current = finding.severity
            heading = Text(f"{current.value.upper()}", style=SEVERITY_STYLE[current])
            heading.append(f"  {counts[current]}", style="dim")
            parts.append(Padding(heading, (1, 0, 0, 1)))
        parts.append(Padding(_finding(finding), (0, 0, 0, 3)))
    return Group(*parts)


def _finding(finding: Finding) -> Group:
    title = Text()
    title.append(printable(finding.title), style="bold")
    title.append(f"  [{finding.rule}]  {finding.risk.value}", style="dim")
    rows = Table.grid(padding=(0, 1))
    rows.add_column(style="dim", max_width=MAX_EVIDENCE_KEY_COLUMNS, overflow="fold")
    rows.add_column(overflow="fold")
    if finding.location is not None:
        rows.add_row("where", Text(printable(str(finding.location))))
    if finding.detail:
        rows.add_row("why", Text(printable(finding.detail)))
    for key, value, primary in evidence_items(finding.evidence):
        shown = printable(clip(value, MAX_EVIDENCE_VALUE_CHARS))
        rows.add_row(printable(clip(key, 40)), Text(shown, style="bold magenta" if primary else ""))
    if finding.remediation:
        rows.add_row("fix", Text(printable(finding.remediation), style="green"))
    return Group(title, Padding(rows, (0, 0, 0, 2)))


def _measurements(tables: list[tuple[str, ReportTable]]) -> Group:
    parts: list[RenderableType] = [Text("Measurements", style="bold")]
    for check, table in tables:
        title = Text(printable(check), style="bold")
        if table.title:
            title.append("  " + printable(table.title))
        grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for column in table.columns:
            grid.add_column(printable(clip(column, MAX_METRIC_CELL_CHARS)), overflow="fold")
        for row in table.rows:
            grid.add_row(
                *(Text(printable(clip(_cell_text(c), MAX_METRIC_CELL_CHARS))) for c in row)
            )
        parts += [Padding(title, (1, 0, 0, 1)), Padding(grid, (0, 0, 0, 3))]
    return Group(*parts)


def _cell_text(cell: TableCell) -> str:
    return f"[{cell.alt}]" if isinstance(cell, ImageCell) else cell


def _errors(report: Report) -> Group:
    parts: list[RenderableType] = [Text(f"Errors ({len(report.errors)})", style="bold yellow")]
    for error in sorted(report.errors, key=lambda e: (e.path, e.member or "", e.message)):
        where = f"{error.path}!{error.member}" if error.member else error.path
        line = Text("  ")
        line.append(printable(where), style="bold")
        line.append(": " + printable(error.message))
        parts.append(line)
    return Group(*parts)


def _not_assessed(report: Report) -> Group:
    parts: list[RenderableType] = [Text(f"Not assessed ({len(report.not_assessed)})", style="bold")]
    for entry in sorted(report.not_assessed, key=lambda n: (n.check, n.reason)):
        risks = ", ".join(r.value for r in entry.risks)
        line = Text("  ")
        line.append(printable(entry.check), style="bold")
        line.append(f" ({risks}): ", style="dim")
        line.append(printable(entry.reason))
        parts.append(line)
    return Group(*parts)


def _verdict(report: Report) -> Text:
    status = report.verdict().status
    return Text(printable(verdict_text(report)), style=VERDICT_STYLE.get(status, "bold"))
