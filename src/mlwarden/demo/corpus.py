"""The generated corpus of malicious and benign model files that measures the scanner.

`build_corpus(out_dir, marker)` writes one sample per known technique: more than 70 ways to
hide code execution in pickles, PyTorch, joblib, NumPy, Keras, ONNX, GGUF, safetensors and
Hugging Face folders, and more than 30 kinds of legitimate files the default gate must pass.
Every malicious payload, if a loader ever ran it, would only create `marker`. The corpus test,
the benchmark and `mlwarden demo` all build from here; `docs/corpus.md` is rendered from the same
list (``python -m mlwarden.demo.corpus > docs/corpus.md``).

Not for: scanning (see `mlwarden.scan`), nor for running any payload (the corpus test does that
on purpose, in a child process, to prove the payloads are real).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from mlwarden.demo import _benign, _malicious  # noqa: F401  (register the techniques)
from mlwarden.demo._registry import BuildContext, Kind, RealLoader, Technique, registered
from mlwarden.findings import Severity

__all__ = [
    "FRAMEWORKS",
    "Sample",
    "Technique",
    "build_corpus",
    "missing_needs",
    "render_markdown",
    "techniques",
]

FRAMEWORKS = frozenset({"torch", "scikit-learn", "numpy", "joblib", "safetensors", "onnx", "gguf"})
"""ML frameworks a sample may need; `build_corpus(with_frameworks=False)` skips those samples.
(h5py and py7zr are mlwarden dependencies and only write containers.)"""

_IMPORT_NAMES = {"scikit-learn": "sklearn"}


@dataclass(frozen=True)
class Sample:
    """One built corpus file (or folder) and what a scanner must say about it."""

    path: Path
    """The file, or the folder for folder samples (Hugging Face layouts)."""
    id: str
    """Technique id, ``<family>/<technique>`` (``pickle/inst-opcode``)."""
    description: str
    kind: Kind
    """``malicious`` or ``benign``."""
    format: str
    """What the content really is (``pickle``, ``pytorch-zip``, ``7z``, ``folder`` ...)."""
    expected_rules: tuple[str, ...]
    """Rule-id prefixes; a malicious sample must get a finding at `min_severity` or above
    whose rule starts with one of them (any rule when empty)."""
    min_severity: Severity
    """Malicious: the least severity that counts as detected. Benign: nothing may reach it."""
    reference: str
    """Where the technique comes from (CVE, GHSA, tracker issue, research write-up)."""
    needs: tuple[str, ...]
    """Packages the builder imports (a sample whose needs are missing is not built)."""
    real_loader: RealLoader | None
    """How a real framework loads it, for proving the payload runs; None when no stock loader
    reaches the payload."""


def techniques(kinds: Collection[Kind] = ("malicious", "benign")) -> list[Technique]:
    """Every technique the corpus knows, in a stable order, built or not."""
    return [t for t in registered() if t.kind in kinds]


def missing_needs(technique: Technique) -> tuple[str, ...]:
    """The packages `technique` needs that cannot be imported here."""
    return tuple(
        need
        for need in technique.needs
        if importlib.util.find_spec(_IMPORT_NAMES.get(need, need)) is None
    )


def build_corpus(
    out_dir: Path,
    marker: Path,
    *,
    kinds: Collection[Kind] = ("malicious", "benign"),
    with_frameworks: bool = True,
    only: Iterable[str] | None = None,
) -> list[Sample]:
    """Write the corpus under `out_dir` and return the samples that were built.

    Each sample gets its own folder, ``out_dir/<kind>/<technique id>/``, so that folder-level
    analysis of one sample never sees another. `marker` is the only file any payload could
    create; it must not exist when the corpus is used. Samples whose `needs` cannot be imported
    are skipped, and so are those needing an ML framework when `with_frameworks` is False.
    `only` restricts the build to the given technique ids.
    """
    wanted = set(only) if only is not None else None
    if wanted is not None:
        unknown = wanted - {t.id for t in registered()}
        if unknown:
            raise ValueError(f"unknown corpus technique(s): {', '.join(sorted(unknown))}")
    samples = []
    for technique in techniques(kinds):
        if wanted is not None and technique.id not in wanted:
            continue
        if not with_frameworks and FRAMEWORKS.intersection(technique.needs):
            continue
        if missing_needs(technique):
            continue
        samples.append(_build_one(technique, out_dir, marker))
    return samples


def _build_one(technique: Technique, out_dir: Path, marker: Path) -> Sample:
    folder = out_dir / technique.kind / technique.id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / technique.file_name
    data = technique.build(BuildContext(path=path, marker=marker))
    if data is not None:
        path.write_bytes(data)
    return Sample(
        path=path,
        id=technique.id,
        description=technique.description,
        kind=technique.kind,
        format=technique.format,
        expected_rules=technique.expected_rules,
        min_severity=technique.min_severity,
        reference=technique.reference,
        needs=technique.needs,
        real_loader=technique.real_loader,
    )


def render_markdown() -> str:
    """`docs/corpus.md`: every technique with its format, reference and what it does."""
    malicious = [t for t in registered() if t.kind == "malicious"]
    benign = [t for t in registered() if t.kind == "benign"]
    lines = [
        "# The scanner corpus",
        "",
        "Generated by `mlwarden.demo.corpus` (`python -m mlwarden.demo.corpus > docs/corpus.md`;",
        "`tests/scan/test_corpus.py` fails when this file is out of date). The corpus test scans",
        "every sample: each malicious one must get a finding at its minimum severity (high, the",
        "default gate, unless stated) and each benign one must get none at high or above. Every",
        "malicious payload, if a loader ever ran it, would only create a marker file; the test",
        "asserts the marker never appears while scanning, and proves the pickle-based payloads",
        "are real by loading them with the real loaders in a child process.",
        "",
        f"## Malicious techniques ({len(malicious)})",
        "",
        "| id | format | reference | what it does | real loader |",
        "|---|---|---|---|---|",
    ]
    for t in malicious:
        loader = t.real_loader or "-"
        severity = (
            "" if t.min_severity is Severity.HIGH else f" (min severity: {t.min_severity.value})"
        )
        lines.append(
            f"| `{t.id}` | {t.format} | {_cell(t.reference)} | {_cell(t.description)}{severity} "
            f"| {loader} |"
        )
    lines += [
        "",
        f"## Benign kinds ({len(benign)})",
        "",
        "| id | format | what it is | needs |",
        "|---|---|---|---|",
    ]
    for t in benign:
        needs = ", ".join(t.needs) or "-"
        lines.append(f"| `{t.id}` | {t.format} | {_cell(t.description)} | {needs} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
