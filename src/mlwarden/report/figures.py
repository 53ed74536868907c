"""The pictures of the audit's checks, drawn from their results and nothing else.

`robustness_curve` (robust accuracy against eps, one line per attack and the worst case) and
`perturbation_distribution` (how large the smallest fooling perturbation is) are hand-written SVG;
`gallery` shows image examples as original | adversarial | perturbation magnified, encoded as PNG
here with zlib; `feature_table` shows which tabular features the attacks moved. For the privacy
checks: `roc_curves` (membership ROC on log-log axes), `inversion_grid` (one reconstruction per
class beside the class mean) and `defence_chart` (leakage and accuracy per defence). Each returns a
`Figure` the HTML renderer embeds as is, so every string drawn here is escaped here and no SVG
carries a script, a link or a style sheet. Not for: running attacks (`mlwarden.evaluate`,
`mlwarden.attacks`) or deciding severities (the checks).
"""

from __future__ import annotations

import base64
import html
import math
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mlwarden.errors import InputError
from mlwarden.evaluate.results import AdversarialExample, RobustnessResult
from mlwarden.findings import Risk
from mlwarden.report.model import Figure, ImageCell, Table, TableCell

if TYPE_CHECKING:
    from mlwarden.attacks.membership.base import AttackOutcome
    from mlwarden.privacy.results import ClassReconstruction, DefenceComparison

CURVE_WIDTH_PX = 720
CURVE_HEIGHT_PX = 360
LEGEND_WIDTH_PX = 170
MARGIN_LEFT_PX = 64
MARGIN_TOP_PX = 28
MARGIN_BOTTOM_PX = 56
MARGIN_RIGHT_PX = 16
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"
MAX_LEGEND_NAME_CHARS = 22

ATTACK_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
"""Okabe-Ito colours, told apart by colour-blind readers; black is kept for the worst case."""
ATTACK_DASHES = ("", "6 3", "2 3")
"""Dash patterns cycled after the colours run out, so that every attack stays distinct."""
WORST_CASE_COLOUR = "#111111"
BOLD_LINE_WIDTH = 3.5
"""Stroke width of the worst-case line; legend entries this wide are set in bold."""

GALLERY_MIN_SIDE_PX = 96
"""Small images (8x8 digits) are enlarged with nearest neighbour to at least this size."""
GALLERY_MAX_SCALE = 16
IMAGE_CHANNELS = (1, 3)
CHANGE_TOLERANCE = 1e-6
"""A feature counts as moved when it changed by more than this fraction of the input range."""
MAX_TABLE_FEATURES = 15


MAX_STEPS_SHOWN = 32
"""Budgets up to 32/255 are written as fractions too; larger ones (0.2 = 51/255) are not image
budgets people think of in steps of 1/255."""


def figure_id(base: str, result: RobustnessResult) -> str:
    """`base` made unique per model, so one report can hold the figures of several models."""
    slug = re.sub(r"[^a-z0-9]+", "-", result.target_name.lower()).strip("-")
    return f"{base}-{slug}" if slug else base


def image_shape(shape: Sequence[int]) -> bool:
    """True for the shape of one image sample: ``(C, H, W)`` with C in {1, 3}, or ``(H, W)``."""
    if len(shape) == 3:
        return shape[0] in IMAGE_CHANNELS and shape[1] > 1 and shape[2] > 1
    return len(shape) == 2 and shape[0] > 1 and shape[1] > 1


def eps_text(eps: float) -> str:
    """A budget as people read it: ``0.0314 (8/255)`` when it is a small whole number of 1/255
    steps."""
    if eps == 0:
        return "0"
    steps = eps * 255
    if eps < 1 and round(steps) <= MAX_STEPS_SHOWN and abs(steps - round(steps)) < 1e-4:
        return f"{eps:.3g} ({round(steps)}/255)"
    return f"{eps:.3g}"


def percent(fraction: float) -> str:
    """``0.9375`` -> ``93.8%``; NaN -> ``n/a``."""
    return "n/a" if math.isnan(fraction) else f"{100 * fraction:.1f}%"


def fooling_examples(result: RobustnessResult) -> list[AdversarialExample]:
    """Examples that turn a correct prediction into a wrong one, smallest eps first, one per
    sample (a sample fooled at several budgets is shown at the smallest)."""
    seen: set[int] = set()
    chosen = []
    for example in sorted(result.examples, key=lambda e: (e.eps, e.index)):
        fooled = example.clean_prediction == example.label != example.adversarial_prediction
        if fooled and example.index not in seen:
            seen.add(example.index)
            chosen.append(example)
    return chosen


