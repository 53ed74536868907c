"""The robustness figures: honest curves, decodable pictures, tables of moved features; inert."""

from __future__ import annotations

import json
import struct
import xml.etree.ElementTree as ET
import zlib
from base64 import b64decode

import numpy as np
import pytest

from mlwarden.errors import InputError
from mlwarden.evaluate.results import AdversarialExample, RobustnessResult
from mlwarden.findings import Risk
from mlwarden.report import figures, render
from mlwarden.report.model import Figure, ImageCell, Report, Table

SVG = "{http://www.w3.org/2000/svg}"
EPS = [1 / 255, 2 / 255, 4 / 255, 8 / 255]


def example(
    index: int,
    x: np.ndarray,
    x_adv: np.ndarray,
    *,
    eps: float = 8 / 255,
    label: int = 7,
    fooled: bool = True,
) -> AdversarialExample:
    return AdversarialExample(
        index=index,
        eps=eps,
        attack="pgd",
        x=x.astype(np.float32),
        x_adv=x_adv.astype(np.float32),
        label=label,
        clean_prediction=label,
        clean_confidence=0.98,
        adversarial_prediction=3 if fooled else label,
        adversarial_confidence=0.61,
    )


def result_with(
    examples: list[AdversarialExample],
    *,
    minimal_norms: np.ndarray | None = None,
    per_attack: dict[str, dict[float, float]] | None = None,
    feature_names: tuple[str, ...] = (),
) -> RobustnessResult:
    robust = {e: a for e, a in zip(EPS, [0.8, 0.6, 0.3, 0.05], strict=True)}
    norms = np.array([0.0, 0.003, 0.01, 0.02, np.inf]) if minimal_norms is None else minimal_norms
    return RobustnessResult(
        target_name="digits",
        norm="linf",
        eps=list(EPS),
        suite="standard",
        attacks=["pgd", "square"],
        n_samples=len(norms),
        clean_accuracy=0.9,
        robust_accuracy=robust,
        per_attack=per_attack
        if per_attack is not None
        else {"pgd": dict(robust), "square": {e: a + 0.1 for e, a in robust.items()}},
        robust=np.zeros((len(norms), len(EPS)), dtype=bool),
        minimal_norms=norms,
        examples=examples,
        feature_names=feature_names,
    )


def image_result(count: int = 3, shape: tuple[int, ...] = (1, 8, 8)) -> RobustnessResult:
    rng = np.random.default_rng(0)
    examples = []
    for i in range(count):
        x = rng.random(shape) * 0.8 + 0.1
        examples.append(example(i, x, x + 8 / 255, eps=EPS[i % len(EPS)]))
    return result_with(examples)


def tabular_result() -> RobustnessResult:
    x = np.full(4, 0.5)
    return result_with(
        [
            example(0, x, x + np.array([0.1, 0.0, -0.02, 0.0])),
            example(1, x, x + np.array([0.05, 0.0, 0.0, 0.0])),
            example(2, x, x + np.array([0.0, 0.0, 0.0, 0.0]), fooled=False),
        ],
        feature_names=("income", "age", "debt", "zip"),
    )


def svg_root(figure: Figure) -> ET.Element:
    assert figure.kind == "svg"
    return ET.fromstring(figure.data)


def decode_png(data: str) -> np.ndarray:
    """Pixels of a PNG written by `png_bytes` (8-bit grey or RGB, no interlace, filter 0)."""
    raw = b64decode(data)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, {}
    while offset < len(raw):
        (length,) = struct.unpack(">I", raw[offset : offset + 4])
        kind = raw[offset + 4 : offset + 8]
        payload = raw[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", raw[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + payload) & 0xFFFFFFFF
        chunks[kind] = chunks.get(kind, b"") + payload
        offset += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert depth == 8 and interlace == 0
    channels = 3 if colour == 2 else 1
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8)
    rows = rows.reshape(height, 1 + width * channels)
    assert (rows[:, 0] == 0).all()
    pixels = rows[:, 1:].reshape(height, width, channels)
    return pixels[:, :, 0] if channels == 1 else pixels


def table_of(figure: Figure) -> Table:
    assert figure.kind == "table"
    table = Table.from_json(figure.data)
    assert table is not None
    return table


