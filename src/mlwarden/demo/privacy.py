"""The privacy part of `mlwarden demo`: a deliberately overfit model, audited for membership
inference with and without defences, and the demo's digits CNN inverted class by class.

An unregularised MLP is trained for many epochs on 200 of scikit-learn's digits (its *members*);
200 more it never sees (*non-members*) and 400 others (*population*) train the reference models.
The model and the three record files are written under ``out/privacy`` (so the demo's scan
covers them, and `mlwarden attack membership` can be re-run on them with
``--train-fn mlwarden.demo.privacy:TRAINER``), loaded back through `load_target`, and audited by
``ml04.membership`` with LiRA (online and offline), RMIA and the loss attack, then behind output
defences and retrained with DP-SGD. ``ml03.inversion`` reconstructs each digit from the evasion
demo's CNN. Not for: anything but the demo.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mlwarden.attacks.membership.reference import TorchTrainer
from mlwarden.audit.runner import AuditContext, ProgressFn, run_audit
from mlwarden.report.model import Report

PRIVACY_FOLDER = "privacy"
MODEL_NAME = "digits-mlp"
N_MEMBERS = 200
"""Training records of the overfit model: few, so that it memorises them."""
N_NON_MEMBERS = 200
N_POPULATION = 400
"""Records the reference models train on halves of: as many as the model's own training set."""
HIDDEN_UNITS = 256
DEMO_ATTACKS: tuple[str, ...] = ("loss", "rmia", "lira-offline", "lira-online")
DEMO_N_REFERENCE = 8
DEMO_DEFENCES: tuple[str, ...] = ("top-k:1", "round:1", "label-only", "dp:epsilon=8,epochs=40")
"""Output defences (they reuse the reference models) and DP-SGD, which retrains the model and its
reference models through Opacus at half the epochs (about 15 s); without Opacus DP is left out."""
INVERSION_STEPS = 200
"""MI-Face steps per digit on the CNN."""


class OverfitMLP(nn.Module):
    """64 pixels -> 256 ReLU units -> 10 digits, no dropout, no weight decay."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, HIDDEN_UNITS), nn.ReLU(), nn.Linear(HIDDEN_UNITS, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, 10)`` for flattened 8x8 digits ``(n, 64)`` in [0, 1]."""
        out: torch.Tensor = self.net(x)
        return out


TRAINER = TorchTrainer(OverfitMLP, epochs=80, lr=3e-3, batch_size=32)
"""How the demo model and its reference models are trained: long enough to memorise the
members (100% training accuracy), no regularisation."""


@dataclass(frozen=True)
class PrivacySample:
    """The demo's overfit model and its records, as written to disk."""

    name: str
    model_file: Path
    members_file: Path
    non_members_file: Path
    population_file: Path
    input_shape: tuple[int, ...]


