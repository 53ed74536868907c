"""The terminal report: complete, readable in 100 columns, and inert to hostile strings."""

from __future__ import annotations

import re

from report_samples import CALL_CHAIN, HOSTILE
from rich.cells import cell_len

from mlwarden.findings import Risk
from mlwarden.report import render
from mlwarden.report.console import ConsoleRenderer
from mlwarden.report.model import ImageCell, Report, Table

ANSI_SGR = re.compile(r"\x1b\[[0-9;]*m")


def test_header_names_version_inputs_and_duration(sample_report: Report) -> None:
    first = render(sample_report, "console").splitlines()[0]
    assert f"mlwarden {sample_report.tool_version}" in first
    assert "models/" in first
    assert "0.25 s" in first


def test_scorecard_lists_the_ten_risks_with_status(sample_report: Report) -> None:
    text = render(sample_report, "console")
    for risk in Risk:
        assert re.search(rf"{risk.value}\s+{re.escape(risk.title)}", text)
    ml06 = r"ML06\s+AI Supply Chain Attacks\s+CRITICAL\s+1 critical, 1 medium, 1 info"
    assert re.search(ml06, text)
    assert re.search(r"ML01\s+Input Manipulation Attack\s+not assessed", text)


def test_findings_are_grouped_worst_first_with_location_evidence_and_fix(
    sample_report: Report,
) -> None:
    text = render(sample_report, "console")
    assert text.index("CRITICAL  1") < text.index("MEDIUM  1") < text.index("INFO  1")
    assert "models/model.pt!archive/data.pkl@57" in text
    assert "models/config.json:12:5" in text
    assert CALL_CHAIN in text
    assert "Re-export the weights as safetensors" in text
    assert "REDUCE calls builtins.getattr" in text


def test_errors_and_not_assessed_checks_are_listed(sample_report: Report) -> None:
    text = render(sample_report, "console")
    assert "models/broken.7z: cannot open: bad 7z header" in text
    assert "ml01.evasion (ML01): needs target, data" in text


def test_last_line_is_the_verdict(sample_report: Report) -> None:
    lines = [line for line in render(sample_report, "console").splitlines() if line.strip()]
    assert lines[-1].startswith("FAIL: 1 finding at or above high (1 critical)")


def test_plain_output_has_no_escape_codes_and_colour_output_has_them(
    sample_report: Report,
) -> None:
    assert "\x1b" not in render(sample_report, "console", color=False)
    coloured = render(sample_report, "console", color=True)
    assert ANSI_SGR.search(coloured)
    assert ANSI_SGR.sub("", coloured).replace(" ", "") == render(sample_report, "console").replace(
        " ", ""
    )


def test_lines_fit_in_100_columns(sample_report: Report, hostile_report: Report) -> None:
    for report in (sample_report, hostile_report):
        for line in render(report, "console").splitlines():
            assert cell_len(line) <= 100, line


def test_width_can_be_narrowed_for_an_80_column_terminal(sample_report: Report) -> None:
    text = ConsoleRenderer(width=80).render(sample_report)
    assert max(cell_len(line) for line in text.splitlines()) <= 80
    assert CALL_CHAIN.replace(" ", "") in text.replace("\n", "").replace(" ", "")


def test_hostile_strings_are_shown_literally_never_as_markup_or_terminal_codes(
    hostile_report: Report,
) -> None:
    for color in (False, True):
        text = render(hostile_report, "console", color=color)
        assert "\x1b[2J" not in text
        assert "\u202e" not in text
        assert not ANSI_SGR.sub("", text).count("\x1b")
        plain = ANSI_SGR.sub("", text)
        assert "[bold red]markup[/]" in plain
        assert "\\x1b[2J\\u202e" in plain


def test_empty_report_says_nothing_was_assessed(empty_report: Report) -> None:
    text = render(empty_report, "console")
    assert "Findings (" not in text
    assert text.rstrip().splitlines()[-1] == "NOTHING ASSESSED: no check found anything to assess."


def test_clean_report_passes() -> None:
    report = Report(
        checks_run=["ml06.model_files"], risks_assessed={"ml06.model_files": [Risk.ML06]}
    )
    text = render(report, "console")
    assert re.search(r"ML06\s+AI Supply Chain Attacks\s+pass", text)
    assert text.rstrip().splitlines()[-1] == "PASS: no findings."


def test_metric_tables_are_drawn_as_tables_and_other_metrics_are_not_dumped() -> None:
    table = Table(("eps (linf)", "pgd"), (("0.0314 (8/255)", "12.5%"),), "Robust accuracy")
    report = Report(metrics={"ml01.evasion": {"robustness": table.to_data(), "by_eps": [1, 2]}})
    text = render(report, "console")
    section = text.split("Measurements")[1]
    assert "ml01.evasion  Robust accuracy" in section
    assert re.search(r"eps \(linf\)\s+pgd", section)
    assert re.search(r"0\.0314 \(8/255\)\s+12\.5%", section)
    assert "by_eps" not in text


def test_metric_table_cells_are_shown_literally() -> None:
    table = Table((HOSTILE,), ((HOSTILE,), (ImageCell("AAAA", "a picture"),)), HOSTILE)
    for color in (False, True):
        text = render(Report(metrics={"check": {"t": table.to_data()}}), "console", color=color)
        assert "\x1b[2J" not in text and "\u202e" not in text
        plain = ANSI_SGR.sub("", text)
        assert "[bold red]markup[/]" in plain
        assert "[a picture]" in plain
