"""The contract every report format implements, and the registry that finds one by name.

A renderer turns a finished `Report` into text (console, JSON, SARIF, HTML, Markdown). It only
formats: every number it shows comes from the report. Not for: deciding exit codes or building
reports. Registry entries are ``"module:attribute"`` strings imported on first use, so that
``import mlwarden.report`` stays cheap and rich or jinja2 load only for the format asked for.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import ClassVar

from mlwarden.errors import UsageError
from mlwarden.report.model import Report


class Renderer(ABC):
    """Formats a report for one audience: a terminal, a CI, a browser or a pull request."""

    name: ClassVar[str]
    """What users type after ``--format``."""
    extension: ClassVar[str]
    """File extension for ``--output``, with its dot (``.sarif``)."""
    media_type: ClassVar[str]
    """MIME type of the rendered text."""

    @abstractmethod
    def render(self, report: Report, *, color: bool = False) -> str:
        """The whole report as text; `color` asks for terminal colours where the format has any."""


_RENDERERS: dict[str, str] = {
    "console": "mlwarden.report.console:ConsoleRenderer",
    "json": "mlwarden.report.json:JsonRenderer",
    "sarif": "mlwarden.report.sarif:SarifRenderer",
    "html": "mlwarden.report.html:HtmlRenderer",
    "markdown": "mlwarden.report.markdown:MarkdownRenderer",
}


def register_renderer(name: str, target: str) -> None:
    """Make a renderer class available as `name`; `target` is ``"package.module:ClassName"``."""
    if ":" not in target:
        raise ValueError(f"renderer target {target!r} must look like 'package.module:ClassName'")
    _RENDERERS[name] = target


def renderer_names() -> list[str]:
    """Names accepted by `get_renderer`, in a stable order."""
    return sorted(_RENDERERS)


def get_renderer(name: str) -> Renderer:
    """A fresh renderer for the format `name` (``console``, ``json``, ``sarif``, ``html``, ...)."""
    target = _RENDERERS.get(name.strip().lower())
    if target is None:
        known = ", ".join(renderer_names())
        raise UsageError(f"unknown report format {name!r}; choose one of: {known}")
    module_name, _, attribute = target.partition(":")
    renderer_class = getattr(importlib.import_module(module_name), attribute)
    renderer = renderer_class()
    if not isinstance(renderer, Renderer):
        raise TypeError(f"{target} is not a mlwarden.report.interface.Renderer")
    return renderer
