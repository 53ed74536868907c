"""Reports: the `Report` every check fills and the renderers that turn it into text.

``render(report, "sarif")`` is all most callers need. Renderers load on first use, so importing
this package costs no more than the report model. Not for: running checks (`mlwarden.audit`).
"""

from __future__ import annotations

from mlwarden.report.interface import Renderer, get_renderer, register_renderer, renderer_names
from mlwarden.report.model import REPORT_SCHEMA_VERSION, Report

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "Renderer",
    "Report",
    "get_renderer",
    "register_renderer",
    "render",
    "renderer_names",
]


def render(report: Report, fmt: str, color: bool = False) -> str:
    """The report as text in the format `fmt` (one of `renderer_names()`)."""
    return get_renderer(fmt).render(report, color=color)
