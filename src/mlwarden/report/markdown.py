"""GitHub-flavoured Markdown for pull-request comments and job summaries.

The verdict first, then the Top-10 scorecard, a findings table and each finding's details folded
in ``<details>``, then the checks' measurement tables (robust accuracy by eps ...). Every string
from a scanned file is escaped for where it lands (table cell, code span, code block, HTML
summary) so that it cannot break the table, open a code block, inject HTML or links, or mention
people. GitHub rejects comments over 65,536 characters, so the text stops before that and says
what it left out. Not for: machines (JSON, SARIF).
"""

from __future__ import annotations

import html
import re
from typing import ClassVar

from mlwarden.findings import Finding, Severity
from mlwarden.report._text import (
    SEVERITIES_WORST_FIRST,
    clip,
    counts_text,
    encodable,
    evidence_items,
    plural,
    printable,
    verdict_text,
)
from mlwarden.report.interface import Renderer
from mlwarden.report.model import ImageCell, Report, RiskSummary, Table, TableCell

MAX_COMMENT_CHARS = 65_000
"""GitHub's limit is 65,536 characters; the margin keeps room for a bot's own wrapper."""
MAX_EVIDENCE_VALUE_CHARS = 1_500
MAX_CELL_CHARS = 300
MAX_LISTED_ERRORS = 50
TRUNCATION_NOTE_RESERVE_CHARS = 400

VERDICT_MARK: dict[str, str] = {
    "fail": "❌",
    "incomplete": "⚠️",
    "nothing assessed": "⚠️",
    "pass": "✅",
}
SEVERITY_MARK: dict[Severity, str] = {
    Severity.CRITICAL: "🟥",
    Severity.HIGH: "🟧",
    Severity.MEDIUM: "🟨",
    Severity.LOW: "🟦",
    Severity.INFO: "⬜",
}

_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&:=\"'$^])")
_BACKTICK_RUN = re.compile(r"`+")


class MarkdownRenderer(Renderer):
    """GitHub-flavoured Markdown, at most `MAX_COMMENT_CHARS` characters."""

    name: ClassVar[str] = "markdown"
    extension: ClassVar[str] = ".md"
    media_type: ClassVar[str] = "text/markdown"

    def render(self, report: Report, *, color: bool = False) -> str:
        """The report as Markdown; `color` is ignored (severity marks are emoji)."""
        head = _head(report)
        tail = _tail(report)
        budget = MAX_COMMENT_CHARS - len(head) - len(tail) - TRUNCATION_NOTE_RESERVE_CHARS
        body = _findings(report, budget)
        return encodable(head + body + tail)


def text(value: str, *, max_chars: int = MAX_CELL_CHARS) -> str:
    """A hostile string as inert inline Markdown: one line, no markup, no HTML, no mention."""
    flat = " ".join(printable(clip(value, max_chars)).split())
    return _no_mentions(_MARKDOWN_PUNCTUATION.sub(r"\\\1", flat))


def code(value: str, *, in_table: bool = False, max_chars: int = MAX_CELL_CHARS) -> str:
    """A hostile string as an inline code span that no backtick inside it can close."""
    flat = " ".join(printable(clip(value, max_chars)).split())
    if in_table:
        # GFM splits cells on "|" even inside code spans, unless it is escaped.
        flat = flat.replace("|", "\\|")
    fence = "`" * (_longest_backtick_run(flat) + 1)
    padding = " " if flat.startswith("`") or flat.endswith("`") or not flat.strip() else ""
    return f"{fence}{padding}{flat}{padding}{fence}"


def code_block(value: str, *, max_chars: int = MAX_EVIDENCE_VALUE_CHARS) -> str:
    """A hostile string as a fenced block whose fence is longer than any backtick run inside."""
    body = printable(clip(value, max_chars))
    fence = "`" * max(3, _longest_backtick_run(body) + 1)
    return f"{fence}text\n{body}\n{fence}\n"


def html_text(value: str, *, max_chars: int = MAX_CELL_CHARS) -> str:
    """A hostile string for inside an HTML element (``<summary>``), where Markdown is not read."""
    flat = " ".join(printable(clip(value, max_chars)).split())
    return _no_mentions(html.escape(flat, quote=True))


def _no_mentions(value: str) -> str:
    # A zero-width space after "@" keeps GitHub from notifying a user or team named in a file.
    return value.replace("@", "@\u200b")


def _longest_backtick_run(value: str) -> int:
    return max((len(run) for run in _BACKTICK_RUN.findall(value)), default=0)


def _head(report: Report) -> str:
    status = report.verdict().status
    lines = [
        f"### mlwarden {VERDICT_MARK.get(status, '')} {status.upper()}",
        "",
        text(verdict_text(report), max_chars=1_000),
        "",
        (
            f"mlwarden {text(report.tool_version)} · "
            + (
                f"{plural(report.files_scanned(), 'file')} scanned "
                f"({plural(len(report.scanned), 'item')} counting archive members, "
                f"{len(report.recognised_files())} recognised) · "
                if report.scanned_files()
                else ""
            )
            + f"{report.duration_s:.2f} s"
        ),
        "",
        "#### OWASP ML Security Top 10",
        "",
        "| Risk | Title | Status | Findings |",
        "|---|---|---|---|",
        *[_scorecard_row(row) for row in report.scorecard()],
        "",
    ]
    return "\n".join(lines) + "\n"


