"""The HTML report: self-contained, complete, and safe with hostile file content."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from html.parser import HTMLParser

from report_samples import CALL_CHAIN, HOSTILE

from mlwarden.findings import Risk
from mlwarden.report import render
from mlwarden.report.html import INVENTORY_OPEN_MAX_ROWS, PAGE_SCRIPT
from mlwarden.report.model import Figure, Report, ScannedFile, Table


class PageParser(HTMLParser):
    """Collects what a browser would act on: elements, attributes and script bodies."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)
        else:
            self.text.append(data)


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def test_page_is_self_contained(sample_report: Report) -> None:
    page = render(sample_report, "html")
    parsed = parse(page)
    for tag, attrs in parsed.tags:
        assert tag not in {"link", "iframe", "object", "embed", "base"}
        source = attrs.get("src")
        if source is not None:
            assert source.startswith("data:image/png;base64,"), (tag, source)
    assert "@import" not in page
    assert "url(" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_content_security_policy_allows_only_the_page_script(sample_report: Report) -> None:
    parsed = parse(render(sample_report, "html"))
    policy = next(
        a["content"] for _, a in parsed.tags if a.get("http-equiv") == "Content-Security-Policy"
    )
    assert policy is not None
    assert "default-src 'none'" in policy
    digest = base64.b64encode(hashlib.sha256(PAGE_SCRIPT.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy
    assert parsed.scripts == [PAGE_SCRIPT]


def test_hostile_strings_are_escaped_everywhere(hostile_report: Report) -> None:
    page = render(hostile_report, "html")
    parsed = parse(page)
    assert [t for t, _ in parsed.tags].count("script") == 1
    assert parsed.scripts == [PAGE_SCRIPT]
    for _tag, attrs in parsed.tags:
        assert not any(name.startswith("on") for name in attrs)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "\x1b" not in page
    assert "\u202e" not in page
    text = "".join(parsed.text)
    assert f"archive/{HOSTILE}".replace("\x1b", "\\x1b").replace("\u202e", "\\u202e") in text


def test_hostile_member_name_in_the_inventory_is_escaped() -> None:
    report = Report(scanned=[ScannedFile("m.zip", "<script>alert(1)</script>", "pickle", 1)])
    page = render(report, "html")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_summary_cards_show_counts_and_verdict(sample_report: Report) -> None:
    page = render(sample_report, "html")
    assert '<div class="verdict fail" role="status">FAIL: 1 finding at or above high' in page
    for severity, count in [("critical", 1), ("high", 0), ("medium", 1), ("low", 0), ("info", 1)]:
        assert (
            f'<div class="card {severity}"><span class="n">{count}</span>'
            f'<span class="k">{severity}</span></div>'
        ) in page


def test_scorecard_has_ten_rows_with_status(sample_report: Report) -> None:
    page = render(sample_report, "html")
    scorecard = page.split('<section id="scorecard">')[1].split("</section>")[0]
    assert scorecard.count("<tr>") == 11
    for risk in Risk:
        assert f">{risk.value}</a>" in scorecard
        assert risk.title in scorecard
    assert '<span class="badge critical">critical</span>' in scorecard
    assert scorecard.count('<span class="badge not-assessed">not assessed</span>') == 9


def test_findings_are_grouped_by_risk_then_severity_in_details(sample_report: Report) -> None:
    sample_report.findings.append(
        dataclasses.replace(sample_report.findings[0], risk=Risk.ML10, title="Poisoned weights")
    )
    page = render(sample_report, "html")
    ml06 = page.index("<h3>ML06 · AI Supply Chain Attacks (3)</h3>")
    ml10 = page.index("<h3>ML10 · Model Poisoning (1)</h3>")
    assert ml06 < page.index("<h4>critical (1)</h4>") < page.index("<h4>medium (1)</h4>") < ml10
    assert page.count('<details class="finding') == 4
    assert re.search(r'<details class="finding critical" id="finding-[0-9a-f]{16}" open>', page)
    assert re.search(r'<details class="finding medium" id="finding-[0-9a-f]{16}">', page)


def test_evidence_is_shown_as_code_with_the_call_chain_first(sample_report: Report) -> None:
    page = render(sample_report, "html")
    escaped_call = CALL_CHAIN.replace("'", "&#39;")
    assert f'<dt>call</dt><dd class="primary"><pre><code>{escaped_call}</code></pre></dd>' in page
    assert page.index("<dt>call</dt>") < page.index("<dt>opcode</dt>")
    assert "models/model.pt!archive/data.pkl@57" in page
    assert "Re-export the weights as safetensors." in page


def test_inventory_lists_every_file_and_member(sample_report: Report) -> None:
    page = render(sample_report, "html")
    files = page.split('<section id="files">')[1].split("</section>")[0]
    assert files.count("<tr>") == 1 + len(sample_report.scanned)
    assert '<td class="path">inner.tar!data.bin</td>' in files
    assert '<details class="section" open>' in files


def test_long_inventory_starts_collapsed() -> None:
    rows = INVENTORY_OPEN_MAX_ROWS + 1
    scanned = [ScannedFile(f"f{i}.pt", None, "pickle", i) for i in range(rows)]
    files = render(Report(scanned=scanned), "html").split('<section id="files">')[1]
    assert '<details class="section">' in files.split("</section>")[0]


def test_errors_and_not_assessed_checks_are_listed(sample_report: Report) -> None:
    page = render(sample_report, "html")
    assert '<td class="path">models/broken.7z</td><td>cannot open: bad 7z header</td>' in page
    assert "<td><code>ml01.evasion</code></td><td>ML01</td><td>needs target, data</td>" in page


def test_figures_inline_svg_and_png_data_uri(sample_report: Report) -> None:
    page = render(sample_report, "html")
    assert '<figure id="figure-svg-1">' in page
    assert "<svg xmlns=" in page
    assert 'src="data:image/png;base64,iVBOR' in page


def test_png_figure_that_is_not_base64_is_not_embedded() -> None:
    bad = Figure("bad", "Bad", "png", 'AAAA" onerror="alert(1)')
    page = render(Report(figures=[bad]), "html")
    assert "onerror" not in page.split('<figure id="figure-bad">')[1].split("</figure>")[0]
    assert "This figure could not be shown." in page


def test_page_prints_well(sample_report: Report) -> None:
    page = render(sample_report, "html")
    assert "@media print" in page
    assert "beforeprint" in PAGE_SCRIPT


def test_empty_report(empty_report: Report) -> None:
    page = render(empty_report, "html")
    assert "No findings." in page
    assert "No file was scanned." in page
    assert '<div class="verdict nothing-assessed" role="status">NOTHING ASSESSED' in page
    assert '<section id="figures">' not in page


def test_metric_tables_are_html_tables_and_other_metrics_stay_listed() -> None:
    table = Table(("eps", "<b>pgd</b>"), (("0.1", "<script>x</script>"),), "Robust accuracy")
    report = Report(metrics={"ml01.evasion": {"robustness": table.to_data(), "n": 4}, "files": 2})
    section = render(report, "html").split('<section id="metrics">')[1].split("</section>")[0]
    assert "<h3><code>ml01.evasion</code></h3><h4>Robust accuracy</h4>" in section
    assert "<th>&lt;b&gt;pgd&lt;/b&gt;</th>" in section
    assert "<td>0.1</td><td>&lt;script&gt;x&lt;/script&gt;</td>" in section
    assert "<dt>n</dt><dd><code>4</code></dd>" in section
    assert "<dt>files</dt><dd><code>2</code></dd>" in section
    assert section.index("<dt>files</dt>") < section.index("ml01.evasion")


def test_figures_without_a_risk_are_listed_after_those_with_one(sample_report: Report) -> None:
    section = render(sample_report, "html").split('<section id="figures">')[1]
    assert section.index("<h3>ML06 · AI Supply Chain Attacks</h3>") < section.index(
        "<h3>Other figures</h3>"
    )
    assert section.index('id="figure-svg-1"') < section.index('id="figure-png-1"')
