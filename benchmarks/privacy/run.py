"""Benchmark mlwarden's membership inference and model inversion against IBM ART.

Run by ``make bench-privacy`` (``.venv/bin/python benchmarks/privacy/run.py [--quick]
[--only PART,...] [--out FILE]``). It installs ART and Opacus into one separate environment
(``.venv-bench/privacy``: torch pinned to the project's CPU build, mlwarden from this checkout
with its ``sklearn`` and ``dp`` extras, ART), re-runs itself with that environment's Python and,
in one process:

1. trains four targets on fixed splits of generated or bundled scikit-learn data: an overfit
   MLP on a 100-feature ``make_classification`` dataset, a digits CNN on a small member set, a
   deep random forest on the MLP's data, and the MLP trained with DP-SGD at a small epsilon;
2. attacks every target with ART's membership attacks (rule-based, black-box with several attack
   models, shadow models + black-box) and with ``mlwarden.attacks.membership.audit`` (loss,
   confidence, entropy, modified entropy, label-only, shadow, LiRA offline and online, RMIA);
   every tool is scored by this script, with scikit-learn's ROC code, on the same held-out
   candidates: records no tool trained its attack on;
3. sweeps the number of reference models for LiRA (offline, online) and RMIA;
4. times reference-model training against training the same models by hand;
5. inverts the digits CNN with ART's MIFace and mlwarden's ``invert``.

Progress goes to stderr; the tables go to stdout and to ``benchmarks/privacy/RESULTS.md``. Not
for: unit testing (see ``tests/attacks``); nothing here is imported by the package.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import importlib
import importlib.metadata
import itertools
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from peer_env import Peer, PeerEnv, last_line, log, quiet  # noqa: E402

from mlwarden.demo.models import DigitsCNN  # noqa: E402

RESULTS_FILE = Path(__file__).resolve().parent / "RESULTS.md"
OVERHEAD_SCRIPT = Path(__file__).resolve().parent / "overhead.py"
OVERHEAD_SCRIPT_ARGS = ("--models", "8", "--repeats", "3")

SEED = 0
FPR_LEVELS = (0.01, 0.001)
DP_DELTA = 1e-5


# -- the bench environment -----------------------------------------------------------------------


PEERS = (
    Peer(
        "ART",
        "art.attacks.inference.membership_inference",
        "adversarial-robustness-toolbox",
        ("adversarial-robustness-toolbox",),
    ),
)
ENV = PeerEnv("privacy", "sklearn,dp", PEERS)
"""The venv under .venv-bench/privacy the benchmark re-runs itself in (`peer_env.py`)."""


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _failure(exc: BaseException) -> str:
    """One line for a table cell: ``not available`` for a missing module, else the error."""
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").startswith("mlwarden"):
        return f"not available: {exc.name} is missing"
    text = f"{type(exc).__name__}: {exc}".replace("|", "/").replace("\n", " ")
    return f"error: {text[:160]}"


# -- parameters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """Sizes and training settings (README.md explains each choice)."""

    tabular_members: int
    """Records the MLP, the forest and the DP model train on."""
    tabular_non_members: int
    tabular_population: int
    digits_members: int
    digits_population: int
    """The digits records left after members and population are the non-members."""
    art_fit_fraction: float
    """Share of the members (and as many non-members) ART's black-box attack model trains on;
    those records are then left out of every tool's evaluation."""
    mlp_epochs: int
    cnn_epochs: int
    forest_trees: int
    dp_epochs: int
    n_reference: int
    """Reference models of mlwarden's audits and shadow models of ART's shadow attack."""
    dp_reference: int
    """The same for the DP model (DP-SGD through Opacus costs ~5x more per model)."""
    sweep: tuple[int, ...]
    overhead_models: int
    overhead_repeats: int
    inversion_steps: int


FULL = Budget(
    tabular_members=1000,
    tabular_non_members=2500,
    tabular_population=2000,
    digits_members=300,
    digits_population=600,
    art_fit_fraction=0.25,
    mlp_epochs=100,
    cnn_epochs=100,
    forest_trees=100,
    dp_epochs=10,
    n_reference=16,
    dp_reference=4,
    sweep=(1, 2, 4, 8, 16),
    overhead_models=4,
    overhead_repeats=2,
    inversion_steps=300,
)
QUICK = Budget(
    tabular_members=300,
    tabular_non_members=700,
    tabular_population=600,
    digits_members=200,
    digits_population=400,
    art_fit_fraction=0.25,
    mlp_epochs=30,
    cnn_epochs=30,
    forest_trees=30,
    dp_epochs=3,
    n_reference=4,
    dp_reference=4,
    sweep=(1, 2, 4),
    overhead_models=2,
    overhead_repeats=1,
    inversion_steps=50,
)

MLP_HIDDEN = 256
TABULAR_FEATURES = 100
TABULAR_CLASSES = 10
LEARNING_RATE = 3e-3
"""Adam's learning rate for every non-private torch model here (targets, references, shadows)."""
BATCH_SIZE = 64
DP_EPSILON = 1.0
DP_MAX_GRAD_NORM = 1.0
DP_LEARNING_RATE = 1e-2
DP_BATCH_SIZE = 250
SHADOW_ATTACK_MODELS = ("rf",)
"""ART's attack model on the shadow outputs: a random forest, as ART's shadow-model example
notebook uses. Its default ``nn`` trains 100 epochs on every shadow output (32 000 records with
16 shadows of the MLP: over a minute per target) and scored below ``rf`` in trials."""
MIFACE_LEARNING_RATE = 0.1
"""ART's default step for MIFace; mlwarden's invert keeps its own default."""

TARGET_KEYS = ("mlp", "digits", "forest", "dp")
OVERFIT_KEYS = ("mlp", "digits", "forest")
SECTION_KEYS = ("sweep", "overhead", "inversion")
ONLY_KEYS = TARGET_KEYS + SECTION_KEYS


# -- the data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """One dataset cut into disjoint roles (indices into ``x``/``y``)."""

    x: np.ndarray
    y: np.ndarray
    members: np.ndarray
    """What the target trains on."""
    non_members: np.ndarray
    population: np.ndarray
    """Disjoint from both: what shadow and reference models train on."""
    art_members: np.ndarray
    """The members ART's black-box attack model learns from (left out of every evaluation)."""
    art_non_members: np.ndarray
    eval_members: np.ndarray
    """The candidates every tool is scored on: the remaining members and non-members."""
    eval_non_members: np.ndarray

    def take(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.x[index], self.y[index]

    @property
    def candidates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x, y, is_member)``: evaluation members first, then evaluation non-members."""
        index = np.concatenate([self.eval_members, self.eval_non_members])
        is_member = np.zeros(len(index), bool)
        is_member[: len(self.eval_members)] = True
        return self.x[index], self.y[index], is_member

    def describe(self) -> str:
        return (
            f"{len(self.members)} members (target training set), {len(self.non_members)} "
            f"non-members, {len(self.population)} population records; ART's black-box attack "
            f"model learns from {len(self.art_members)} members + {len(self.art_non_members)} "
            f"non-members; every tool is scored on the other {len(self.eval_members)} members "
            f"+ {len(self.eval_non_members)} non-members"
        )


def make_split(
    x: np.ndarray, y: np.ndarray, *, members: int, non_members: int, population: int, art: float
) -> Split:
    order = np.random.default_rng(SEED).permutation(len(x))
    m = order[:members]
    n = order[members : members + non_members]
    p = order[members + non_members : members + non_members + population]
    fit = round(art * members)
    return Split(
        x=x,
        y=y,
        members=m,
        non_members=n,
        population=p,
        art_members=m[:fit],
        art_non_members=n[:fit],
        eval_members=m[fit:],
        eval_non_members=n[fit:],
    )


@functools.cache
def tabular_data(budget: Budget) -> Split:
    """``make_classification``: 100 features (20 informative), 10 classes, min-max scaled."""
    from sklearn.datasets import make_classification

    total = budget.tabular_members + budget.tabular_non_members + budget.tabular_population
    x, y = make_classification(
        n_samples=total,
        n_features=TABULAR_FEATURES,
        n_informative=20,
        n_redundant=10,
        n_classes=TABULAR_CLASSES,
        n_clusters_per_class=2,
        class_sep=2.0,
        flip_y=0.0,
        random_state=SEED,
    )
    low, high = x.min(axis=0), x.max(axis=0)
    scaled = ((x - low) / (high - low)).astype(np.float32)
    return make_split(
        scaled,
        y.astype(np.int64),
        members=budget.tabular_members,
        non_members=budget.tabular_non_members,
        population=budget.tabular_population,
        art=budget.art_fit_fraction,
    )


@functools.cache
def digits_data(budget: Budget) -> Split:
    """scikit-learn's 1797 digits, pixels / 16 as ``(1, 8, 8)`` images (no duplicates)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    rest = len(x) - budget.digits_members - budget.digits_population
    return make_split(
        x,
        digits.target.astype(np.int64),
        members=budget.digits_members,
        non_members=rest,
        population=budget.digits_population,
        art=budget.art_fit_fraction,
    )