def build_privacy_model(out_dir: Path, *, seed: int = 0) -> PrivacySample:
    """Train the overfit model and write it with its records under ``out_dir/privacy``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    members = order[:N_MEMBERS]
    non_members = order[N_MEMBERS : N_MEMBERS + N_NON_MEMBERS]
    population = order[N_MEMBERS + N_NON_MEMBERS : N_MEMBERS + N_NON_MEMBERS + N_POPULATION]
    folder = out_dir / PRIVACY_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    model = TRAINER(x[members], y[members], seed)
    model_file = folder / f"{MODEL_NAME}.pt"
    torch.jit.script(model).save(str(model_file))  # type: ignore[no-untyped-call]
    files = {}
    for part, index in (
        ("members", members),
        ("non-members", non_members),
        ("population", population),
    ):
        files[part] = folder / f"{MODEL_NAME}-{part}.npz"
        np.savez(files[part], x=x[index], y=y[index])
    return PrivacySample(
        MODEL_NAME,
        model_file,
        files["members"],
        files["non-members"],
        files["population"],
        (64,),
    )


def demo_defences() -> tuple[str, ...]:
    """`DEMO_DEFENCES`, without DP-SGD when Opacus (extra ``[dp]``) is not installed."""
    if importlib.util.find_spec("opacus") is None:
        return tuple(d for d in DEMO_DEFENCES if not d.startswith("dp:"))
    return DEMO_DEFENCES


def audit_privacy_model(sample: PrivacySample, *, progress: ProgressFn | None = None) -> Report:
    """The ``ml04.membership`` report of the overfit model, defences compared."""
    from mlwarden.data import load_data
    from mlwarden.privacy.check import MEMBERSHIP_CHECK
    from mlwarden.privacy.settings import PrivacySettings, parse_defences
    from mlwarden.targets.loading import load_target

    target = load_target(sample.model_file, input_shape=sample.input_shape)
    settings = PrivacySettings(
        members=load_data(sample.members_file),
        non_members=load_data(sample.non_members_file),
        population=load_data(sample.population_file),
        train_fn=TRAINER,
        attacks=DEMO_ATTACKS,
        n_reference=DEMO_N_REFERENCE,
        defences=parse_defences(demo_defences()),
        inversion=None,
    )
    context = AuditContext(target=target, privacy=settings, progress=progress)
    return run_audit(context, only=[MEMBERSHIP_CHECK])


def invert_demo_model(
    model_file: Path,
    data_file: Path,
    input_shape: tuple[int, ...],
    *,
    progress: ProgressFn | None = None,
) -> Report:
    """The ``ml03.inversion`` report of a demo image model, judged against its test records."""
    from mlwarden.data import load_data
    from mlwarden.privacy.check import INVERSION_CHECK
    from mlwarden.privacy.settings import InversionSettings, PrivacySettings
    from mlwarden.targets.loading import load_target

    target = load_target(model_file, input_shape=input_shape)
    settings = PrivacySettings(
        inversion=InversionSettings(steps=INVERSION_STEPS, reference=load_data(data_file))
    )
    context = AuditContext(target=target, privacy=settings, progress=progress)
    return run_audit(context, only=[INVERSION_CHECK])


def summary_lines(report: Report) -> list[str]:
    """One line per privacy part that ran, from what the checks measured."""
    lines = []
    membership = report.metrics.get("ml04.membership")
    if membership:
        lines.append(_membership_line(membership))
        if "defence_results" in membership:
            lines.append(_defence_line(membership["defence_results"]))
    inversion = report.metrics.get("ml03.inversion")
    if inversion:
        name = inversion["model"]
        classes = inversion["classes"]
        lines.append(
            f"Inverted {name} class by class (OWASP ML03, {inversion['method']}): "
            f"{len(inversion['reconstructed'])} of {len(classes)} classes reconstructed closer "
            "to the real class mean than a guess without the model."
        )
    return lines


def _membership_line(metrics: dict[str, Any]) -> str:
    best = metrics["best_attack"]
    numbers = metrics["by_attack"][best]
    name = metrics["model"]
    tpr = float(numbers["tpr_at_fpr"].get("0.001", math.nan))
    epsilon = max(a["epsilon"]["lower"] for a in metrics["by_attack"].values())
    n_non_members = int(metrics["n_non_members"])
    # Below 1,000 non-members a 0.1% FPR cannot be measured: the rate is at zero false positives.
    where = (
        "at 0.1% FPR"
        if n_non_members >= 1000
        else f"with no false positive among {n_non_members} non-members"
    )
    return (
        f"Audited {name} for membership inference (OWASP ML04): {best} finds "
        f"{100 * tpr:.1f}% of its training records {where} (AUC {numbers['auc']:.2f}), "
        f"empirical epsilon >= {epsilon:.2f}."
    )


def _defence_line(rows: list[dict[str, Any]]) -> str:
    parts = []
    for row in rows[1:]:
        cost = row["utility_cost"]
        if cost is None:
            cost_text = "accuracy cost unknown"
        elif abs(cost) < 5e-4:
            cost_text = "no accuracy lost"
        else:
            cost_text = f"{100 * cost:.1f} points of accuracy lost"
        parts.append(f"{row['defence']} {100 * row['tpr_at_0.1%_fpr']:.1f}% ({cost_text})")
    return (
        "The same attacks behind each defence (TPR at 0.1% FPR, "
        f"{100 * rows[0]['tpr_at_0.1%_fpr']:.1f}% without): " + ", ".join(parts) + "."
    )
