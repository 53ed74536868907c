"""The evasion part of `mlwarden demo`: two small models trained in seconds, saved, reloaded the
safe way, and attacked.

A CNN on scikit-learn's digits (images, linf budgets in grey levels) and an MLP on breast_cancer
(tabular, budgets as a share of each feature's range) are saved as TorchScript with their test
data into the demo folder, so the demo's scan covers them too, then loaded back through
`load_target` (which scans them first) and evaluated by the ``ml01.evasion`` check. Not for:
anything but the demo.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlwarden.audit.runner import AuditContext, ProgressFn, run_audit
from mlwarden.report.model import Report

EVASION_FOLDER = "evasion"
DEMO_SUITE = "standard"
"""The suite the demo runs: AutoAttack's standard ensemble, about a minute on two cores."""
DEMO_MAX_SAMPLES = 100
"""Test samples attacked per demo model."""


@dataclass(frozen=True)
class EvasionSample:
    """One demo model and how the demo attacks it."""

    name: str
    model_file: Path
    data_file: Path
    input_shape: tuple[int, ...]
    eps: tuple[float, ...]
    """Budgets in input units (linf)."""
    n_samples: int
    feature_names: tuple[str, ...] = ()


def build_evasion_models(out_dir: Path, *, seed: int = 0) -> list[EvasionSample]:
    """Train the two demo models and write them with their test data under ``out_dir/evasion``."""
    import torch

    from mlwarden.demo.models import train_breast_cancer_mlp, train_digits_cnn

    folder = out_dir / EVASION_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for name, trained, eps, n_samples in (
        ("digits-cnn", train_digits_cnn(seed=seed), (8 / 255, 16 / 255, 0.1), DEMO_MAX_SAMPLES),
        ("breast-cancer-mlp", train_breast_cancer_mlp(seed=seed), (0.02, 0.05, 0.1), 143),
    ):
        model_file = folder / f"{name}.pt"
        data_file = folder / f"{name}-test.npz"
        torch.jit.script(trained.model).save(str(model_file))  # type: ignore[no-untyped-call]
        np.savez(data_file, x=trained.x_test, y=trained.y_test)
        samples.append(
            EvasionSample(
                name,
                model_file,
                data_file,
                trained.input_shape,
                eps,
                n_samples,
                trained.feature_names,
            )
        )
    return samples


def attack_demo_models(
    samples: list[EvasionSample], *, progress: ProgressFn | None = None
) -> list[Report]:
    """One ``ml01.evasion`` report per demo model, each loaded from its file after a scan."""
    from mlwarden.data import load_data
    from mlwarden.evaluate.check import EvasionSettings
    from mlwarden.targets.loading import load_target

    reports = []
    for sample in samples:
        target = load_target(sample.model_file, input_shape=sample.input_shape)
        settings = EvasionSettings(
            eps=sample.eps,
            suite=DEMO_SUITE,
            n_samples=min(sample.n_samples, DEMO_MAX_SAMPLES),
            feature_names=sample.feature_names,
        )
        context = AuditContext(
            target=target,
            data=load_data(sample.data_file),
            evasion=settings,
            progress=progress,
        )
        reports.append(run_audit(context, only=["ml01.evasion"]))
    return reports


def merge_reports(base: Report, others: list[Report]) -> Report:
    """`base` with the findings, checks, metrics and figures of `others` added; metrics of a
    check that ran more than once are kept apart under ``<check> (<n>)``."""
    merged = dataclasses.replace(base)
    for other in others:
        merged.extend(findings=other.findings, scanned=other.scanned, errors=other.errors)
        for check in other.checks_run:
            if check not in merged.checks_run:
                merged.checks_run.append(check)
            merged.risks_assessed[check] = other.risks_assessed.get(check, [])
        merged.not_assessed = [n for n in merged.not_assessed if n.check not in other.checks_run]
        for key, value in other.metrics.items():
            name, n = key, 2
            while name in merged.metrics:
                name, n = f"{key} ({n})", n + 1
            merged.metrics[name] = value
        merged.figures.extend(other.figures)
        merged.duration_s += other.duration_s
    return merged