# -- robustness curve -------------------------------------------------------------------------


def test_curve_draws_one_line_per_attack_and_a_bold_worst_case() -> None:
    root = svg_root(figures.robustness_curve(image_result()))
    paths = root.findall(f"{SVG}path")
    assert len(paths) == 3
    widths = sorted(float(p.get("stroke-width", "0")) for p in paths)
    assert widths == [widths[0], widths[0], figures.BOLD_LINE_WIDTH]
    assert widths[0] < figures.BOLD_LINE_WIDTH / 1.5
    legend = [t.text for t in root.findall(f"{SVG}text")]
    assert {"pgd", "square", "worst case"} <= set(legend)


def test_curve_starts_at_clean_accuracy_and_marks_every_evaluated_eps() -> None:
    result = image_result()
    root = svg_root(figures.robustness_curve(result))
    marks = [c.find(f"{SVG}title") for c in root.findall(f"{SVG}circle")]
    labels = [m.text for m in marks if m is not None]
    assert "worst case: 90.0% at eps 0" in labels
    assert "worst case: 5.0% at eps 0.0314 (8/255)" in labels
    assert "pgd: 30.0% at eps 0.0157 (4/255)" in labels
    assert len(labels) == 3 * (1 + len(EPS))


def test_curve_names_the_norm_and_units_and_is_accessible() -> None:
    figure = figures.robustness_curve(image_result())
    root = svg_root(figure)
    assert root.get("role") == "img"
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == "digits: robust accuracy against linf perturbations"
    description = root.find(f"{SVG}desc")
    assert description is not None and "worst case: 90.0% at eps 0" in (description.text or "")
    texts = [t.text for t in root.findall(f"{SVG}text")]
    assert "eps, linf norm (input units)" in texts
    assert {"0%", "50%", "100%"} <= set(texts)
    assert {"0", "0.01", "0.02", "0.03"} <= set(texts)
    assert figure.risk is Risk.ML01


def test_curve_skips_budgets_an_attack_did_not_run() -> None:
    result = result_with([], per_attack={"pgd": {EPS[0]: 0.7, EPS[3]: float("nan")}})
    root = svg_root(figures.robustness_curve(result))
    labels = [c.find(f"{SVG}title") for c in root.findall(f"{SVG}circle")]
    pgd = [t.text for t in labels if t is not None and (t.text or "").startswith("pgd")]
    assert pgd == ["pgd: 90.0% at eps 0", "pgd: 70.0% at eps 0.00392 (1/255)"]


def test_curve_escapes_attack_names_and_carries_no_script_or_link() -> None:
    hostile = "<script>alert(1)</script>&"
    result = result_with([], per_attack={hostile: {EPS[0]: 0.5}})
    figure = figures.robustness_curve(result)
    root = svg_root(figure)
    assert "<script" not in figure.data
    assert hostile[:21] + "…" in [t.text for t in root.findall(f"{SVG}text")]
    for element in root.iter():
        assert element.tag.removeprefix(SVG) not in {"script", "a", "foreignObject", "style"}
        assert not any(name.startswith("on") or "href" in name for name in element.attrib)


def test_curve_marks_an_interrupted_run_as_overstated() -> None:
    result = image_result()
    result.interrupted = True
    assert "overstated" in figures.robustness_curve(result).caption


def test_perturbation_distribution_counts_only_correctly_classified_samples() -> None:
    figure = figures.perturbation_distribution(image_result())
    assert figure is not None
    root = svg_root(figure)
    description = root.find(f"{SVG}desc")
    assert description is not None
    assert description.text == (
        "3 of 4 correctly classified samples were fooled; median smallest perturbation 0.01; "
        "1 never fooled."
    )
    assert "curve stops below 100%" in figure.caption
    [path] = [p for p in root.findall(f"{SVG}path")]
    last_y = float(path.get("d", "").split(",")[-1])
    bottom = figures.CURVE_HEIGHT_PX - figures.MARGIN_BOTTOM_PX
    assert last_y == pytest.approx(bottom - 0.75 * (bottom - figures.MARGIN_TOP_PX), abs=0.1)