# -- robustness curve -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Series:
    name: str
    points: list[tuple[float, float]]
    colour: str
    dash: str
    width: float


def robustness_curve(result: RobustnessResult) -> Figure:
    """Robust accuracy (0..1) against eps (input units, `result.norm`): one line per attack and a
    bold line for the worst case over the suite. eps 0 is the clean accuracy, by definition."""
    series = [
        _Series(
            name=attack,
            points=_with_clean(result, result.per_attack[attack]),
            colour=ATTACK_COLOURS[i % len(ATTACK_COLOURS)],
            dash=ATTACK_DASHES[(i // len(ATTACK_COLOURS)) % len(ATTACK_DASHES)],
            width=1.8,
        )
        for i, attack in enumerate(sorted(result.per_attack))
    ]
    series.append(
        _Series(
            "worst case",
            _with_clean(result, result.robust_accuracy),
            WORST_CASE_COLOUR,
            "",
            BOLD_LINE_WIDTH,
        )
    )
    x_max = max([0.0, *result.eps])
    title = f"{result.target_name}: robust accuracy against {result.norm} perturbations"
    description = (
        f"Robust accuracy of {result.n_samples} samples under the {result.suite} suite; "
        + "; ".join(
            f"{s.name}: "
            + ", ".join(f"{percent(acc)} at eps {eps_text(eps)}" for eps, acc in s.points)
            for s in series
        )
    )
    plot = _Plot(
        figure_id=figure_id("evasion-robustness-curve", result),
        title=title,
        description=description,
        x_label=f"eps, {result.norm} norm (input units)",
        y_label="robust accuracy",
        x_max=x_max if x_max > 0 else 1.0,
    )
    body = [plot.axes()]
    for s in series:
        body.append(plot.line(s))
    body.append(plot.legend(series))
    caption = (
        f"{result.n_samples} samples, {result.suite} suite ({', '.join(result.attacks)}). "
        "A sample counts as robust at an eps only if no attack fooled it (worst case); "
        "eps 0 is the clean accuracy. Later attacks of a suite only see the samples earlier "
        "ones did not fool, so their own lines are upper bounds."
    )
    if result.interrupted:
        caption += " The run was interrupted: robust accuracy is overstated."
    return Figure(
        id=figure_id("evasion-robustness-curve", result),
        title=title,
        kind="svg",
        data=plot.svg(body),
        risk=Risk.ML01,
        caption=caption,
    )


def perturbation_distribution(result: RobustnessResult) -> Figure | None:
    """Empirical CDF of the smallest fooling perturbation per correctly classified sample (norm
    `result.norm`, input units); None when no attack fooled any sample."""
    norms = np.asarray(result.minimal_norms, dtype=np.float64)
    correct = norms[norms > 0]
    fooled = np.sort(correct[np.isfinite(correct)])
    if len(fooled) == 0:
        return None
    share = np.arange(1, len(fooled) + 1) / len(correct)
    points = [(0.0, 0.0)]
    for value, fraction in zip(fooled.tolist(), share.tolist(), strict=True):
        points += [(value, points[-1][1]), (value, fraction)]
    x_max = max(float(fooled[-1]), *result.eps, 0.0) * 1.05
    points.append((x_max, points[-1][1]))
    median = float(np.median(fooled))
    never = len(correct) - len(fooled)
    title = f"{result.target_name}: smallest fooling perturbation ({result.norm})"
    description = (
        f"{len(fooled)} of {len(correct)} correctly classified samples were fooled; "
        f"median smallest perturbation {median:.3g}; {never} never fooled."
    )
    plot = _Plot(
        figure_id=figure_id("evasion-perturbation-distribution", result),
        title=title,
        description=description,
        x_label=f"perturbation size, {result.norm} norm (input units)",
        y_label="share of samples fooled",
        x_max=x_max,
    )
    line = _Series("fooled at this size", points, ATTACK_COLOURS[0], "", 2.5)
    body = [plot.axes()]
    body += [plot.vertical(eps, f"eps {eps_text(eps)}", "#9aa5b1", "2 3") for eps in result.eps]
    body.append(plot.vertical(median, f"median {median:.3g}", WORST_CASE_COLOUR, "6 3"))
    body.append(plot.line(line, markers=False))
    median_series = _Series(f"median {median:.3g}", [], WORST_CASE_COLOUR, "6 3", 1.5)
    eps_series = _Series("evaluated eps", [], "#9aa5b1", "2 3", 1.5)
    body.append(plot.legend([line, median_series, eps_series]))
    caption = (
        f"For each sample the model classifies correctly, the smallest {result.norm} perturbation "
        f"any attack found that changes its prediction. {len(fooled)} of {len(correct)} fooled"
    )
    caption += (
        f"; {never} never fooled, so the curve stops below 100%." if never else "; all fooled."
    )
    return Figure(
        id=figure_id("evasion-perturbation-distribution", result),
        title=title,
        kind="svg",
        data=plot.svg(body),
        risk=Risk.ML01,
        caption=caption,
    )


def _with_clean(result: RobustnessResult, by_eps: dict[float, float]) -> list[tuple[float, float]]:
    points = {0.0: result.clean_accuracy}
    points.update({float(e): float(a) for e, a in by_eps.items() if not math.isnan(a)})
    return sorted(points.items())


class _Plot:
    """Axes of one chart: maps data to pixels and draws ticks, labels, lines and a legend."""

    def __init__(
        self,
        *,
        figure_id: str,
        title: str,
        description: str,
        x_label: str,
        y_label: str,
        x_max: float,
    ) -> None:
        self.figure_id = figure_id
        self.title = title
        self.description = description
        self.x_label = x_label
        self.y_label = y_label
        self.x_ticks = nice_ticks(0.0, x_max)
        self.x_max = max(x_max, self.x_ticks[-1])
        self.left = MARGIN_LEFT_PX
        self.right = CURVE_WIDTH_PX - LEGEND_WIDTH_PX - MARGIN_RIGHT_PX
        self.top = MARGIN_TOP_PX
        self.bottom = CURVE_HEIGHT_PX - MARGIN_BOTTOM_PX

    def x(self, value: float) -> float:
        return self.left + (self.right - self.left) * value / self.x_max

    def y(self, fraction: float) -> float:
        return self.bottom - (self.bottom - self.top) * min(max(fraction, 0.0), 1.0)

    def svg(self, body: list[str]) -> str:
        ids = f"{self.figure_id}-title {self.figure_id}-desc"
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CURVE_WIDTH_PX} '
            f'{CURVE_HEIGHT_PX}" width="{CURVE_WIDTH_PX}" height="{CURVE_HEIGHT_PX}" role="img" '
            f'aria-labelledby="{ids}" font-family="{_escape(FONT)}" font-size="12">'
            f'<title id="{self.figure_id}-title">{_escape(self.title)}</title>'
            f'<desc id="{self.figure_id}-desc">{_escape(self.description)}</desc>'
            + "".join(body)
            + "</svg>"
        )

    def axes(self) -> str:
        parts = [
            f'<rect x="{self.left}" y="{self.top}" width="{self.right - self.left}" '
            f'height="{self.bottom - self.top}" fill="#ffffff" stroke="#9aa5b1"/>'
        ]
        for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
            y = self.y(fraction)
            parts.append(
                f'<line x1="{self.left}" y1="{y:.1f}" x2="{self.right}" y2="{y:.1f}" '
                'stroke="#e4e7eb"/>'
                f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#3e4c59">'
                f"{100 * fraction:.0f}%</text>"
            )
        for tick in self.x_ticks:
            x = self.x(tick)
            parts.append(
                f'<line x1="{x:.1f}" y1="{self.bottom}" x2="{x:.1f}" y2="{self.bottom + 5}" '
                'stroke="#3e4c59"/>'
                f'<text x="{x:.1f}" y="{self.bottom + 18}" text-anchor="middle" fill="#3e4c59">'
                f"{_escape(tick_text(tick))}</text>"
            )
        parts.append(
            _axis_titles(self.left, self.right, self.top, self.bottom, self.x_label, self.y_label)
        )
        return "".join(parts)

    def line(self, series: _Series, *, markers: bool = True) -> str:
        if not series.points:
            return ""
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{self.x(x):.1f},{self.y(y):.1f}"
            for i, (x, y) in enumerate(series.points)
        )
        dash = f' stroke-dasharray="{series.dash}"' if series.dash else ""
        parts = [
            f'<path d="{path}" fill="none" stroke="{series.colour}" '
            f'stroke-width="{series.width}" stroke-linejoin="round"{dash}/>'
        ]
        if markers:
            for x, y in series.points:
                label = f"{series.name}: {percent(y)} at eps {eps_text(x)}"
                parts.append(
                    f'<circle cx="{self.x(x):.1f}" cy="{self.y(y):.1f}" r="3.2" '
                    f'fill="{series.colour}"><title>{_escape(label)}</title></circle>'
                )
        return "".join(parts)

    def vertical(self, value: float, label: str, colour: str, dash: str) -> str:
        x = self.x(value)
        return (
            f'<line x1="{x:.1f}" y1="{self.top}" x2="{x:.1f}" y2="{self.bottom}" '
            f'stroke="{colour}" stroke-dasharray="{dash}"><title>{_escape(label)}</title></line>'
        )

    def legend(self, series: list[_Series]) -> str:
        x = self.right + 18
        parts = []
        for i, s in enumerate(series):
            y = self.top + 10 + 20 * i
            dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
            name = s.name
            if len(name) > MAX_LEGEND_NAME_CHARS:
                name = name[: MAX_LEGEND_NAME_CHARS - 1] + "…"
            weight = "bold" if s.width >= BOLD_LINE_WIDTH else "normal"
            parts.append(
                f'<line x1="{x}" y1="{y}" x2="{x + 26}" y2="{y}" stroke="{s.colour}" '
                f'stroke-width="{s.width}"{dash}/>'
                f'<text x="{x + 32}" y="{y + 4}" fill="#1f2933" font-weight="{weight}">'
                f"{_escape(name)}</text>"
            )
        return "".join(parts)


