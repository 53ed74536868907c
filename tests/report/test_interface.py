"""The renderer registry: one name per format, lazy imports, clear errors for unknown names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlwarden.errors import UsageError
from mlwarden.report import Renderer, get_renderer, register_renderer, render, renderer_names
from mlwarden.report.interface import _RENDERERS
from mlwarden.report.model import Report

FORMATS = ["console", "html", "json", "markdown", "sarif"]


def test_every_format_of_the_issue_is_registered() -> None:
    assert renderer_names() == FORMATS


@pytest.mark.parametrize("name", FORMATS)
def test_get_renderer_returns_a_renderer_that_names_itself(name: str) -> None:
    renderer = get_renderer(name)
    assert isinstance(renderer, Renderer)
    assert renderer.name == name
    assert renderer.extension.startswith(".")
    assert "/" in renderer.media_type


def test_format_names_are_case_insensitive() -> None:
    assert get_renderer(" JSON ").name == "json"


def test_unknown_format_is_a_usage_error_listing_the_known_ones() -> None:
    with pytest.raises(UsageError) as caught:
        get_renderer("pdf")
    message = str(caught.value)
    assert "'pdf'" in message
    for name in FORMATS:
        assert name in message
    assert caught.value.exit_code == 4


@pytest.mark.parametrize("name", FORMATS)
def test_render_helper_matches_the_renderer(name: str, sample_report: Report) -> None:
    assert render(sample_report, name) == get_renderer(name).render(sample_report)


@pytest.mark.parametrize("name", FORMATS)
def test_every_renderer_renders_an_empty_report(name: str, empty_report: Report) -> None:
    assert render(empty_report, name).strip()


@pytest.mark.parametrize("name", FORMATS)
def test_every_renderer_is_deterministic(name: str, sample_report: Report) -> None:
    assert render(sample_report, name) == render(sample_report, name)


def test_importing_the_report_package_loads_neither_rich_nor_jinja2() -> None:
    code = (
        "import sys, mlwarden.report\n"
        "print(sorted(m for m in ('rich', 'jinja2') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_new_format_is_added_by_registering_it(sample_report: Report) -> None:
    register_renderer("json-copy", "mlwarden.report.json:JsonRenderer")
    try:
        assert "json-copy" in renderer_names()
        assert render(sample_report, "json-copy") == render(sample_report, "json")
    finally:
        del _RENDERERS["json-copy"]


def test_registering_a_target_without_a_class_is_refused() -> None:
    with pytest.raises(ValueError, match=r"package\.module:ClassName"):
        register_renderer("broken", "mlwarden.report.json")


def test_a_registered_target_that_is_not_a_renderer_is_refused() -> None:
    register_renderer("not-a-renderer", "mlwarden.report.model:Report")
    try:
        with pytest.raises(TypeError, match=r"not a mlwarden\.report\.interface\.Renderer"):
            get_renderer("not-a-renderer")
    finally:
        del _RENDERERS["not-a-renderer"]