def test_no_perturbation_distribution_when_nothing_was_fooled() -> None:
    result = result_with([], minimal_norms=np.array([0.0, np.inf, np.inf]))
    assert figures.perturbation_distribution(result) is None


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert figures.nice_ticks(0.0, 8 / 255) == [0.0, 0.01, 0.02, 0.03, 0.04]
    assert figures.nice_ticks(0.0, 2.0) == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert figures.nice_ticks(0.0, 0.0) == [0.0, 1.0]


def test_eps_text_shows_fractions_of_255() -> None:
    assert figures.eps_text(8 / 255) == "0.0314 (8/255)"
    assert figures.eps_text(0.5) == "0.5"
    assert figures.eps_text(0) == "0"
    assert figures.eps_text(3.0) == "3"
    assert figures.eps_text(0.2) == "0.2"


# -- gallery ----------------------------------------------------------------------------------


def test_gallery_rows_hold_original_adversarial_and_magnified_perturbation() -> None:
    x = np.zeros((1, 8, 8))
    x[0, 2, 3] = 1.0
    delta = np.zeros((1, 8, 8))
    delta[0, 0, 0], delta[0, 7, 7] = 0.05, -0.05
    result = result_with([example(4, x, x + delta)])
    figure = figures.gallery(result, input_range=(0.0, 1.0))
    assert figure is not None and figure.risk is Risk.ML01
    [row] = table_of(figure).rows
    sample, original, adversarial, perturbation, prediction, found_by = row
    assert sample == "#4 (label 7)"
    assert prediction == "7 (98%) -> 3 (61%)"
    assert "pgd at eps 0.0314 (8/255)" in str(found_by)
    assert isinstance(original, ImageCell) and isinstance(perturbation, ImageCell)
    assert isinstance(adversarial, ImageCell)
    pixels = decode_png(original.png)
    assert pixels.shape == (96, 96)
    assert (pixels[24:36, 36:48] == 255).all() and pixels[0, 0] == 0
    magnified = decode_png(perturbation.png)
    assert magnified[0, 0] == 255 and magnified[-1, -1] == 0
    assert magnified[50, 50] == 128
    assert decode_png(adversarial.png)[0, 0] == round(0.05 * 255)
    assert "x10" in perturbation.alt


def test_gallery_shows_each_sample_once_at_its_smallest_budget() -> None:
    x = np.full((8, 8), 0.5)
    result = result_with(
        [
            example(1, x, x + EPS[3], eps=EPS[3]),
            example(1, x, x + EPS[0], eps=EPS[0]),
            example(2, x, x, fooled=False),
            example(3, x, x + EPS[1], eps=EPS[1]),
        ]
    )
    figure = figures.gallery(result)
    assert figure is not None
    rows = table_of(figure).rows
    assert [r[0] for r in rows] == ["#1 (label 7)", "#3 (label 7)"]
    assert "eps 0.00392 (1/255)" in str(rows[0][5])


def test_gallery_stops_at_max_examples_and_draws_colour_images_enlarged_at_most_16x() -> None:
    figure = figures.gallery(image_result(count=5, shape=(3, 4, 4)), max_examples=2)
    assert figure is not None
    rows = table_of(figure).rows
    assert len(rows) == 2
    cell = rows[0][1]
    assert isinstance(cell, ImageCell)
    assert decode_png(cell.png).shape == (4 * figures.GALLERY_MAX_SCALE,) * 2 + (3,)


def test_gallery_is_only_for_images() -> None:
    assert figures.gallery(tabular_result()) is None
    assert figures.gallery(result_with([])) is None
    with pytest.raises(InputError, match="max_examples"):
        figures.gallery(image_result(), max_examples=0)


def test_png_bytes_rejects_what_it_cannot_encode() -> None:
    with pytest.raises(InputError, match="uint8"):
        figures.png_bytes(np.zeros((2, 2)))
    with pytest.raises(InputError, match="3 channels"):
        figures.png_bytes(np.zeros((2, 2, 4), dtype=np.uint8))
    with pytest.raises(InputError, match="non-empty"):
        figures.png_bytes(np.zeros((0, 2), dtype=np.uint8))


# -- feature table ----------------------------------------------------------------------------