# -- the targets ---------------------------------------------------------------------------------


class OverfitMLP(nn.Module):
    """Two hidden layers of 256, no regularisation: memorises 1000 records in 100 epochs."""

    def __init__(
        self, n_features: int = TABULAR_FEATURES, n_classes: int = TABULAR_CLASSES
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, MLP_HIDDEN),
            nn.ReLU(),
            nn.Linear(MLP_HIDDEN, MLP_HIDDEN),
            nn.ReLU(),
            nn.Linear(MLP_HIDDEN, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


def digits_cnn() -> nn.Module:
    return DigitsCNN(8)


@dataclass
class Case:
    """A trained target, its data and how each tool sees and retrains it."""

    key: str
    title: str
    split: Split
    input_shape: tuple[int, ...]
    n_classes: int
    model: Any
    """The trained nn.Module or scikit-learn estimator."""
    train_fn: Callable[[], Any]
    """Builds mlwarden's reference-model recipe: the target's own training settings."""
    recipe: str
    train_seconds: float
    art_classifier: Callable[[], Any]
    """ART's wrapper of the trained target (built outside every timing)."""
    art_template: Callable[[], Any]
    """ART's shadow-model template: fit() with the target's recipe."""
    art_loss: bool
    """ART can compute the target's loss (PyTorchClassifier), so its loss-input attack runs."""
    art_shadow_recipe: str
    n_reference: int
    """mlwarden's reference models and ART's shadow models (the same number)."""
    member_accuracy: float = math.nan
    non_member_accuracy: float = math.nan
    epsilon: float | None = None
    """DP-SGD's epsilon spent (delta ``DP_DELTA``); None for non-private targets."""
    notes: list[str] = field(default_factory=list)

    def mlwarden_target(self) -> Any:
        from mlwarden.targets import target

        if isinstance(self.model, nn.Module):
            return target(self.model, input_shape=self.input_shape, n_classes=self.n_classes)
        return target(self.model, input_shape=self.input_shape)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if isinstance(self.model, nn.Module):
            self.model.eval()
            with torch.no_grad():
                logits = self.model(torch.from_numpy(np.ascontiguousarray(x, np.float32)))
            return np.asarray(logits.softmax(dim=1).numpy(), dtype=np.float64)
        return np.asarray(self.model.predict_proba(x.reshape(len(x), -1)), dtype=np.float64)


def _art_torch_classifier(
    model: nn.Module, input_shape: tuple[int, ...], n_classes: int, *, epochs: int, batch: int
) -> Any:
    """ART's PyTorchClassifier whose fit() defaults to the target's recipe.

    ``ShadowModels`` calls ``fit(x, y)`` without arguments, so a shadow model would otherwise
    train with ART's defaults (10 epochs, batch 128) instead of the target's recipe.
    """
    from art.estimators.classification import PyTorchClassifier

    class RecipeClassifier(PyTorchClassifier):  # type: ignore[misc]
        def fit(self, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> None:
            kwargs.setdefault("batch_size", batch)
            kwargs.setdefault("nb_epochs", epochs)
            super().fit(x, y, **kwargs)

    return RecipeClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=input_shape,
        nb_classes=n_classes,
        optimizer=torch.optim.Adam(model.parameters(), lr=LEARNING_RATE),
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


def _accuracies(case: Case) -> None:
    split = case.split
    for attr, index in (
        ("member_accuracy", split.members),
        ("non_member_accuracy", split.non_members),
    ):
        x, y = split.take(index)
        setattr(case, attr, float((case.predict_proba(x).argmax(axis=1) == y).mean()))


def _torch_trainer(factory: Callable[[], nn.Module], epochs: int, dp: Any = None) -> Any:
    """mlwarden's reference-model recipe for a torch target: the target's own settings."""
    from mlwarden.attacks.membership.reference import TorchTrainer

    if dp is None:
        return TorchTrainer(factory, epochs=epochs, lr=LEARNING_RATE, batch_size=BATCH_SIZE)
    return TorchTrainer(
        factory,
        epochs=epochs,
        lr=DP_LEARNING_RATE,
        batch_size=DP_BATCH_SIZE,
        optimizer="adam",
        dp=dp,
    )


def fit_torch(
    factory: Callable[[], nn.Module], x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int
) -> nn.Module:
    """The targets' training code, as a user would write it: Adam, shuffled mini-batches,
    cross-entropy, no weight decay, no early stopping."""
    torch.manual_seed(seed)
    model = factory()
    generator = torch.Generator().manual_seed(seed)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xs), generator=generator)
        for start in range(0, len(xs), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(model(xs[batch]), ys[batch])
            loss.backward()
            optimiser.step()
    return model.eval()


def build_torch_case(
    key: str,
    title: str,
    split: Split,
    factory: Callable[[], nn.Module],
    epochs: int,
    n_reference: int,
) -> Case:
    x, y = split.take(split.members)
    started = time.perf_counter()
    model = fit_torch(factory, x, y, epochs=epochs, seed=SEED)
    seconds = time.perf_counter() - started
    shape = tuple(int(d) for d in x.shape[1:])
    classes = int(split.y.max()) + 1
    case = Case(
        key=key,
        title=title,
        split=split,
        input_shape=shape,
        n_classes=classes,
        model=model,
        train_fn=lambda: _torch_trainer(factory, epochs),
        recipe=f"Adam lr {LEARNING_RATE:g}, batch {BATCH_SIZE}, {epochs} epochs, no regularisation",
        train_seconds=seconds,
        art_classifier=lambda: _art_torch_classifier(
            model, shape, classes, epochs=epochs, batch=BATCH_SIZE
        ),
        art_template=lambda: _art_torch_classifier(
            factory(), shape, classes, epochs=epochs, batch=BATCH_SIZE
        ),
        art_loss=True,
        art_shadow_recipe=f"ART's PyTorchClassifier.fit, Adam lr {LEARNING_RATE:g}, batch "
        f"{BATCH_SIZE}, {epochs} epochs",
        n_reference=n_reference,
    )
    _accuracies(case)
    return case


def build_forest_case(budget: Budget) -> Case:
    from sklearn.ensemble import RandomForestClassifier

    split = tabular_data(budget)
    estimator = RandomForestClassifier(
        n_estimators=budget.forest_trees, random_state=SEED, n_jobs=1
    )
    x, y = split.take(split.members)
    started = time.perf_counter()
    model = RandomForestClassifier(**estimator.get_params()).fit(x, y)
    seconds = time.perf_counter() - started

    def art_forest(fitted: Any) -> Any:
        from art.estimators.classification.scikitlearn import ScikitlearnRandomForestClassifier

        return ScikitlearnRandomForestClassifier(fitted, clip_values=(0.0, 1.0))

    case = Case(
        key="forest",
        title=f"random forest ({budget.forest_trees} deep trees), generated 100-feature data",
        split=split,
        input_shape=(TABULAR_FEATURES,),
        n_classes=TABULAR_CLASSES,
        model=model,
        train_fn=lambda: estimator,
        recipe=f"RandomForestClassifier(n_estimators={budget.forest_trees}, max_depth=None)",
        train_seconds=seconds,
        art_classifier=lambda: art_forest(model),
        art_template=lambda: art_forest(model),
        art_loss=False,
        art_shadow_recipe="the target's estimator cloned (clone_for_refitting)",
        n_reference=budget.n_reference,
    )
    _accuracies(case)
    return case


def build_dp_case(budget: Budget) -> Case:
    from mlwarden.defenses.dp import DPSettings, train_dp

    split = tabular_data(budget)
    settings = DPSettings(epsilon=DP_EPSILON, delta=DP_DELTA, max_grad_norm=DP_MAX_GRAD_NORM)
    x, y = split.take(split.members)
    started = time.perf_counter()
    result = train_dp(
        OverfitMLP,
        x,
        y,
        settings=settings,
        epochs=budget.dp_epochs,
        batch_size=DP_BATCH_SIZE,
        lr=DP_LEARNING_RATE,
        seed=SEED,
        optimizer="adam",
    )
    seconds = time.perf_counter() - started
    model = result.module.eval()
    shape = (TABULAR_FEATURES,)
    case = Case(
        key="dp",
        title=f"the MLP trained with DP-SGD (epsilon {DP_EPSILON:g}, delta {DP_DELTA:g})",
        split=split,
        input_shape=shape,
        n_classes=TABULAR_CLASSES,
        model=model,
        train_fn=lambda: _torch_trainer(OverfitMLP, budget.dp_epochs, dp=settings),
        recipe=f"mlwarden.defenses.dp.train_dp: epsilon {DP_EPSILON:g}, delta {DP_DELTA:g}, "
        f"clip {DP_MAX_GRAD_NORM:g}, lr {DP_LEARNING_RATE:g}, batch {DP_BATCH_SIZE}, "
        f"{budget.dp_epochs} epochs",
        train_seconds=seconds,
        art_classifier=lambda: _art_torch_classifier(
            model, shape, TABULAR_CLASSES, epochs=budget.dp_epochs, batch=DP_BATCH_SIZE
        ),
        art_template=lambda: _art_torch_classifier(
            OverfitMLP(), shape, TABULAR_CLASSES, epochs=budget.dp_epochs, batch=DP_BATCH_SIZE
        ),
        art_loss=True,
        art_shadow_recipe=f"ART cannot train with DP-SGD: its shadows use PyTorchClassifier.fit, "
        f"Adam lr {LEARNING_RATE:g}, batch {DP_BATCH_SIZE}, {budget.dp_epochs} epochs, no noise",
        epsilon=float(result.epsilon_spent),
        n_reference=budget.dp_reference,
    )
    _accuracies(case)
    return case


def build_case(key: str, budget: Budget) -> Case:
    torch.manual_seed(SEED)
    started = time.perf_counter()
    if key == "mlp":
        case = build_torch_case(
            "mlp",
            "overfit MLP, generated 100-feature data",
            tabular_data(budget),
            OverfitMLP,
            budget.mlp_epochs,
            budget.n_reference,
        )
    elif key == "digits":
        case = build_torch_case(
            "digits",
            "digits CNN, 8x8",
            digits_data(budget),
            digits_cnn,
            budget.cnn_epochs,
            budget.n_reference,
        )
    elif key == "forest":
        case = build_forest_case(budget)
    else:
        case = build_dp_case(budget)
    log(
        f"[{key}] trained in {time.perf_counter() - started:.1f} s: member accuracy "
        f"{case.member_accuracy:.3f}, non-member accuracy {case.non_member_accuracy:.3f}"
        + (f", epsilon {case.epsilon:.3g}" if case.epsilon is not None else "")
    )
    return case


# -- scoring (one implementation for every tool) -------------------------------------------------


@dataclass(frozen=True)
class Metrics:
    auc: float
    tpr: dict[float, float]
    """Largest TPR whose FPR is at most the key."""
    advantage: float


def score_metrics(scores: np.ndarray, is_member: np.ndarray) -> Metrics:
    """AUC, TPR at each level of `FPR_LEVELS` and max(TPR - FPR), from scikit-learn's ROC."""
    from sklearn.metrics import roc_auc_score, roc_curve

    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.shape != is_member.shape or not np.all(np.isfinite(scores)):
        raise ValueError(f"scores of shape {scores.shape} (or not finite) for {is_member.shape}")
    fpr, tpr, _ = roc_curve(is_member, scores, drop_intermediate=False)
    return Metrics(
        auc=float(roc_auc_score(is_member, scores)),
        tpr={level: float(tpr[fpr <= level + 1e-12].max()) for level in FPR_LEVELS},
        advantage=float(np.max(tpr - fpr)),
    )


@dataclass
class Row:
    """One attack by one tool on one target."""

    case: str
    tool: str
    attack: str
    knows: str
    """What the attacker needs beyond the candidates and their labels."""
    metrics: Metrics | None = None
    seconds: float = math.nan
    """The attack itself: fitting its attack model and scoring the candidates."""
    trained: str = ""
    """Models it trains once and may share with other rows (shadow / reference models)."""
    status: str = "ok"
    self_reported: dict[str, float] = field(default_factory=dict)
    """mlwarden's own AUC / TPR for the same scores, to cross-check its metrics code."""
    epsilon_lower: float | None = None

    @property
    def ok(self) -> bool:
        return self.metrics is not None


# -- ART -----------------------------------------------------------------------------------------


def _one_hot(y: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((len(y), n), dtype=np.float32)
    out[np.arange(len(y)), y] = 1.0
    return out


def _softmax(outputs: np.ndarray) -> np.ndarray:
    """Rows of probabilities from ART's predictions: logits for torch models (softmax), already
    probabilities for scikit-learn models (left as they are)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if np.all(outputs >= 0) and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-4):
        return outputs.astype(np.float32)
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def _art_probabilities(classifier: Any, x: np.ndarray) -> np.ndarray:
    """What ART's black-box attack sees of the target: its classifier's predictions as
    probabilities (PyTorchClassifier.predict returns logits, on which ART's attack models
    scored AUC ~0.51 on the MLP in trials, against ~0.63 on probabilities)."""
    return _softmax(classifier.predict(x))


def run_art(case: Case, budget: Budget, peers: dict[str, str]) -> list[Row]:
    """ART's rule-based, black-box (attack models nn / rf / gb, loss input) and shadow attacks."""
    split = case.split
    x_c, y_c, is_member = split.candidates
    x_fit_m, y_fit_m = split.take(split.art_members)
    x_fit_n, y_fit_n = split.take(split.art_non_members)
    known = f"outputs + {len(x_fit_m)} known members and {len(x_fit_n)} known non-members"
    rows: list[Row] = []
    if peers["ART"].startswith("not available"):
        return [Row(case.key, "ART", "all", "", status=peers["ART"])]
    from art.attacks.inference.membership_inference import (
        MembershipInferenceBlackBox,
        MembershipInferenceBlackBoxRuleBased,
    )

    classifier = case.art_classifier()

    def attempt(attack: str, knows: str, run: Callable[[], np.ndarray], trained: str = "") -> Row:
        row = Row(case.key, "ART", attack, knows, trained=trained)
        _reset_seeds()
        started = time.perf_counter()
        try:
            with quiet():
                scores = run()
            row.seconds = time.perf_counter() - started
            row.metrics = score_metrics(scores, is_member)
        except Exception as exc:
            row.status = _failure(exc)
            log(traceback.format_exc(limit=3))
        log(_progress_line(row))
        return row

    rows.append(
        attempt(
            "rule-based (correct = member)",
            "labels only",
            lambda: MembershipInferenceBlackBoxRuleBased(classifier).infer(x_c, y_c),
        )
    )
    variants = [("nn", "prediction"), ("rf", "prediction"), ("gb", "prediction")]
    if case.art_loss:
        variants.append(("nn", "loss"))
    for model_type, input_type in variants:

        def black_box(model_type: str = model_type, input_type: str = input_type) -> np.ndarray:
            attack = MembershipInferenceBlackBox(
                classifier, input_type=input_type, attack_model_type=model_type
            )
            if input_type == "loss":
                attack.fit(x_fit_m, y_fit_m, x_fit_n, y_fit_n)
                scores = attack.infer(x_c, y_c, probabilities=True)
            else:
                outputs = functools.partial(_art_probabilities, classifier)
                attack.fit(
                    x_fit_m,
                    y_fit_m,
                    x_fit_n,
                    y_fit_n,
                    pred=outputs(x_fit_m),
                    test_pred=outputs(x_fit_n),
                )
                scores = attack.infer(x_c, y_c, pred=outputs(x_c), probabilities=True)
            return np.asarray(scores).reshape(len(x_c), -1)[:, -1]

        what = "probabilities" if input_type == "prediction" else input_type
        label = " (default)" if (model_type, input_type) == ("nn", "prediction") else ""
        rows.append(attempt(f"black-box, {model_type} on {what}{label}", known, black_box))
    rows += _art_shadow(case, budget, classifier, x_c, y_c, is_member)
    return rows


def _art_shadow(
    case: Case,
    budget: Budget,
    classifier: Any,
    x_c: np.ndarray,
    y_c: np.ndarray,
    is_member: np.ndarray,
) -> list[Row]:
    """ART's ShadowModels on the population, then its black-box attack on the shadow outputs."""
    from art.attacks.inference.membership_inference import (
        MembershipInferenceBlackBox,
        ShadowModels,
    )

    x_p, y_p = case.split.take(case.split.population)
    knows = "population + training recipe"
    trained = ""
    _reset_seeds()
    started = time.perf_counter()
    try:
        with quiet():
            shadows = ShadowModels(
                case.art_template(),
                num_shadow_models=case.n_reference,
                disjoint_datasets=False,
                random_state=SEED,
            )
            (x_in, y_in, p_in), (x_out, y_out, p_out) = shadows.generate_shadow_dataset(
                x_p, _one_hot(y_p, case.n_classes), member_ratio=0.5
            )
        shadow_seconds = time.perf_counter() - started
        trained = f"{case.n_reference} shadows, {shadow_seconds:.1f} s"
        log(f"  ART ShadowModels: {trained}")
    except Exception as exc:
        log(traceback.format_exc(limit=3))
        return [Row(case.key, "ART", "shadow models + black-box", knows, status=_failure(exc))]
    rows = []
    for model_type in SHADOW_ATTACK_MODELS:
        row = Row(
            case.key, "ART", f"shadow models + black-box, {model_type}", knows, trained=trained
        )
        _reset_seeds()
        started = time.perf_counter()
        try:
            with quiet():
                attack = MembershipInferenceBlackBox(classifier, attack_model_type=model_type)
                attack.fit(x_in, y_in, x_out, y_out, pred=_softmax(p_in), test_pred=_softmax(p_out))
                target_outputs = _art_probabilities(classifier, x_c)
                scores = np.asarray(attack.infer(x_c, y_c, pred=target_outputs, probabilities=True))
            row.seconds = time.perf_counter() - started
            row.metrics = score_metrics(scores.reshape(len(x_c), -1)[:, -1], is_member)
        except Exception as exc:
            log(traceback.format_exc(limit=3))
            row.status = _failure(exc)
        log(_progress_line(row))
        rows.append(row)
    return rows


# -- mlwarden ------------------------------------------------------------------------------------

OFFLINE_ATTACKS = (
    "loss",
    "confidence",
    "entropy",
    "modified-entropy",
    "label-only",
    "shadow",
    "lira-offline",
    "rmia",
)
KNOWS = {
    "loss": "outputs",
    "confidence": "outputs",
    "entropy": "outputs",
    "modified-entropy": "outputs",
    "label-only": "labels only",
    "shadow": "population + training recipe",
    "lira-offline": "population + training recipe",
    "rmia": "population + training recipe",
    "lira-online": "population + candidates + training recipe",
}


def _reset_seeds() -> None:
    torch.manual_seed(SEED)
    np.random.seed(SEED)


def run_audit(
    case: Case,
    budget: Budget,
    attacks: Sequence[str],
    mode: str,
    cache_dir: Path,
) -> list[Row]:
    """One ``audit`` call; each attack becomes a row scored by `score_metrics`."""
    split = case.split
    x_c, _, is_member = split.candidates
    trained = ""
    try:
        from mlwarden.attacks.membership import audit

        _reset_seeds()
        started = time.perf_counter()
        with quiet():
            result = audit(
                case.mlwarden_target(),
                members=split.take(split.eval_members),
                non_members=split.take(split.eval_non_members),
                population=split.take(split.population),
                train_fn=case.train_fn(),
                attacks=list(attacks),
                n_reference=case.n_reference,
                reference_mode=mode,  # type: ignore[arg-type]
                cache_dir=cache_dir,
                n_jobs=1,
                seed=SEED,
            )
        total = time.perf_counter() - started
        if result.n_reference:
            trained = f"{result.n_reference} {mode} refs, {result.reference_seconds:.1f} s" + (
                f" ({result.reference_cached} cached)" if result.reference_cached else ""
            )
        log(f"  mlwarden audit ({mode}, {len(attacks)} attacks): {total:.1f} s; {trained}")
    except Exception as exc:
        log(traceback.format_exc(limit=4))
        status = _failure(exc)
        return [Row(case.key, "mlwarden", name, KNOWS[name], status=status) for name in attacks]
    rows = []
    for name in attacks:
        row = Row(case.key, "mlwarden", name, KNOWS[name])
        outcome = result.outcomes.get(name)
        if outcome is None:
            row.status = "error: audit returned no outcome"
            rows.append(row)
            continue
        needs_models = name in ("shadow", "lira-offline", "lira-online", "rmia")
        row.trained = trained if needs_models else ""
        row.seconds = outcome.seconds
        try:
            row.metrics = score_metrics(outcome.scores, is_member)
        except ValueError as exc:
            row.status = _failure(exc)
        row.self_reported = {
            "auc": outcome.auc,
            **{str(k): v for k, v in outcome.tpr_at_fpr.items()},
        }
        row.epsilon_lower = outcome.epsilon.lower
        log(_progress_line(row))
        rows.append(row)
    if len(x_c) != result.n_members + result.n_non_members:
        raise RuntimeError("the audit scored a different candidate set (a bug in run.py)")
    return rows


def run_mlwarden(case: Case, budget: Budget, cache: Path) -> list[Row]:
    rows = run_audit(case, budget, OFFLINE_ATTACKS, "offline", cache / f"{case.key}-offline")
    rows += run_audit(case, budget, ("lira-online",), "online", cache / f"{case.key}-online")
    return rows


def _progress_line(row: Row) -> str:
    if not row.ok or row.metrics is None:
        return f"  {row.tool:8} {row.attack:40} {row.status}"
    m = row.metrics
    return (
        f"  {row.tool:8} {row.attack:40} AUC {m.auc:.3f}  TPR@1% {m.tpr[0.01]:.3f}  "
        f"TPR@0.1% {m.tpr[0.001]:.3f}  {row.seconds:.2f} s"
    )


# -- the reference-model sweep -------------------------------------------------------------------

SWEEP_ATTACKS = {"offline": ("lira-offline", "rmia"), "online": ("lira-online",)}
ONLINE_MINIMUM = 4
"""``train_reference`` refuses online reference sets with fewer models."""


@dataclass
class SweepPoint:
    case: str
    attack: str
    k: int
    metrics: Metrics | None
    status: str = "ok"


@dataclass
class Sweep:
    case: str
    points: list[SweepPoint] = field(default_factory=list)
    train_seconds: dict[str, float] = field(default_factory=dict)
    cached: dict[str, int] = field(default_factory=dict)
    """Models of each mode read back from the main audit's cache instead of trained."""
    status: str = "ok"


def run_sweep(case: Case, budget: Budget, cache: Path) -> Sweep:
    """Train max(sweep) reference models once per mode; score each attack with the first k.

    This is how the LiRA paper varies the number of shadow models (subsets of one large pool),
    and it costs one training of the largest pool instead of one per point.
    """
    sweep = Sweep(case.key)
    try:
        from mlwarden.attacks.membership import MembershipContext, get_attack
        from mlwarden.attacks.membership.reference import train_reference
    except ImportError as exc:
        sweep.status = _failure(exc)
        return sweep
    split = case.split
    x_c, y_c, is_member = split.candidates
    population = split.take(split.population)
    target = case.mlwarden_target()
    probs = target.predict_proba(x_c)
    largest = max(budget.sweep)
    for mode, attacks in SWEEP_ATTACKS.items():
        _reset_seeds()
        started = time.perf_counter()
        try:
            with quiet():
                reference = train_reference(
                    as_train_fn(case.train_fn()),
                    candidates=(x_c, y_c),
                    population=population,
                    n_reference=largest,
                    mode=mode,  # type: ignore[arg-type]
                    n_classes=case.n_classes,
                    seed=SEED,
                    cache_dir=cache / f"{case.key}-{mode}",
                    n_jobs=1,
                    dask=None,
                    progress=None,
                )
        except Exception as exc:
            log(traceback.format_exc(limit=4))
            sweep.status = _failure(exc)
            return sweep
        sweep.train_seconds[mode] = time.perf_counter() - started
        sweep.cached[mode] = reference.cached
        log(f"  [{case.key}] {largest} {mode} reference models: {sweep.train_seconds[mode]:.1f} s")
        for k in budget.sweep:
            if mode == "online" and k < ONLINE_MINIMUM:
                continue
            subset = dataclasses.replace(
                reference,
                probs_candidates=reference.probs_candidates[:k],
                probs_population=reference.probs_population[:k],
                in_candidates=reference.in_candidates[:k],
                in_population=reference.in_population[:k],
            )
            for name in attacks:
                point = SweepPoint(case.key, name, k, None)
                try:
                    context = MembershipContext(
                        target=target,
                        x=x_c,
                        y=y_c,
                        population=population,
                        target_probs=probs,
                        reference=subset,
                        seed=SEED,
                    )
                    with quiet():
                        scores = get_attack(name).run(context)
                    point.metrics = score_metrics(scores, is_member)
                except Exception as exc:
                    log(traceback.format_exc(limit=3))
                    point.status = _failure(exc)
                sweep.points.append(point)
                if point.metrics is not None:
                    log(
                        f"  [{case.key}] {name} k={k}: AUC {point.metrics.auc:.3f}, TPR@0.1% "
                        f"{point.metrics.tpr[0.001]:.3f}"
                    )
    return sweep


def as_train_fn(obj: Any) -> Any:
    from mlwarden.attacks.membership.reference import as_train_fn as convert

    return convert(obj)


# -- reference-model training overhead -----------------------------------------------------------


OVERHEAD_SIDES = ("plain loop", "train_reference, no cache", "train_reference, writing its cache")
CLOCKS: dict[str, Callable[[], float]] = {"CPU": time.process_time, "wall": time.perf_counter}
"""CPU time of this process (one thread: other processes on a shared machine barely move it)
and wall time (what a user waits)."""


@dataclass
class Overhead:
    k: int = 0
    records: int = 0
    repeats: int = 0
    best: dict[tuple[str, str], float] = field(default_factory=dict)
    """(side, clock) -> best seconds over the repeats."""
    status: str = "ok"
    peer_script: str = ""
    """The table printed by ``overhead.py`` (helper script), or why it could not run."""

    def ratio(self, side: str, clock: str) -> float:
        plain = self.best[(OVERHEAD_SIDES[0], clock)]
        return (self.best[(side, clock)] - plain) / plain


def run_overhead(case: Case, budget: Budget, cache: Path) -> Overhead:
    """train_reference(k models, offline, one process) against training them in a plain loop.

    Plain: the same train_fn on the same halves of the population, each model asked once for
    its probabilities on every candidate and population record. The three sides run
    interleaved, their order rotated per repeat, and the best time of each is kept.
    """
    result = Overhead(k=budget.overhead_models, repeats=budget.overhead_repeats)
    try:
        from mlwarden.attacks.membership.reference import train_reference
    except ImportError as exc:
        result.status = _failure(exc)
        return result
    split = case.split
    x_c, y_c, _ = split.candidates
    x_p, y_p = split.take(split.population)
    train_fn = as_train_fn(case.train_fn())
    everything = torch.from_numpy(np.concatenate([x_c, x_p]))

    def reference(directory: Path | None, fn: Any = train_fn) -> Any:
        with quiet():
            return train_reference(
                fn,
                candidates=(x_c, y_c),
                population=(x_p, y_p),
                n_reference=result.k,
                mode="offline",
                n_classes=case.n_classes,
                seed=SEED,
                cache_dir=directory,
                n_jobs=1,
                dask=None,
                progress=None,
            )

    try:
        from sklearn.dummy import DummyClassifier

        # who trains on what depends on the seed and the labels only: a dummy model finds out
        halves = reference(None, DummyClassifier(strategy="prior")).in_population
    except Exception as exc:
        log(traceback.format_exc(limit=4))
        result.status = _failure(exc)
        return result
    result.records = int(halves[0].sum())

    def plain() -> None:
        for i, chosen in enumerate(halves):
            model = train_fn(x_p[chosen], y_p[chosen], SEED + i)
            with torch.no_grad():
                model(everything).softmax(dim=1)

    sides: dict[str, Callable[[], Any]] = {
        OVERHEAD_SIDES[0]: plain,
        OVERHEAD_SIDES[1]: lambda: reference(None),
    }
    for repeat in range(result.repeats):
        folder = cache / f"overhead-{repeat}"
        sides[OVERHEAD_SIDES[2]] = lambda folder=folder: reference(folder)
        order = list(OVERHEAD_SIDES[repeat % 3 :] + OVERHEAD_SIDES[: repeat % 3])
        for side in order:
            _reset_seeds()
            started = {clock: read() for clock, read in CLOCKS.items()}
            sides[side]()
            for clock, read in CLOCKS.items():
                key = (side, clock)
                result.best[key] = min(result.best.get(key, math.inf), read() - started[clock])
    log(
        "  overhead (best CPU s): "
        + ", ".join(f"{side} {result.best[(side, 'CPU')]:.2f}" for side in OVERHEAD_SIDES)
    )
    result.peer_script = run_overhead_script()
    return result


def run_overhead_script() -> str:
    """``overhead.py`` (the same question on small digits models, with its own repeats)."""
    if not OVERHEAD_SCRIPT.exists():
        return ""
    log(f"  running {OVERHEAD_SCRIPT.name} {' '.join(OVERHEAD_SCRIPT_ARGS)}")
    try:
        done = subprocess.run(
            [sys.executable, str(OVERHEAD_SCRIPT), *OVERHEAD_SCRIPT_ARGS],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        return "did not finish within 10 minutes"
    if done.returncode != 0:
        return f"failed: {last_line(done.stderr)}"
    return done.stdout.strip()


# -- model inversion -----------------------------------------------------------------------------


class Counted(nn.Module):
    """The model both inversion tools see: counts the samples it is asked about."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.samples = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.samples += int(x.shape[0])
        out: torch.Tensor = self.inner(x.float())
        return out


@dataclass
class Inversion:
    tool: str
    method: str
    confidence: float = math.nan
    """Mean over classes of the target's probability for the class on its reconstruction."""
    distance: float = math.nan
    """Mean over classes of the L2 distance from the reconstruction to the class's mean member."""
    nearest_mean: float = math.nan
    """Share of classes whose reconstruction is nearest its own class mean (of 10)."""
    seconds: float = math.nan
    queries: int = 0
    status: str = "ok"


@dataclass
class InversionStudy:
    steps: int
    rows: list[Inversion] = field(default_factory=list)
    member_distance: float = math.nan
    """Median L2 distance of a member to its own class mean (the scale of the distances)."""
    blank_distance: float = math.nan
    """Mean L2 distance of an all-zero image (ART's starting point) to the class means."""


def _judge_inversion(case: Case, images: np.ndarray, row: Inversion, means: np.ndarray) -> None:
    images = np.asarray(images, dtype=np.float32).reshape(len(means), *case.input_shape)
    if not np.all(np.isfinite(images)) or images.min() < -1e-6 or images.max() > 1 + 1e-6:
        row.status = "error: reconstruction outside [0, 1]"
        return
    probs = case.predict_proba(images)
    classes = np.arange(len(means))
    row.confidence = float(probs[classes, classes].mean())
    flat = images.reshape(len(images), -1)
    distances = np.linalg.norm(flat[:, None, :] - means[None, :, :], axis=2)
    row.distance = float(distances[classes, classes].mean())
    row.nearest_mean = float((distances.argmin(axis=1) == classes).mean())


def run_inversion(case: Case, budget: Budget, peers: dict[str, str]) -> InversionStudy:
    """MIFace on the digits CNN: ART's and mlwarden's, and mlwarden's black-box variant."""
    study = InversionStudy(steps=budget.inversion_steps)
    x_m, y_m = case.split.take(case.split.members)
    classes = np.arange(case.n_classes)
    means = np.stack([x_m[y_m == c].reshape(-1, x_m[0].size).mean(axis=0) for c in classes])
    flat = x_m.reshape(len(x_m), -1)
    study.member_distance = float(np.median(np.linalg.norm(flat - means[y_m], axis=1)))
    study.blank_distance = float(np.linalg.norm(means, axis=1).mean())
    counted = Counted(case.model).eval()
    steps = budget.inversion_steps
    if peers["ART"].startswith("not available"):
        study.rows.append(Inversion("ART", "MIFace", status=peers["ART"]))
    else:
        from art.attacks.inference.model_inversion import MIFace

        row = Inversion("ART", f"MIFace (max_iter {steps}, lr {MIFACE_LEARNING_RATE:g})")
        classifier = _art_torch_classifier(
            counted, case.input_shape, case.n_classes, epochs=1, batch=BATCH_SIZE
        )
        counted.samples = 0
        _reset_seeds()
        started = time.perf_counter()
        try:
            with quiet():
                attack = MIFace(
                    classifier,
                    max_iter=steps,
                    learning_rate=MIFACE_LEARNING_RATE,
                    batch_size=case.n_classes,
                    verbose=False,
                )
                images = attack.infer(None, y=classes)
            row.seconds = time.perf_counter() - started
            row.queries = counted.samples
            _judge_inversion(case, images, row, means)
        except Exception as exc:
            log(traceback.format_exc(limit=3))
            row.status = _failure(exc)
        study.rows.append(row)
    for method in ("mi-face", "black-box"):
        row = Inversion("mlwarden", f"invert(method={method!r}, steps={steps})")
        try:
            from mlwarden.attacks.inversion import invert
            from mlwarden.targets import target

            wrapped = target(counted, input_shape=case.input_shape, n_classes=case.n_classes)
            counted.samples = 0
            _reset_seeds()
            started = time.perf_counter()
            with quiet():
                result = invert(wrapped, list(classes), method=method, steps=steps, seed=SEED)
            row.seconds = time.perf_counter() - started
            row.queries = counted.samples
            by_label = {r.label: r.image for r in result.reconstructions}
            _judge_inversion(case, np.stack([by_label[int(c)] for c in classes]), row, means)
        except Exception as exc:
            log(traceback.format_exc(limit=3))
            row.status = _failure(exc)
        study.rows.append(row)
    for row in study.rows:
        log(
            f"  {row.tool:8} {row.method:45} confidence {row.confidence:.3f} distance "
            f"{row.distance:.2f} {row.seconds:.2f} s {row.status}"
        )
    return study


# -- the report ----------------------------------------------------------------------------------


def _pct(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{100 * value:.1f}%"


def _num(value: float, digits: int = 3) -> str:
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞"
    return f"{value:.{digits}g}"


def _seconds(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:.2f}"


def _allowed_false_positives(n_non: int, level: float) -> int:
    return math.floor(level * n_non + 1e-9)


def case_table(case: Case, rows: list[Row]) -> str:
    split = case.split
    n_non = len(split.eval_non_members)
    fp = _allowed_false_positives(n_non, 0.001)
    resolution = (
        f"at most {fp} false positive{'s' if fp != 1 else ''} of {n_non} non-members"
        if fp
        else f"**no** false positive among {n_non} non-members: this column is TPR at FPR 0"
    )
    lines = [
        f"## {case.title}",
        "",
        f"Target: {case.recipe}; trained in {case.train_seconds:.1f} s. Accuracy on members "
        f"{_pct(case.member_accuracy)}, on non-members {_pct(case.non_member_accuracy)}"
        + (f"; **epsilon spent {case.epsilon:.3g}** (delta {DP_DELTA:g})" if case.epsilon else "")
        + ".",
        "",
        f"Data: {split.describe()}. TPR@0.1%FPR means {resolution}; TPR@1%FPR allows "
        f"{_allowed_false_positives(n_non, 0.01)}. One member is "
        f"{100 / max(1, len(split.eval_members)):.2f}% of TPR.",
        "",
        "| tool | attack | attacker needs | AUC | TPR@1%FPR | TPR@0.1%FPR | advantage "
        "| attack s | models trained (shared) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.metrics is None:
            lines.append(f"| {row.tool} | {row.attack} | {row.knows} | {row.status} | | | | | |")
            continue
        m = row.metrics
        lines.append(
            f"| {row.tool} | {row.attack} | {row.knows} | {m.auc:.3f} | {_pct(m.tpr[0.01])} "
            f"| {_pct(m.tpr[0.001])} | {m.advantage:.3f} | {_seconds(row.seconds)} "
            f"| {row.trained or '—'} |"
        )
    if case.key == "dp":
        ours = [r for r in rows if r.tool == "mlwarden" and r.epsilon_lower is not None]
        if ours and case.epsilon is not None:
            strongest = max(ours, key=lambda r: r.epsilon_lower or 0.0)
            lines += [
                "",
                f"mlwarden's largest empirical epsilon lower bound (95%) on this model: "
                f"{strongest.epsilon_lower:.3g} ({strongest.attack}), against the "
                f"{case.epsilon:.3g} "
                "DP-SGD spent: a lower bound above the spent epsilon would be a bug in either.",
            ]
    return "\n".join(lines)


def _best(rows: list[Row], tool: str, level: float) -> Row | None:
    mine = [r for r in rows if r.tool == tool and r.metrics is not None]
    if not mine:
        return None
    return max(mine, key=lambda r: (r.metrics.tpr[level], r.metrics.auc) if r.metrics else (0, 0))


def _ratio_text(ours: float, theirs: float) -> str:
    if theirs > 0:
        return f"{ours / theirs:.1f}x"
    return "∞ (ART 0)" if ours > 0 else "— (both 0)"


def ratio_table(cases: dict[str, Case], rows: list[Row]) -> str:
    lines = [
        "## Best attack per tool",
        "",
        "The best row of each tool by TPR at the FPR level (ties: AUC). The issue's target: "
        "mlwarden's TPR@0.1%FPR at least 2x ART's on the overfit models.",
        "",
        "| target | non-members | mlwarden best @0.1% | ART best @0.1% | ratio @0.1% "
        "| mlwarden best @1% | ART best @1% | ratio @1% | best AUC mlwarden / ART |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, case in cases.items():
        mine = [r for r in rows if r.case == key]
        ours, theirs = _best(mine, "mlwarden", 0.001), _best(mine, "ART", 0.001)
        ours1, theirs1 = _best(mine, "mlwarden", 0.01), _best(mine, "ART", 0.01)
        if not (ours and theirs and ours1 and theirs1):
            lines.append(f"| {case.title} | | not measured | | | | | | |")
            continue
        assert ours.metrics and theirs.metrics and ours1.metrics and theirs1.metrics
        auc_ours = max(r.metrics.auc for r in mine if r.tool == "mlwarden" and r.metrics)
        auc_art = max(r.metrics.auc for r in mine if r.tool == "ART" and r.metrics)
        lines.append(
            f"| {case.title} | {len(case.split.eval_non_members)} "
            f"| {_pct(ours.metrics.tpr[0.001])} ({ours.attack}) "
            f"| {_pct(theirs.metrics.tpr[0.001])} ({theirs.attack}) "
            f"| {_ratio_text(ours.metrics.tpr[0.001], theirs.metrics.tpr[0.001])} "
            f"| {_pct(ours1.metrics.tpr[0.01])} ({ours1.attack}) "
            f"| {_pct(theirs1.metrics.tpr[0.01])} ({theirs1.attack}) "
            f"| {_ratio_text(ours1.metrics.tpr[0.01], theirs1.metrics.tpr[0.01])} "
            f"| {auc_ours:.3f} / {auc_art:.3f} |"
        )
    return "\n".join(lines)


def sweep_table(cases: dict[str, Case], sweeps: list[Sweep], budget: Budget) -> str:
    names = [name for attacks in SWEEP_ATTACKS.values() for name in attacks]
    lines = [
        "## Reference models: LiRA and RMIA against their number",
        "",
        f"For each target, the {max(budget.sweep)} reference models of each mode (offline: on "
        "halves of the population; online: on halves of candidates + population) are those of "
        "the audit above, read back from its cache, and each attack is scored with the first k "
        "of them, as the LiRA paper does. Cells: "
        "AUC / TPR@1%FPR / TPR@0.1%FPR on the same candidates as above. lira-online needs at "
        f"least {ONLINE_MINIMUM} models.",
        "",
        "| target | k | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for sweep in sweeps:
        title = cases[sweep.case].title
        if sweep.status != "ok" and not sweep.points:
            lines.append(f"| {title} | | {sweep.status} |" + " |" * (len(names) - 1))
            continue
        for i, k in enumerate(budget.sweep):
            cells = []
            for name in names:
                point = next((p for p in sweep.points if p.attack == name and p.k == k), None)
                if point is None:
                    cells.append("—")
                elif point.metrics is None:
                    cells.append(point.status)
                else:
                    m = point.metrics
                    cells.append(f"{m.auc:.3f} / {_pct(m.tpr[0.01])} / {_pct(m.tpr[0.001])}")
            lines.append(f"| {title if i == 0 else ''} | {k} | " + " | ".join(cells) + " |")
        times = ", ".join(
            f"{mode}: {sweep.cached.get(mode, 0)} read from the audit's cache, {seconds:.1f} s"
            for mode, seconds in sweep.train_seconds.items()
        )
        if times:
            lines.append(f"| | {max(budget.sweep)} models | {times} |" + " |" * (len(names) - 1))
    return "\n".join(lines)


def overhead_section(overhead: Overhead, case: Case) -> str:
    lines = ["## Reference-model training overhead", ""]
    if overhead.status != "ok":
        lines.append(f"Not measured: {overhead.status}.")
        return "\n".join(lines)
    lines += [
        f"{overhead.k} offline reference models with the {case.title} recipe, each on "
        f"{overhead.records} population records, one process, one thread. Plain: the same "
        "`train_fn` on the same halves in a loop, each model asked once about every candidate "
        "and population record (what a hand-written loop needs to do the same work). The three "
        f"sides run interleaved, in rotated order, {overhead.repeats} "
        f"time{'s' if overhead.repeats != 1 else ''}; the best time of each is kept. CPU time "
        "is the fair comparison on a shared machine.",
        "",
        "| | CPU s | overhead | wall s | overhead |",
        "|---|---|---|---|---|",
    ]
    for i, side in enumerate(OVERHEAD_SIDES):
        cells = []
        for clock in CLOCKS:
            seconds = overhead.best[(side, clock)]
            cells.append(
                f"{seconds:.2f} | {'—' if i == 0 else f'{overhead.ratio(side, clock):+.1%}'}"
            )
        lines.append(f"| {side} | " + " | ".join(cells) + " |")
    if overhead.peer_script:
        lines += [
            "",
            f"`{OVERHEAD_SCRIPT.relative_to(REPO)} {' '.join(OVERHEAD_SCRIPT_ARGS)}` (small "
            "models on digits, where the fixed costs weigh most):",
            "",
            overhead.peer_script,
        ]
    return "\n".join(lines)


def inversion_section(case: Case, study: InversionStudy) -> str:
    lines = [
        f"## Model inversion: {case.title}",
        "",
        f"One reconstruction per class (10), {study.steps} steps each, from each tool's "
        "default start. Confidence: the target's probability of the class on its "
        "reconstruction (our own forward pass), mean over classes. Distance: L2 to the mean of "
        "the class's members, mean over classes; for scale, a member's median distance to its "
        f"own class mean is {study.member_distance:.2f} and an all-zero image is "
        f"{study.blank_distance:.2f} from the class means on average. Nearest mean: classes "
        "whose reconstruction is nearer its own class mean than any other.",
        "",
        "| tool | method | confidence | distance to class mean | nearest mean | queries | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in study.rows:
        if row.status != "ok":
            lines.append(f"| {row.tool} | {row.method} | {row.status} | | | | |")
            continue
        lines.append(
            f"| {row.tool} | {row.method} | {row.confidence:.3f} | {row.distance:.2f} "
            f"| {_pct(row.nearest_mean)} | {row.queries} | {row.seconds:.2f} |"
        )
    return "\n".join(lines)


def findings(
    cases: dict[str, Case],
    rows: list[Row],
    sweeps: list[Sweep],
    overhead: Overhead | None,
    study: InversionStudy | None,
) -> str:
    """The 'what this shows' list, computed from the numbers of this run."""
    lines = ["## What this shows", ""]
    met, missed = [], []
    for key in OVERFIT_KEYS:
        if key not in cases:
            continue
        mine = [r for r in rows if r.case == key]
        ours, theirs = _best(mine, "mlwarden", 0.001), _best(mine, "ART", 0.001)
        if not (ours and theirs and ours.metrics and theirs.metrics):
            missed.append(f"{key}: not measured")
            continue
        a, b = ours.metrics.tpr[0.001], theirs.metrics.tpr[0.001]
        split = cases[key].split
        n_m, n_n = len(split.eval_members), len(split.eval_non_members)
        fp = _allowed_false_positives(n_n, 0.001)
        text = (
            f"{key} {_pct(a)} ({ours.attack}) vs {_pct(b)} ({theirs.attack}), "
            f"{_ratio_text(a, b)}: {round(a * n_m)} vs {round(b * n_m)} of {n_m} members, with "
            f"{'no' if fp == 0 else f'at most {fp}'} false positive{'s' if fp != 1 else ''} "
            f"among {n_n} non-members"
        )
        if b > 0.5:
            text += (
                f"; 2x is out of reach once ART's best is above 50%: ART misses "
                f"{_pct(1 - b)} of the members at this FPR, mlwarden {_pct(1 - a)}"
            )
        (met if a >= 2 * b and a > 0 else missed).append(text)
    if met or missed:
        lines.append(
            f"- **TPR@0.1%FPR, mlwarden's best vs ART's best**: at least 2x on {len(met)} of "
            f"{len(met) + len(missed)} overfit targets"
            + (f" ({'; '.join(met)})" if met else "")
            + "."
            + (f" Not met: {'; '.join(missed)}." if missed else "")
        )
    for sweep in sweeps:
        for name in ("lira-offline", "lira-online", "rmia"):
            points = [p for p in sweep.points if p.attack == name and p.metrics is not None]
            if len(points) < 2:
                continue
            first, last = points[0], points[-1]
            assert first.metrics and last.metrics
            tprs = [p.metrics.tpr[0.001] for p in points if p.metrics]
            low, high = first.metrics.tpr[0.001], last.metrics.tpr[0.001]
            trend = "rises" if high > low else "falls" if high < low else "stays"
            monotone = all(b >= a for a, b in itertools.pairwise(tprs))
            path = " → ".join(f"{_pct(v)}" for v in tprs)
            lines.append(
                f"- **{name} on {sweep.case}**: TPR@0.1%FPR {trend} from k={first.k} to "
                f"k={last.k} ({path}"
                + (")" if monotone or trend != "rises" else ", not monotonically)")
                + f"; AUC {first.metrics.auc:.3f} → {last.metrics.auc:.3f}."
            )
    if "dp" in cases:
        dp_rows = [r for r in rows if r.case == "dp" and r.metrics is not None]
        if dp_rows:
            worst = max(dp_rows, key=lambda r: abs(r.metrics.auc - 0.5) if r.metrics else 0.0)
            assert worst.metrics
            eps = cases["dp"].epsilon
            lines.append(
                f"- **DP-SGD (epsilon {eps:.3g})**: every attack's AUC is within "
                f"{abs(worst.metrics.auc - 0.5):.3f} of 0.5 (furthest: {worst.tool} "
                f"{worst.attack}, {worst.metrics.auc:.3f}); accuracy on non-members "
                f"{_pct(cases['dp'].non_member_accuracy)} against "
                f"{_pct(cases['mlp'].non_member_accuracy) if 'mlp' in cases else '—'} without DP "
                f"(chance: {_pct(1 / cases['dp'].n_classes)}): at this epsilon and "
                f"{len(cases['dp'].split.members)} training records the model keeps little "
                "utility, and so little to leak."
            )
    if overhead is not None and overhead.status == "ok":
        cpu = overhead.ratio(OVERHEAD_SIDES[1], "CPU")
        cached = overhead.ratio(OVERHEAD_SIDES[2], "CPU")
        verdict = "under" if max(cpu, cached) < 0.10 else "**over**"
        lines.append(
            f"- **Reference-model overhead** (CPU time, MLP recipe): {cpu:+.1%} against the "
            f"plain loop, {cached:+.1%} while writing the cache ({verdict} the 10% target)."
        )
    if study is not None:
        ok = [r for r in study.rows if r.status == "ok"]
        if ok:
            lines.append(
                "- **Inversion**: "
                + "; ".join(
                    f"{r.tool} {r.method}: confidence {r.confidence:.3f}, "
                    f"distance {r.distance:.2f}, {r.seconds:.2f} s"
                    for r in ok
                )
                + "."
            )
    disagreements = []
    for row in rows:
        if row.tool != "mlwarden" or row.metrics is None or not row.self_reported:
            continue
        diffs = [abs(row.self_reported["auc"] - row.metrics.auc)]
        diffs += [
            abs(row.self_reported[str(level)] - row.metrics.tpr[level])
            for level in FPR_LEVELS
            if str(level) in row.self_reported
        ]
        if max(diffs) > 1e-6:
            disagreements.append(f"{row.case}/{row.attack} (by {max(diffs):.2g})")
    checked = sum(1 for r in rows if r.tool == "mlwarden" and r.self_reported)
    if checked:
        lines.append(
            f"- **mlwarden's own metrics** agree with this script's scikit-learn ROC on "
            f"{checked - len(disagreements)} of {checked} rows"
            + (f"; they differ on {', '.join(disagreements)}." if disagreements else ".")
        )
    grouped: dict[tuple[str, str, str], list[str]] = {}
    for row in rows:
        if not row.ok:
            grouped.setdefault((row.tool, row.case, row.status), []).append(row.attack)
    errors = [
        f"{tool} {', '.join(attacks)} on {case}: {status}"
        for (tool, case, status), attacks in grouped.items()
    ]
    if errors:
        lines.append("- **Not measured**: " + "; ".join(errors) + ".")
    return "\n".join(lines)


def header(peers: dict[str, str], budget: Budget, quick: bool, elapsed: float) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in peers.items())
    return "\n".join(
        [
            "# Privacy benchmark results",
            "",
            f"Run {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} by "
            "`benchmarks/privacy/run.py`"
            + (" `--quick` (smoke run, not a result)" if quick else "")
            + f"; total {elapsed / 60:.1f} min.",
            "",
            f"- Machine: {platform.platform()}, {os.cpu_count()} cores, torch "
            f"{torch.__version__} with {torch.get_num_threads()} threads, Python "
            f"{platform.python_version()}.",
            f"- mlwarden {_version('mlwarden')} from this checkout, Opacus {_version('opacus')}, "
            f"scikit-learn {_version('scikit-learn')}; peers: {versions}.",
            f"- Budget: {budget}.",
            "- Every number is computed by this script from each tool's membership scores "
            "(scikit-learn's roc_curve; TPR at a level is the largest TPR whose FPR is at most "
            "it), on the same held-out candidates for every tool. One run, one seed. See "
            "README.md for the splits, what each attacker is given and how the recipes match.",
        ]
    )


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small data, few epochs and models: a smoke run"
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated parts to run, from: {', '.join(ONLY_KEYS)} (targets run their "
        "membership table; sweep and overhead run on the chosen overfit targets, or all)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help="where to write results")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads for torch and NumPy's BLAS (default 1; 0 leaves the libraries' defaults)",
    )
    parser.add_argument(
        "--no-setup",
        action="store_true",
        help="run in this interpreter, without installing or switching to .venv-bench/privacy",
    )
    args = parser.parse_args(argv)
    chosen = [v for v in args.only.split(",") if v]
    unknown = sorted(set(chosen) - set(ONLY_KEYS))
    if unknown:
        parser.error(f"--only: unknown {', '.join(unknown)}; choose from {', '.join(ONLY_KEYS)}")
    args.only = chosen or list(ONLY_KEYS)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.no_setup:
        ENV.enter(str(Path(__file__).resolve()))
    logging.getLogger("art").setLevel(logging.ERROR)
    if args.threads > 0:
        # one thread by default: the machine is shared, and OpenMP workers spin while another
        # process holds a core, which makes timings of such small models depend on the load
        torch.set_num_threads(args.threads)
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.threads)
    budget = QUICK if args.quick else FULL
    started = time.perf_counter()
    peers = ENV.status()
    log("peers: " + ", ".join(f"{name} {version}" for name, version in peers.items()))
    cases: dict[str, Case] = {}
    failed: dict[str, str] = {}

    def case_for(key: str) -> Case | None:
        if key not in cases and key not in failed:
            try:
                cases[key] = build_case(key, budget)
            except Exception as exc:
                log(traceback.format_exc(limit=4))
                failed[key] = _failure(exc)
        return cases.get(key)

    rows: list[Row] = []
    sweeps: list[Sweep] = []
    overhead: Overhead | None = None
    study: InversionStudy | None = None
    with tempfile.TemporaryDirectory(prefix="mlwarden-privacy-bench-") as scratch:
        cache = Path(scratch)
        for key in (k for k in TARGET_KEYS if k in args.only):
            case = case_for(key)
            if case is None:
                rows.append(Row(key, "mlwarden", "target", "", status=failed[key]))
                continue
            log(f"[{key}] ART")
            rows += run_art(case, budget, peers)
            log(f"[{key}] mlwarden")
            rows += run_mlwarden(case, budget, cache)
        chosen_overfit = [k for k in OVERFIT_KEYS if k in args.only] or list(OVERFIT_KEYS)
        if "sweep" in args.only:
            for key in chosen_overfit:
                case = case_for(key)
                if case is not None:
                    log(f"[{key}] reference-model sweep")
                    sweeps.append(run_sweep(case, budget, cache))
        if "overhead" in args.only:
            case = case_for("mlp")
            if case is not None:
                log("[mlp] reference-model overhead")
                overhead = run_overhead(case, budget, cache)
        if "inversion" in args.only:
            case = case_for("digits")
            if case is not None:
                log("[digits] model inversion")
                study = run_inversion(case, budget, peers)
    elapsed = time.perf_counter() - started
    parts = [header(peers, budget, args.quick, elapsed)]
    shown = {k: c for k, c in cases.items() if k in args.only}
    parts += [case_table(case, [r for r in rows if r.case == key]) for key, case in shown.items()]
    if failed:
        parts.append(
            "\n".join(f"- {key}: could not be built ({why})" for key, why in failed.items())
        )
    overfit_shown = {k: c for k, c in shown.items() if k in OVERFIT_KEYS}
    if overfit_shown:
        parts.append(ratio_table(overfit_shown, rows))
    if sweeps:
        parts.append(sweep_table(cases, sweeps, budget))
    if overhead is not None:
        parts.append(overhead_section(overhead, cases["mlp"]))
    if study is not None:
        parts.append(inversion_section(cases["digits"], study))
    parts.append(findings(shown, rows, sweeps, overhead, study))
    text = "\n\n".join(parts) + "\n"
    print(text)
    args.out.write_text(text)
    log(f"wrote {args.out} ({elapsed / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