def _scorecard_row(row: RiskSummary) -> str:
    status = f"**{row.status}**" if row.worst else row.status
    if row.worst is not None:
        status = f"{SEVERITY_MARK[row.worst]} {status}"
    found = counts_text(row.counts) if row.worst else ""
    return f"| [{row.risk.value}]({row.risk.url}) | {row.risk.title} | {status} | {found} |"


def _findings(report: Report, budget_chars: int) -> str:
    findings = report.sorted_findings()
    if not findings:
        return "#### Findings\n\nNo findings.\n\n"
    heading = f"#### Findings ({len(findings)})\n\n"
    table = "| Severity | Rule | Location | Title |\n|---|---|---|---|\n"
    used = len(heading) + len(table)
    rows_shown = 0
    for finding in findings:
        row = _finding_row(finding)
        if used + len(row) > budget_chars:
            break
        table += row
        used += len(row)
        rows_shown += 1
    details = ""
    details_shown = 0
    for finding in findings[:rows_shown]:
        block = _finding_details(finding)
        if used + len(block) > budget_chars:
            break
        details += block
        used += len(block)
        details_shown += 1
    out = heading + table + "\n" + details
    return out + _truncation_note(len(findings), rows_shown, details_shown)


def _finding_row(finding: Finding) -> str:
    where = code(str(finding.location), in_table=True) if finding.location else ""
    return (
        f"| {SEVERITY_MARK[finding.severity]} {finding.severity.value} "
        f"| {code(finding.rule, in_table=True)} | {where} | {text(finding.title)} |\n"
    )


def _finding_details(finding: Finding) -> str:
    mark = SEVERITY_MARK[finding.severity]
    summary = f"{mark} {finding.severity.value}: {html_text(finding.title)}"
    if finding.location is not None:
        summary += f" ({html_text(str(finding.location))})"
    parts = [
        f"<details><summary>{summary}</summary>",
        "",
        f"- Rule: {code(finding.rule)} ({finding.risk.value} {finding.risk.title})",
    ]
    if finding.location is not None:
        parts.append(f"- Location: {code(str(finding.location))}")
    if finding.remediation:
        parts.append(f"- Fix: {text(finding.remediation, max_chars=1_000)}")
    parts.append("")
    if finding.detail:
        parts += [text(finding.detail, max_chars=2_000), ""]
    for key, value, _primary in evidence_items(finding.evidence):
        parts += [f"{text(key, max_chars=80)}:", "", code_block(value)]
    parts += ["</details>", ""]
    return "\n".join(parts) + "\n"


def _measurements(report: Report) -> list[str]:
    tables = Table.in_metrics(report.metrics)
    if not tables:
        return []
    parts = ["#### Measurements", ""]
    for check, table in tables:
        heading = f"{code(check)} {text(table.title)}" if table.title else code(check)
        parts += [
            heading,
            "",
            "| " + " | ".join(text(c) for c in table.columns) + " |",
            "|" + "---|" * len(table.columns),
            *("| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows),
            "",
        ]
    return parts


def _cell(cell: TableCell) -> str:
    return text(cell.alt) if isinstance(cell, ImageCell) else text(cell)


def _truncation_note(total: int, rows_shown: int, details_shown: int) -> str:
    if rows_shown == total and details_shown == total:
        return ""
    return (
        f"> Showing {rows_shown} of {total} findings in the table and details for "
        f"{details_shown}, to stay within GitHub's comment size limit. "
        "The HTML and JSON reports list them all.\n\n"
    )


def _tail(report: Report) -> str:
    parts: list[str] = _measurements(report)
    if report.errors:
        parts += [f"#### Errors ({len(report.errors)})", ""]
        errors = sorted(report.errors, key=lambda e: (e.path, e.member or "", e.message))
        for error in errors[:MAX_LISTED_ERRORS]:
            where = f"{error.path}!{error.member}" if error.member else error.path
            parts.append(f"- {code(where)}: {text(error.message)}")
        if len(errors) > MAX_LISTED_ERRORS:
            parts.append(f"- … and {len(errors) - MAX_LISTED_ERRORS} more")
        parts.append("")
    if report.not_assessed:
        parts += [f"#### Not assessed ({len(report.not_assessed)})", ""]
        for entry in sorted(report.not_assessed, key=lambda n: (n.check, n.reason)):
            risks = ", ".join(r.value for r in entry.risks)
            parts.append(f"- {code(entry.check)} ({risks}): {text(entry.reason)}")
        parts.append("")
    counts = report.counts()
    summary = " · ".join(f"{counts[s]} {s.value}" for s in SEVERITIES_WORST_FIRST)
    parts += [f"<sub>{summary} · generated by mlwarden {html_text(report.tool_version)}</sub>", ""]
    return "\n".join(parts)