def test_feature_table_lists_moved_features_largest_mean_change_first() -> None:
    figure = figures.feature_table(tabular_result(), input_range=(0.0, 1.0))
    assert figure is not None and figure.risk is Risk.ML01
    table = table_of(figure)
    assert table.columns == ("feature", "moved in", "mean |change|", "max |change|", "direction")
    assert table.rows == (
        ("income", "2 of 2 (100.0%)", "0.075", "0.1", "up"),
        ("debt", "1 of 2 (50.0%)", "0.01", "0.02", "down"),
    )
    assert "2 of 4 features moved" in figure.caption


def test_feature_table_takes_names_and_caps_rows() -> None:
    figure = figures.feature_table(tabular_result(), ["a", "b", "c", "d"], max_features=1)
    assert figure is not None
    assert [r[0] for r in table_of(figure).rows] == ["a"]
    assert "the 1 with the largest mean change shown" in figure.caption
    unnamed = result_with(tabular_result().examples)
    figure = figures.feature_table(unnamed)
    assert figure is not None and table_of(figure).rows[0][0] == "x[0]"


def test_feature_table_rejects_names_that_do_not_fit() -> None:
    with pytest.raises(InputError, match="3 feature names for 4 features"):
        figures.feature_table(tabular_result(), ["a", "b", "c"])
    with pytest.raises(InputError, match="max_features"):
        figures.feature_table(tabular_result(), max_features=0)


def test_feature_table_is_only_for_flat_samples() -> None:
    assert figures.feature_table(image_result()) is None
    x = np.full(3, 0.5)
    assert figures.feature_table(result_with([example(0, x, x)])) is None


# -- the figures in the HTML report -----------------------------------------------------------


def test_html_embeds_the_figures_under_their_risk_without_breaking_the_policy() -> None:
    result = image_result()
    drawn = [
        figures.robustness_curve(result),
        figures.perturbation_distribution(result),
        figures.gallery(result),
        figures.feature_table(tabular_result()),
    ]
    page = render(Report(figures=[f for f in drawn if f is not None]), "html")
    section = page.split('<section id="figures">')[1].split("</section>")[0]
    assert "<h3>ML01 · Input Manipulation Attack</h3>" in section
    assert section.count("<figure ") == 4
    assert section.count('src="data:image/png;base64,') == 3 * 3
    assert "<td>7 (98%) -&gt; 3 (61%)</td>" in section
    assert "<td>income</td>" in section
    assert page.count("<script") == 1


def test_html_table_figure_escapes_text_and_refuses_non_base64_images() -> None:
    table = Table(
        columns=("<b>col</b>",),
        rows=(("<script>alert(1)</script>",), (ImageCell('AA" onerror="alert(1)', "<i>x</i>"),)),
    )
    page = render(Report(figures=[Figure("t", "T", "table", table.to_json())]), "html")
    section = page.split('<section id="figures">')[1].split("</section>")[0]
    assert "<script>" not in section and "onerror" not in section and "<b>" not in section
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section
    assert "&lt;i&gt;x&lt;/i&gt; (could not be shown)" in section


def test_html_shows_a_broken_table_figure_as_not_shown() -> None:
    page = render(Report(figures=[Figure("t", "T", "table", "{not json")]), "html")
    assert "This figure could not be shown." in page


def test_table_data_round_trips_and_rejects_other_shapes() -> None:
    table = Table(("a", "b"), (("1", ImageCell("AAAA", "dot")),), "T")
    assert Table.from_json(table.to_json()) == table
    assert Table.from_data({"columns": ["n"], "rows": [[1.5], [None]]}) == Table(
        ("n",), (("1.5",), ("",))
    )
    for bad in (
        {"columns": ["a"], "rows": [["1", "2"]]},
        {"columns": ["a"], "rows": [[{"x": 1}]]},
        {"columns": ["a"], "rows": [], "extra": 1},
        {"columns": "a", "rows": []},
        {"rows": []},
        [1, 2],
    ):
        assert Table.from_data(bad) is None
    assert json.loads(table.to_json())["rows"][0][1] == {"png": "AAAA", "alt": "dot"}


def test_tables_are_found_in_each_checks_metrics() -> None:
    table = Table(("a",), (("1",),), "T").to_data()
    metrics = {"files": 3, "ml01.evasion": {"robustness": table, "n": 4}, "top": table}
    assert [(k, t.title) for k, t in Table.in_metrics(metrics)] == [
        ("ml01.evasion", "T"),
        ("top", "T"),
    ]