def nice_ticks(low: float, high: float, max_ticks: int = 6) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering ``[low, high]``."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low, low + 1.0]
    raw_step = (high - low) / max(max_ticks - 1, 1)
    power = 10 ** math.floor(math.log10(raw_step))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw_step)
    first = math.floor(low / step)
    last = math.ceil(high / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def tick_text(value: float) -> str:
    """A tick label: short, no float noise (``0.03``, ``2.5``, ``1e-05``)."""
    return "0" if value == 0 else f"{value:.4g}"


def _axis_titles(
    left: float, right: float, top: float, bottom: float, x_label: str, y_label: str
) -> str:
    """The x title under a plot area and the y title rotated beside it (SVG)."""
    middle_x = (left + right) / 2
    middle_y = (top + bottom) / 2
    return (
        f'<text x="{middle_x:.1f}" y="{CURVE_HEIGHT_PX - 14}" text-anchor="middle" '
        f'fill="#1f2933">{_escape(x_label)}</text>'
        f'<text x="16" y="{middle_y:.1f}" text-anchor="middle" fill="#1f2933" '
        f'transform="rotate(-90 16 {middle_y:.1f})">{_escape(y_label)}</text>'
    )


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


# -- gallery ----------------------------------------------------------------------------------


def gallery(
    result: RobustnessResult,
    max_examples: int = 8,
    *,
    input_range: tuple[float, float] | None = None,
) -> Figure | None:
    """Image examples as rows of original | adversarial | perturbation magnified, captioned with
    the predicted labels and confidences; None for non-image data or when nothing was fooled.

    Args:
        max_examples: rows shown, >= 1; samples fooled at the smallest eps come first.
        input_range: (low, high) of valid inputs in input units; None infers it from the
            examples (at least [0, 1]).
    """
    if max_examples < 1:
        raise InputError(f"max_examples must be >= 1, got {max_examples}")
    examples = fooling_examples(result)[:max_examples]
    if not examples or not image_shape(examples[0].x.shape):
        return None
    low, high = input_range if input_range is not None else _data_range(examples)
    rows: list[tuple[TableCell, ...]] = []
    for example in examples:
        original = np.asarray(example.x, dtype=np.float64)
        adversarial = np.asarray(example.x_adv, dtype=np.float64)
        delta = adversarial - original
        largest = float(np.abs(delta).max())
        magnified = 0.5 + delta / (2 * largest) if largest > 0 else np.full_like(delta, 0.5)
        magnification = (high - low) / (2 * largest) if largest > 0 else 1.0
        prediction = (
            f"{example.clean_prediction} ({example.clean_confidence:.0%}) -> "
            f"{example.adversarial_prediction} ({example.adversarial_confidence:.0%})"
        )
        rows.append(
            (
                f"#{example.index} (label {example.label})",
                ImageCell(
                    _image_png((original - low) / (high - low)), f"original #{example.index}"
                ),
                ImageCell(
                    _image_png((adversarial - low) / (high - low)),
                    f"adversarial #{example.index}, predicted {example.adversarial_prediction}",
                ),
                ImageCell(_image_png(magnified), f"perturbation magnified x{magnification:.0f}"),
                prediction,
                f"{example.attack} at eps {eps_text(example.eps)}; "
                f"perturbation x{magnification:.0f}",
            )
        )
    table = Table(
        columns=(
            "sample",
            "original",
            "adversarial",
            "perturbation (magnified)",
            "prediction: clean -> adversarial",
            "found by",
        ),
        rows=tuple(rows),
        title=f"{result.target_name}: adversarial examples",
    )
    return Figure(
        id=figure_id("evasion-gallery", result),
        title=f"{result.target_name}: adversarial examples",
        kind="table",
        data=table.to_json(),
        risk=Risk.ML01,
        caption=(
            f"{len(rows)} samples the model classified correctly, each with the smallest-budget "
            f"adversarial input found ({result.norm}). The perturbation is scaled to the full "
            "range (mid-grey = unchanged) by the factor given per row; predictions show the "
            "class and its confidence."
        ),
    )


def _data_range(examples: list[AdversarialExample]) -> tuple[float, float]:
    low = min(0.0, *(float(min(e.x.min(), e.x_adv.min())) for e in examples))
    high = max(1.0, *(float(max(e.x.max(), e.x_adv.max())) for e in examples))
    return low, high


def _image_png(unit: np.ndarray) -> str:
    """Base64 PNG of one image in [0, 1] shaped ``(C, H, W)`` or ``(H, W)``, enlarged if small."""
    pixels = np.clip(np.nan_to_num(unit, nan=0.0), 0.0, 1.0)
    if pixels.ndim == 3:
        pixels = pixels[0] if pixels.shape[0] == 1 else np.moveaxis(pixels, 0, -1)
    scale = min(GALLERY_MAX_SCALE, max(1, math.ceil(GALLERY_MIN_SIDE_PX / max(pixels.shape[:2]))))
    pixels = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
    return base64.b64encode(png_bytes(np.round(pixels * 255).astype(np.uint8))).decode("ascii")


def png_bytes(pixels: np.ndarray) -> bytes:
    """A PNG file of 8-bit pixels ``(H, W)`` (grey) or ``(H, W, 3)`` (RGB)."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or pixels.size == 0:
        raise InputError(
            "PNG pixels must be non-empty uint8 (H, W) or (H, W, 3), "
            f"got {pixels.dtype} {pixels.shape}"
        )
    if pixels.ndim == 3 and pixels.shape[2] != 3:
        raise InputError(f"PNG colour pixels must have 3 channels, got {pixels.shape[2]}")
    height, width = pixels.shape[:2]
    colour_type = 2 if pixels.ndim == 3 else 0
    rows = np.ascontiguousarray(pixels).reshape(height, -1)
    # Filter type 0 (none) before every row; zlib does the compressing.
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rows], axis=1).tobytes()
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw, 9))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    checksum = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", checksum)


# -- feature table ----------------------------------------------------------------------------


def feature_table(
    result: RobustnessResult,
    feature_names: Sequence[str] | None = None,
    *,
    input_range: tuple[float, float] | None = None,
    max_features: int = MAX_TABLE_FEATURES,
) -> Figure | None:
    """Which features of flat (tabular) samples the attacks moved and by how much, largest mean
    change first; None for non-flat data or when nothing was fooled.

    Args:
        feature_names: one name per feature; None uses `result.feature_names`, else ``x[i]``.
        input_range: (low, high) in input units, to tell a real change from float noise; None
            infers it from the examples.
        max_features: rows shown, >= 1.
    """
    if max_features < 1:
        raise InputError(f"max_features must be >= 1, got {max_features}")
    examples = fooling_examples(result)
    if not examples or examples[0].x.ndim != 1:
        return None
    n_features = examples[0].x.shape[0]
    names = list(feature_names if feature_names is not None else result.feature_names)
    if not names:
        names = [f"x[{i}]" for i in range(n_features)]
    if len(names) != n_features:
        raise InputError(
            f"{len(names)} feature names for {n_features} features; give one name per column"
        )
    low, high = input_range if input_range is not None else _data_range(examples)
    deltas = np.stack(
        [np.asarray(e.x_adv, np.float64) - np.asarray(e.x, np.float64) for e in examples]
    )
    size = np.abs(deltas)
    moved = size > CHANGE_TOLERANCE * (high - low)
    mean_size = size.mean(axis=0)
    order = sorted(
        (i for i in range(n_features) if moved[:, i].any()), key=lambda i: (-mean_size[i], i)
    )
    if not order:
        return None
    rows = tuple(
        (
            names[i],
            f"{moved[:, i].sum()} of {len(examples)} ({percent(float(moved[:, i].mean()))})",
            f"{mean_size[i]:.3g}",
            f"{size[:, i].max():.3g}",
            _direction(deltas[:, i], moved[:, i]),
        )
        for i in order[:max_features]
    )
    table = Table(
        columns=("feature", "moved in", "mean |change|", "max |change|", "direction"),
        rows=rows,
        title=f"{result.target_name}: features the attacks moved",
    )
    caption = (
        f"Across {len(examples)} adversarial examples ({result.norm}), in input units; "
        f"{len(order)} of {n_features} features moved at least once"
    )
    if len(order) > max_features:
        caption += f", the {max_features} with the largest mean change shown"
    return Figure(
        id=figure_id("evasion-feature-table", result),
        title=f"{result.target_name}: features the attacks moved",
        kind="table",
        data=table.to_json(),
        risk=Risk.ML01,
        caption=caption + ".",
    )


def _direction(delta: np.ndarray, moved: np.ndarray) -> str:
    up = int((delta[moved] > 0).sum())
    down = int((delta[moved] < 0).sum())
    if up and not down:
        return "up"
    if down and not up:
        return "down"
    return f"up {up}, down {down}"


# -- privacy: ROC on log-log axes, inversion grid, defences ----------------------------------

ROC_MIN_FLOOR = 1e-6
"""The lowest rate a log-log ROC plot reaches, however many non-members there are."""
DEFENCE_BAR_COLOURS = ("#D55E00", "#0072B2")
"""TPR at 0.1% FPR, then accuracy on non-members."""


def named_figure_id(base: str, name: str) -> str:
    """`base` made unique per model name (as `figure_id` does for a robustness result)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"{base}-{slug}" if slug else base


def rate_text(value: float) -> str:
    """A rate for people, with the decimals a low rate needs: ``0.0012`` -> ``0.12%``."""
    if math.isnan(value):
        return "n/a"
    if value == 0 or value >= 0.1:
        return f"{100 * value:.1f}%"
    return f"{100 * value:.2g}%" if value < 0.001 else f"{100 * value:.2f}%"


def roc_floor(n_non_members: int) -> float:
    """The lowest FPR a ROC plot shows: 0.1%, or the power of ten at or below 1/n when more
    non-members resolve lower rates (never below `ROC_MIN_FLOOR`)."""
    smallest = min(1e-3, 1.0 / max(n_non_members, 1))
    return max(ROC_MIN_FLOOR, 10.0 ** math.floor(math.log10(smallest) + 1e-9))


class _LogLogPlot(_Plot):
    """Axes with both coordinates on a log scale from `floor` to 1."""

    def __init__(
        self,
        *,
        floor: float,
        figure_id: str,
        title: str,
        description: str,
        x_label: str,
        y_label: str,
    ) -> None:
        super().__init__(
            figure_id=figure_id,
            title=title,
            description=description,
            x_label=x_label,
            y_label=y_label,
            x_max=1.0,
        )
        self.floor = floor
        self.decades = round(-math.log10(floor))

    def _position(self, value: float) -> float:
        """0 at the floor, 1 at 1; values below the floor are drawn on it."""
        clipped = min(max(value, self.floor), 1.0)
        return 1.0 + math.log10(clipped) / self.decades

    def x(self, value: float) -> float:
        return self.left + (self.right - self.left) * self._position(value)

    def y(self, fraction: float) -> float:
        return self.bottom - (self.bottom - self.top) * self._position(fraction)

    def axes(self) -> str:
        parts = [
            f'<rect x="{self.left}" y="{self.top}" width="{self.right - self.left}" '
            f'height="{self.bottom - self.top}" fill="#ffffff" stroke="#9aa5b1"/>'
        ]
        for power in range(-self.decades, 1):
            value = 10.0**power
            x, y = self.x(value), self.y(value)
            label = _escape(f"{100 * value:g}%")
            parts.append(
                f'<line x1="{self.left}" y1="{y:.1f}" x2="{self.right}" y2="{y:.1f}" '
                'stroke="#e4e7eb"/>'
                f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#3e4c59">'
                f"{label}</text>"
                f'<line x1="{x:.1f}" y1="{self.bottom}" x2="{x:.1f}" y2="{self.bottom + 5}" '
                'stroke="#3e4c59"/>'
                f'<text x="{x:.1f}" y="{self.bottom + 18}" text-anchor="middle" fill="#3e4c59">'
                f"{label}</text>"
            )
        parts.append(
            _axis_titles(self.left, self.right, self.top, self.bottom, self.x_label, self.y_label)
        )
        return "".join(parts)

    def thinned(self, fpr: np.ndarray, tpr: np.ndarray) -> list[tuple[float, float]]:
        """ROC points, dropping those that land on the previous point's pixel."""
        points: list[tuple[float, float]] = []
        last: tuple[int, int] | None = None
        for f, t in zip(fpr.tolist(), tpr.tolist(), strict=True):
            pixel = (round(self.x(f) * 2), round(self.y(t) * 2))
            if pixel != last:
                points.append((float(f), float(t)))
                last = pixel
        if points and (float(fpr[-1]), float(tpr[-1])) != points[-1]:
            points.append((float(fpr[-1]), float(tpr[-1])))
        return points


def roc_curves(
    outcomes: Sequence[AttackOutcome],
    *,
    name: str,
    n_members: int,
    n_non_members: int,
) -> Figure:
    """Membership ROC curves on log-log axes (Carlini et al. 2022): one line per attack and the
    diagonal of a random guess, FPR and TPR from `roc_floor` to 1.

    Args:
        outcomes: the attacks' results (`fpr`, `tpr`, `auc`, `tpr_at_fpr`).
        name: the model's name, for the title and the figure id.
        n_members, n_non_members: how many records each rate is measured on.
    """
    floor = roc_floor(n_non_members)
    ranked = sorted(outcomes, key=lambda o: (-o.tpr_at_fpr.get(0.001, 0.0), -o.auc, o.attack))
    title = f"{name}: membership inference ROC (log-log)"
    description = f"{n_members} members, {n_non_members} non-members; " + "; ".join(
        f"{o.attack}: AUC {o.auc:.3f}, TPR {rate_text(o.tpr_at_fpr.get(0.001, math.nan))} at "
        f"0.1% FPR, {rate_text(o.tpr_at_fpr.get(0.01, math.nan))} at 1% FPR"
        for o in ranked
    )
    plot = _LogLogPlot(
        floor=floor,
        figure_id=named_figure_id("privacy-roc", name),
        title=title,
        description=description,
        x_label="false-positive rate (non-members flagged), log scale",
        y_label="true-positive rate (members found)",
    )
    series = [
        _Series(
            name=f"{o.attack} {o.auc:.2f}",
            points=plot.thinned(np.asarray(o.fpr, float), np.asarray(o.tpr, float)),
            colour=ATTACK_COLOURS[i % len(ATTACK_COLOURS)],
            dash=ATTACK_DASHES[(i // len(ATTACK_COLOURS)) % len(ATTACK_DASHES)],
            width=2.0,
        )
        for i, o in enumerate(ranked)
    ]
    guess = _Series("random guess", [(floor, floor), (1.0, 1.0)], "#9aa5b1", "4 4", 1.5)
    body = [plot.axes()]
    body += [
        plot.vertical(level, f"{rate_text(level)} FPR", "#cbd2d9", "2 3")
        for level in (0.001, 0.01)
        if level >= floor
    ]
    body.append(plot.line(guess, markers=False))
    body += [plot.line(s, markers=False) for s in series]
    body.append(plot.legend([*series, guess]))
    caption = (
        f"Each line is one attack on {n_members} members and {n_non_members} non-members, "
        "named with its AUC; both axes are logarithmic, so the left edge is where an attacker "
        "is almost never wrong. A line above the grey diagonal finds members better than "
        f"guessing. With {n_non_members} non-members the smallest non-zero FPR is "
        f"{rate_text(1 / max(n_non_members, 1))}; rates below the axes' {rate_text(floor)} are "
        "drawn on its edge."
    )
    return Figure(
        id=named_figure_id("privacy-roc", name),
        title=title,
        kind="svg",
        data=plot.svg(body),
        risk=Risk.ML04,
        caption=caption,
    )


def inversion_grid(
    reconstructions: Sequence[ClassReconstruction],
    *,
    name: str,
    input_range: tuple[float, float],
    method: str,
) -> Figure | None:
    """Per class: the reconstruction, the reference records' class mean beside it, the model's
    confidence and the distances; None when the inputs are not images.

    Args:
        input_range: (low, high) of valid inputs, in input units; pictures span it.
        method: the inversion method that produced the reconstructions (for the caption).
    """
    if not reconstructions or not image_shape(reconstructions[0].image.shape):
        return None
    low, high = input_range
    width = high - low
    rows: list[tuple[TableCell, ...]] = []
    for item in reconstructions:
        image = np.asarray(item.image, dtype=np.float64)
        mean: TableCell = (
            ImageCell(
                _image_png((np.asarray(item.class_mean, np.float64) - low) / width),
                f"mean of the reference records of class {item.label}",
            )
            if item.class_mean is not None
            else "no reference records"
        )
        distance = (
            "not measured"
            if item.distance is None or item.baseline is None
            else f"{item.distance:.3f} (baseline {item.baseline:.3f})"
        )
        rows.append(
            (
                str(item.label),
                ImageCell(
                    _image_png((image - low) / width),
                    f"reconstruction of class {item.label}, confidence {item.confidence:.0%}",
                ),
                mean,
                f"{item.confidence:.1%}",
                distance,
                "reconstructed" if item.reconstructed else "not reconstructed",
            )
        )
    table = Table(
        columns=(
            "class",
            "reconstruction",
            "class mean (reference data)",
            "model's confidence",
            "distance to class mean",
            "verdict",
        ),
        rows=tuple(rows),
        title=f"{name}: model inversion, one reconstruction per class",
    )
    return Figure(
        id=named_figure_id("privacy-inversion-grid", name),
        title=f"{name}: model inversion ({method})",
        kind="table",
        data=table.to_json(),
        risk=Risk.ML03,
        caption=(
            f"For each class, the input {method} built from the model alone, beside the mean "
            "of the real records of that class. Distances are root-mean-square, as a fraction "
            "of the input range; the baseline is the distance from the class mean to the mean "
            "of all reference records (a guess that needs no model). A class counts as "
            "reconstructed when the model accepts its reconstruction with high confidence and "
            "the reconstruction is closer to the class mean than the baseline."
        ),
    )


def defence_chart(comparison: DefenceComparison, *, name: str) -> Figure:
    """Per defence (the deployed model first): the best attack's TPR at 0.1% FPR and the
    accuracy on non-members, as paired horizontal bars on a 0..100% axis."""
    rows = comparison.all_rows()
    label_width = 150
    bar_px, gap_px = 11, 12
    top = MARGIN_TOP_PX + 18
    height = top + len(rows) * (2 * bar_px + gap_px) + 40
    left, right = label_width, CURVE_WIDTH_PX - MARGIN_RIGHT_PX - 60
    span = right - left
    figure = named_figure_id("privacy-defences", name)
    title = f"{name}: membership leakage and accuracy, before and after each defence"
    description = "; ".join(
        f"{row.defence}: TPR {rate_text(row.tpr_at_0_1)} at 0.1% FPR, accuracy on non-members "
        + ("n/a" if row.non_member_accuracy is None else percent(row.non_member_accuracy))
        for row in rows
    )
    parts = [
        f'<text x="{left}" y="{MARGIN_TOP_PX}" fill="#1f2933">'
        f'<tspan fill="{DEFENCE_BAR_COLOURS[0]}">&#9632;</tspan> TPR at 0.1% FPR   '
        f'<tspan fill="{DEFENCE_BAR_COLOURS[1]}">&#9632;</tspan> accuracy on non-members</text>'
    ]
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + span * fraction
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 34}" '
            'stroke="#e4e7eb"/>'
            f'<text x="{x:.1f}" y="{height - 20}" text-anchor="middle" fill="#3e4c59">'
            f"{100 * fraction:.0f}%</text>"
        )
    for i, row in enumerate(rows):
        y = top + i * (2 * bar_px + gap_px)
        label = row.defence if len(row.defence) <= 22 else row.defence[:21] + "…"
        parts.append(
            f'<text x="{left - 8}" y="{y + bar_px + 4}" text-anchor="end" fill="#1f2933">'
            f"{_escape(label)}</text>"
        )
        values = (row.tpr_at_0_1, row.non_member_accuracy)
        for j, value in enumerate(values):
            if value is None or math.isnan(value):
                continue
            bar_y = y + j * bar_px
            what = "TPR at 0.1% FPR" if j == 0 else "accuracy on non-members"
            parts.append(
                f'<rect x="{left}" y="{bar_y}" width="{span * min(max(value, 0.0), 1.0):.1f}" '
                f'height="{bar_px - 1}" fill="{DEFENCE_BAR_COLOURS[j]}">'
                f"<title>{_escape(f'{row.defence}: {what} {rate_text(value)}')}</title></rect>"
                f'<text x="{left + span * min(max(value, 0.0), 1.0) + 4:.1f}" '
                f'y="{bar_y + bar_px - 2}" fill="#3e4c59" font-size="10">'
                f"{_escape(rate_text(value))}</text>"
            )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CURVE_WIDTH_PX} {height}" '
        f'width="{CURVE_WIDTH_PX}" height="{height}" role="img" '
        f'aria-labelledby="{figure}-title {figure}-desc" font-family="{_escape(FONT)}" '
        'font-size="12">'
        f'<title id="{figure}-title">{_escape(title)}</title>'
        f'<desc id="{figure}-desc">{_escape(description)}</desc>' + "".join(parts) + "</svg>"
    )
    return Figure(
        id=figure,
        title=title,
        kind="svg",
        data=svg,
        risk=Risk.ML04,
        caption=(
            "The same attacks against the model as deployed and against each defence: a good "
            "defence shortens the orange bar (members found at 0.1% FPR) and keeps the blue one "
            "(accuracy on records the model never saw)."
        ),
    )
