"""The self-contained HTML report: one file a person opens in a browser, shares, or prints.

Everything is inline (CSS, the few lines of script, figures as inline SVG, PNG data URIs or
tables); the page loads nothing from anywhere and a Content-Security-Policy forbids it to. Every
value that came from a scanned file is escaped by jinja2's autoescape; the only unescaped markup
is ours: figures mlwarden drew itself and the script whose hash the policy allows. The page works
without script: it only adds a severity filter and opens every section before printing. Not for:
machines (JSON, SARIF).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from mlwarden.findings import Finding, Risk, Severity
from mlwarden.report._text import (
    SEVERITIES_WORST_FIRST,
    counts_text,
    encodable,
    evidence_items,
    jsonable,
    plural,
    printable,
    value_text,
    verdict_text,
)
from mlwarden.report.interface import Renderer
from mlwarden.report.model import (
    REPORT_SCHEMA_VERSION,
    Figure,
    ImageCell,
    Report,
    Table,
    finding_id,
)

TEMPLATE_NAME = "report.html.j2"
INVENTORY_OPEN_MAX_ROWS = 25
"""A longer file inventory starts collapsed."""
OPEN_SEVERITIES = frozenset({Severity.CRITICAL, Severity.HIGH})
"""Findings shown expanded when the page opens."""

PAGE_SCRIPT = """\
(function () {
  var bar = document.getElementById('filter');
  if (bar) {
    bar.hidden = false;
    bar.addEventListener('change', function () {
      var shown = {};
      bar.querySelectorAll('input').forEach(function (box) { shown[box.value] = box.checked; });
      document.querySelectorAll('[data-severity]').forEach(function (el) {
        el.hidden = !shown[el.getAttribute('data-severity')];
      });
    });
  }
  var reopened = [];
  window.addEventListener('beforeprint', function () {
    document.querySelectorAll('details:not([open])').forEach(function (d) {
      d.open = true; reopened.push(d);
    });
  });
  window.addEventListener('afterprint', function () {
    reopened.forEach(function (d) { d.open = false; });
    reopened = [];
  });
})();
"""
"""Progressive enhancement only: the page reads the same without it."""

_PNG_BASE64 = re.compile(r"^[A-Za-z0-9+/\s]*={0,2}\s*$")


class HtmlRenderer(Renderer):
    """One self-contained HTML page."""

    name: ClassVar[str] = "html"
    extension: ClassVar[str] = ".html"
    media_type: ClassVar[str] = "text/html"

    def render(self, report: Report, *, color: bool = False) -> str:
        """The page as text; `color` is ignored (the page is always in colour and prints well)."""
        import jinja2
        from markupsafe import Markup

        environment = jinja2.Environment(
            loader=jinja2.PackageLoader("mlwarden.report", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        environment.filters["shown"] = printable
        template = environment.get_template(TEMPLATE_NAME)
        script_hash = base64.b64encode(hashlib.sha256(PAGE_SCRIPT.encode()).digest()).decode()
        page = template.render(
            page=_page(report),
            script=Markup(PAGE_SCRIPT),
            script_hash=f"sha256-{script_hash}",
            figure_groups=_figure_groups([_figure(f, Markup) for f in report.figures]),
        )
        return encodable(page)


@dataclass(frozen=True)
class _FindingView:
    id: str
    finding: Finding
    location: str
    evidence: list[tuple[str, str, bool]]
    open: bool


def _page(report: Report) -> dict[str, Any]:
    verdict = report.verdict()
    counts = report.counts()
    return {
        "tool_version": report.tool_version,
        "schema_version": REPORT_SCHEMA_VERSION,
        "created": report.created,
        "duration_s": f"{report.duration_s:.2f}",
        "inputs": report.inputs,
        "verdict_status": verdict.status,
        "verdict_text": verdict_text(report),
        "gate": verdict.fail_on.value if verdict.fail_on else "none",
        "severities": [s.value for s in SEVERITIES_WORST_FIRST],
        "counts": [(s.value, counts[s]) for s in SEVERITIES_WORST_FIRST],
        "total": len(report.findings),
        "files_scanned": report.files_scanned(),
        "items_scanned": len(report.scanned),
        "recognised": len(report.recognised_files()),
        "scorecard": [
            {
                "risk": row.risk.value,
                "title": row.risk.title,
                "url": row.risk.url,
                "status": row.status,
                "status_class": row.status.replace(" ", "-"),
                "counts": counts_text(row.counts) if row.worst else "",
                "checks": ", ".join(row.checks),
                "reasons": list(row.reasons),
            }
            for row in report.scorecard()
        ],
        "groups": [
            {
                "risk": risk.value,
                "title": risk.title,
                "total": sum(len(items) for _, items in by_severity),
                "severities": [
                    (severity.value, [_finding_view(f) for f in items])
                    for severity, items in by_severity
                ],
            }
            for risk, by_severity in report.findings_by_risk()
        ],
        "files": [
            {
                "path": s.path,
                "member": s.member or "",
                "format": s.format,
                "size": "" if s.size is None else f"{s.size:,}",
                "severity": s.severity.value if s.severity else "",
            }
            for s in report.sorted_scanned()
        ],
        "inventory_open": len(report.scanned) <= INVENTORY_OPEN_MAX_ROWS,
        "inventory_summary": (
            f"{plural(report.files_scanned(), 'file')}, "
            f"{plural(len(report.scanned), 'item')} counting archive members"
        ),
        "errors": [
            {"where": f"{e.path}!{e.member}" if e.member else e.path, "message": e.message}
            for e in sorted(report.errors, key=lambda e: (e.path, e.member or "", e.message))
        ],
        "not_assessed": [
            {"check": n.check, "risks": ", ".join(r.value for r in n.risks), "reason": n.reason}
            for n in sorted(report.not_assessed, key=lambda n: (n.check, n.reason))
        ],
        "metrics": _metric_sections(report.metrics),
        "risk_titles": {r.value: r.title for r in Risk},
    }


def _finding_view(finding: Finding) -> _FindingView:
    return _FindingView(
        id=finding_id(finding),
        finding=finding,
        location=str(finding.location) if finding.location else "",
        evidence=evidence_items(finding.evidence),
        open=finding.severity in OPEN_SEVERITIES,
    )


def _figure(figure: Figure, markup: Any) -> dict[str, Any]:
    # SVG is mlwarden's own drawing, so it is inserted as markup; PNG data must be base64 only,
    # so that nothing can leave the data: URI it is placed in. Table cells are escaped text.
    view: dict[str, Any] = {
        "id": figure.id,
        "title": figure.title,
        "caption": figure.caption,
        "risk": figure.risk.value if figure.risk else "",
        "kind": figure.kind,
        "svg": None,
        "png": _png(figure.data) if figure.kind == "png" else None,
        "table": None,
    }
    if figure.kind == "svg":
        view["svg"] = markup(figure.data)
    elif figure.kind == "table":
        table = Table.from_json(figure.data)
        view["table"] = None if table is None else _table_view(table)
    return view


def _figure_groups(figures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Figures under the risk they illustrate, ML01 first, then those of no risk."""
    groups = [
        {"heading": f"{risk.value} · {risk.title}", "figures": shown}
        for risk in Risk
        if (shown := [f for f in figures if f["risk"] == risk.value])
    ]
    rest = [f for f in figures if not f["risk"]]
    if rest:
        groups.append({"heading": "Other figures" if groups else "", "figures": rest})
    return groups


