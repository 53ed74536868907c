"""The folder `mlwarden demo` builds: a readable subset of the corpus, benign and malicious.

Real benign PyTorch, scikit-learn, NumPy, safetensors, ONNX and GGUF files sit next to a handful
of harmless malicious samples, each chosen to show one thing the scanner catches (a call chain,
a disguised file name, a zip that other scanners cannot open, a 7z checkpoint whose pickle
breaks after its payload, Keras Lambda bytecode, remote code in a Hugging Face folder). The
layout is ``<out>/benign/<family>/<kind>/<file>`` and ``<out>/malicious/...``. Not for: scanning
or reporting (the CLI does that), nor for the full corpus (see `mlwarden.demo.corpus`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from mlwarden.demo.corpus import Sample, build_corpus, missing_needs, techniques
from mlwarden.errors import UsageError

BENIGN_SAMPLES = (
    "torch/state-dict",
    "torch/whole-module",
    "torch/checkpoint-adam",
    "sklearn/pipeline-scaler-pca-svc",
    "sklearn/random-forest-joblib",
    "numpy/npy-float",
    "numpy/npz",
    "safetensors/torch",
    "onnx/mlp",
    "gguf/chatml-template",
)
"""Legitimate files the default gate must pass."""

MALICIOUS_SAMPLES = (
    "pickle/getattr-import-chain",
    "pickle/nested-pickle-loads",
    "torch/zip-as-png",
    "zip/bad-crc",
    "torch/7z-broken-pickle",
    "numpy/npy-object-array",
    "keras/v3-lambda",
    "hf/auto-map-remote-code",
)
"""Harmless payloads (each would only create the marker file), one trick each."""

STAMP_FILE = ".mlwarden-demo"
"""Marks a folder this module built, so that it may be rebuilt without asking."""

MARKER_FILE = "payload-ran"
"""The only file any demo payload could create if something loaded it; it must never appear."""


@dataclass(frozen=True)
class DemoFolder:
    """What `build_demo` wrote."""

    root: Path
    marker: Path
    """Created only if a payload ever ran."""
    benign: list[Sample]
    malicious: list[Sample]
    skipped: dict[str, tuple[str, ...]]
    """Samples not built because a package they need is not installed -> those packages."""


def build_demo(out_dir: Path) -> DemoFolder:
    """Write the demo folder to `out_dir`, replacing a demo folder built there before.

    Raises `UsageError` if `out_dir` is a file, or a non-empty folder this did not build.
    """
    _prepare(out_dir)
    root = out_dir.resolve()
    marker = root / MARKER_FILE
    wanted = {*BENIGN_SAMPLES, *MALICIOUS_SAMPLES}
    skipped = {t.id: missing_needs(t) for t in techniques() if t.id in wanted and missing_needs(t)}
    samples = build_corpus(root, marker, only=wanted, with_frameworks=True)
    (root / STAMP_FILE).write_text(
        "Built by `mlwarden demo`; rebuilt on every run. Safe to delete.\n", encoding="utf-8"
    )
    return DemoFolder(
        root=root,
        marker=marker,
        benign=[s for s in samples if s.kind == "benign"],
        malicious=[s for s in samples if s.kind == "malicious"],
        skipped=skipped,
    )


def _prepare(out_dir: Path) -> None:
    if out_dir.is_file() or out_dir.is_symlink():
        raise UsageError(f"cannot build the demo in {out_dir}: it is not a folder")
    if not out_dir.exists():
        out_dir.mkdir(parents=True)
        return
    if (out_dir / STAMP_FILE).is_file():
        shutil.rmtree(out_dir)
        out_dir.mkdir()
        return
    if any(out_dir.iterdir()):
        raise UsageError(
            f"cannot build the demo in {out_dir}: the folder is not empty and was not made by "
            "`mlwarden demo`; choose another folder with --out"
        )