def _png(data: str) -> str | None:
    return "".join(data.split()) if _PNG_BASE64.match(data) else None


def _table_view(table: Table) -> dict[str, Any]:
    return {
        "title": table.title,
        "columns": list(table.columns),
        "rows": [
            [
                {"image": True, "png": _png(cell.png), "text": cell.alt}
                if isinstance(cell, ImageCell)
                else {"image": False, "png": None, "text": cell}
                for cell in row
            ]
            for row in table.rows
        ],
    }


def _metric_sections(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Metrics as sections: a check's table-shaped values as tables, the rest as key/value rows.

    Top-level values that are neither a table nor a check's mapping keep one row each, under a
    section without heading.
    """
    loose: list[tuple[str, str]] = []
    sections: list[dict[str, Any]] = []
    for key, value in jsonable(metrics).items():
        table = Table.from_data(value)
        if table is not None:
            sections.append({"name": key, "tables": [_table_view(table)], "entries": []})
        elif isinstance(value, dict):
            tables = [t for v in value.values() if (t := Table.from_data(v)) is not None]
            values = [
                (str(k), value_text(v)) for k, v in value.items() if Table.from_data(v) is None
            ]
            sections.append(
                {"name": key, "tables": [_table_view(t) for t in tables], "entries": values}
            )
        else:
            loose.append((str(key), value_text(value)))
    if loose:
        sections.insert(0, {"name": "", "tables": [], "entries": loose})
    return sections
