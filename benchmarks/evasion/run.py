"""Benchmark mlwarden's evasion attacks against IBM ART, torchattacks and foolbox.

Run by ``make bench-evasion`` (``.venv/bin/python benchmarks/evasion/run.py [--quick]
[--only ROW,...] [--models NAME,...] [--out FILE]``). It installs the peers into one separate
environment (``.venv-bench/evasion``: torch pinned to the project's CPU build, mlwarden from this
checkout, ART, foolbox with eagerpy, torchattacks without its dependencies), re-runs itself with
that environment's Python, trains the demo models once and, in one process:

1. runs every attack row (FGSM, PGD, APGD, C&W, DeepFool, Square, HopSkipJump, few-pixel,
   universal patch) with every tool that has it, on the same samples with matched parameters;
2. checks every tool's output itself: inside the eps ball and the input range, and fooled
   according to a fresh forward pass of the model, never the tool's own claim;
3. times each call (wall and CPU) against the floor: the same number of plain forward and
   backward passes in raw torch on the same batch;
4. compares mlwarden's ``standard`` suite with the strongest single peer attack, and with
   torchattacks' AutoAttack, at every eps.

Progress goes to stderr; the tables go to stdout and to ``benchmarks/evasion/RESULTS.md``. Not
for: unit testing (see ``tests/attacks``); nothing here is imported by the package.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import gc
import importlib
import importlib.metadata
import logging
import math
import os
import platform
import random
import sys
import time
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

from mlwarden.demo.models import (  # noqa: E402
    TrainedModel,
    train_breast_cancer_mlp,
    train_digits_cnn,
)

RESULTS_FILE = Path(__file__).resolve().parent / "RESULTS.md"

RANGE = (0.0, 1.0)
"""Every model here takes inputs in [0, 1] (pixels / 16, or min-max scaled features)."""
TOLERANCE = 1e-6
"""Float32 slack on the input range and the eps ball, in input units."""
SEED = 0
"""The seed of every timed call and of the tables; `--seeds N` adds calls at seeds 1 to N-1."""
STEADY_MALLOC = {
    "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
    "MALLOC_MMAP_THRESHOLD_": str(256 << 20),
    "MALLOC_TOP_PAD_": str(64 << 20),
}
"""glibc settings the benchmark runs under: freed memory stays with the process instead of being
returned to the system and faulted in again on the next pass. Without them the same call varied
by up to 30% with the tens of thousands of page faults it happened to take, depending on what
ran before it; every tool and the floor run under the same settings."""
REPEAT_BELOW_S = 2.0
"""A call faster than this (seconds) is repeated: the noise of a shared machine and a first
call's allocations weigh most on the shortest calls."""
REPEATS = 5
"""Calls per tool for such a short attack; the fastest wall and CPU times are kept, as for the
floor. Robust accuracy, success and norms always come from the first call."""


# -- the bench environment -----------------------------------------------------------------------


PEERS = (
    Peer(
        "ART",
        "art.attacks.evasion",
        "adversarial-robustness-toolbox",
        ("adversarial-robustness-toolbox",),
    ),
    Peer("foolbox", "foolbox", "foolbox", ("foolbox", "eagerpy")),
    Peer(
        "torchattacks",
        "torchattacks",
        "torchattacks",
        ("torchattacks",),
        no_deps=True,
        extra=("scipy", "tqdm"),
    ),
)
ENV = PeerEnv("evasion", "sklearn", PEERS)
"""The venv under .venv-bench/evasion the benchmark re-runs itself in (`peer_env.py`)."""
TOOLS = ("mlwarden", *(peer.name for peer in PEERS))


def warm_mlwarden_imports() -> None:
    """Import every mlwarden attack module before timing, as `PeerEnv.status` does for the peers.

    mlwarden imports an attack's module on first use; without this the first mlwarden row of a
    run also timed that import.
    """
    from mlwarden.attacks.evasion import attack_names, get_attack

    for name in attack_names():
        get_attack(name)


# -- parameters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """Attack parameters given to every tool (README.md maps each to each tool's own name)."""

    samples: int
    pgd_steps: int
    apgd_steps: int
    cw_search_steps: int
    cw_steps: int
    deepfool_steps: int
    square_queries: int
    hsj_steps: int
    hsj_max_evals: int
    pixel_iterations: int
    pixel_population: int
    patch_steps: int
    patch_train: int
    suite_eps: int
    """How many of each model's suite budgets to run (spread over its list)."""


FULL = Budget(
    samples=200,
    pgd_steps=50,
    apgd_steps=100,
    cw_search_steps=5,
    cw_steps=20,
    deepfool_steps=50,
    square_queries=1000,
    hsj_steps=20,
    hsj_max_evals=1000,
    pixel_iterations=10,
    pixel_population=400,
    patch_steps=100,
    patch_train=256,
    suite_eps=4,
)
QUICK = Budget(
    samples=32,
    pgd_steps=10,
    apgd_steps=20,
    cw_search_steps=3,
    cw_steps=10,
    deepfool_steps=10,
    square_queries=100,
    hsj_steps=3,
    hsj_max_evals=200,
    pixel_iterations=2,
    pixel_population=100,
    patch_steps=10,
    patch_train=64,
    suite_eps=2,
)

PGD_STEP_FACTOR = 2.5
"""PGD step = 2.5 * eps / steps (Madry et al.), the same for every tool."""
APGD_FIRST_STEP = 2.0
"""APGD's first step = 2 * eps (Croce & Hein 2020); ART needs it as ``eps_step``."""
CW_LEARNING_RATE = 0.01
CW_INITIAL_CONST = 1.0
DEEPFOOL_OVERSHOOT = 0.02
SQUARE_P_INIT = 0.8
HSJ_INIT_EVALS = 100
HSJ_GAMMA = 1.0


@dataclass(frozen=True)
class CaseSpec:
    """One model and the budgets it is attacked with."""

    title: str
    train: Callable[[], TrainedModel]
    eps_linf: float
    eps_l2: float
    suite_eps: tuple[float, ...]
    pixels: int = 0
    """Few-pixel budget (pixels changed); 0 for tabular data."""
    patch_side: int = 0
    """Universal patch side in pixels; 0 for no patch row."""
    patch_class: int = 0
    max_samples: int = 200
    """At most this many test samples, whatever the budget (the 28x28 model costs ~10x more
    per pass than the 8x8 one)."""


CASE_SPECS: dict[str, CaseSpec] = {
    "digits8": CaseSpec(
        "digits CNN, 8x8",
        lambda: train_digits_cnn(seed=SEED, side=8),
        eps_linf=0.1,
        eps_l2=0.5,
        suite_eps=(0.05, 0.1, 0.15, 0.2),
        pixels=1,
    ),
    "digits28": CaseSpec(
        "digits CNN, upsampled 28x28",
        lambda: train_digits_cnn(seed=SEED, side=28),
        eps_linf=0.075,
        eps_l2=1.5,
        suite_eps=(0.025, 0.05, 0.075, 0.1),
        pixels=3,
        patch_side=12,
        patch_class=8,
        max_samples=100,
    ),
    "cancer": CaseSpec(
        "breast-cancer MLP",
        lambda: train_breast_cancer_mlp(seed=SEED),
        eps_linf=0.05,
        eps_l2=0.15,
        suite_eps=(0.02, 0.05, 0.1, 0.15),
    ),
}


# -- the models ----------------------------------------------------------------------------------


class Counted(nn.Module):
    """The model every tool attacks: counts the samples it is asked about (queries)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.samples = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.samples += int(x.shape[0])
        # ART's HopSkipJump hands the model float64 arrays; a no-op for every other caller
        out: torch.Tensor = self.inner(x.float())
        return out


@dataclass
class Case:
    """A trained model, the fixed samples every tool attacks, and each tool's wrapper of it."""

    key: str
    spec: CaseSpec
    trained: TrainedModel
    x: np.ndarray
    y: np.ndarray
    counted: Counted
    reference: nn.Module
    """A frozen copy in eval mode: the floor's model and the judge of every result."""
    clean_correct: np.ndarray = field(init=False)
    wrappers: dict[str, Any] = field(default_factory=dict)
    pass_seconds: dict[tuple[str, bool, int], float] = field(default_factory=dict)
    """Per pass, the fastest timed run of passes of each kind (grad, forward, jacobian; on the
    training batch or not; run length), over every measurement of the run: the floor's unit
    costs."""
    single_pass_seconds: dict[tuple[str, bool], float] = field(default_factory=dict)
    """The fastest single pass of each kind seen in the run: the unit of the older, stricter
    floor (`Measurement.single_floor`)."""

    def __post_init__(self) -> None:
        self.clean_correct = self.predict(self.x) == self.y

    @property
    def n(self) -> int:
        return len(self.x)

    @property
    def n_classes(self) -> int:
        return self.trained.n_classes

    @property
    def shape(self) -> tuple[int, ...]:
        return self.trained.input_shape

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.x.copy()), torch.from_numpy(self.y.copy())

    def predict(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = self.reference(torch.from_numpy(np.ascontiguousarray(x, np.float32)))
        return np.asarray(logits.argmax(dim=1).numpy())

    def wrapper(self, tool: str) -> Any:
        """The tool's own view of the model, built once and outside every timing."""
        if tool not in self.wrappers:
            self.wrappers[tool] = _build_wrapper(self, tool)
        return self.wrappers[tool]


def _build_wrapper(case: Case, tool: str) -> Any:
    if tool == "mlwarden":
        from mlwarden.targets import target

        return target(
            case.counted,
            input_shape=case.shape,
            n_classes=case.n_classes,
            input_range=RANGE,
            batch_size=max(256, case.n),
        )
    if tool == "ART":
        from art.estimators.classification import PyTorchClassifier

        return PyTorchClassifier(
            model=case.counted,
            loss=nn.CrossEntropyLoss(),
            input_shape=case.shape,
            nb_classes=case.n_classes,
            clip_values=RANGE,
            device_type="cpu",
        )
    if tool == "foolbox":
        import foolbox

        return foolbox.PyTorchModel(case.counted.eval(), bounds=RANGE, device="cpu")
    return case.counted


def build_case(key: str, budget: Budget) -> Case:
    spec = CASE_SPECS[key]
    started = time.perf_counter()
    trained = spec.train()
    log(f"[{key}] trained {spec.title} in {time.perf_counter() - started:.1f} s")
    model = trained.model.eval()
    reference = copy.deepcopy(model).eval()
    reference.requires_grad_(False)
    count = min(budget.samples, spec.max_samples, len(trained.x_test))
    return Case(
        key=key,
        spec=spec,
        trained=trained,
        x=_standard_layout(trained.x_test[:count], np.float32),
        y=_standard_layout(trained.y_test[:count], np.int64),
        counted=Counted(model),
        reference=reference,
    )


def _standard_layout(array: np.ndarray, dtype: type) -> np.ndarray:
    """A fresh C-ordered copy with the standard strides.

    `np.ascontiguousarray` keeps any stride on an axis of length one, and the digits images
    (one channel, cut from an (n, h, w, c) array) keep a channel stride of one element: torch
    then takes them as channels-last and runs other convolution kernels, about 15% faster here.
    A tool handed `x.copy()` gets the standard layout, so the floor, the judge and every tool
    get that one layout.
    """
    return np.array(array, dtype=dtype, order="C", copy=True)


# -- the floor -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Floor:
    """The passes an attack's parameters allow, over the whole batch (or the patch's training
    set): what raw torch would need to do the same number of passes."""

    grad: float = 0.0
    """Forward plus backward with respect to the input."""
    forward: float = 0.0
    """Forward only, without autograd (a black-box query of every sample)."""
    jacobian: float = 0.0
    """Forward plus one backward per class (one DeepFool step)."""
    on_train: bool = False

    def describe(self) -> str:
        parts = []
        if self.grad:
            parts.append(f"{self.grad:g} x fwd+bwd")
        if self.forward:
            parts.append(f"{self.forward:g} x fwd")
        if self.jacobian:
            parts.append(f"{self.jacobian:g} x jacobian")
        return " + ".join(parts)


FLOOR_RUN = 50
"""Most passes in one timed run of the floor. A row that allows fewer is timed over exactly that
many; a longer row is timed over 50 and scaled. An attack's passes come one after another, and
so do the floor's; 50 keep the longest run under two seconds on these models."""


def _fastest(fn: Callable[[], None], *, reps: int = 5, inner: int = 2) -> float:
    """Seconds per call of `fn`: the fastest of `reps` timings of `inner` calls each."""
    fn()
    return min(_seconds_per_call(fn, inner) for _ in range(reps))


def _seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    """Seconds per call of `fn` over one timed run of `calls` calls, one after another."""
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def run_length(count: float) -> int:
    """How many passes one timed floor run makes for a row whose attack allows `count`."""
    return max(1, min(FLOOR_RUN, round(count)))


def measure_passes(case: Case, floor: Floor, budget: Budget) -> None:
    """Time the passes of each kind `floor` needs, keeping the fastest seen in the whole run
    (`Measurement.run_floor`; the row's own floor is `time_floor_once`, in turns with the tools).

    Each kind is timed as the attack makes it: a run of `run_length` passes one after another,
    the fastest of `REPEATS` runs kept, as for the tools. A run's passes cost more than its
    fastest single pass (0-7% per pass on these models in the full run at commit bee2a95:
    caches, the allocator, the scheduler), and no attack of many passes reaches that single
    pass on every one of them. The fastest single
    pass is kept too, for the older floor of ``count x fastest pass`` the findings quote.
    Measured again before every row, so that a moment when another process held the core does
    not set the floor: the floor is what the passes cost when nothing else runs.
    """
    for kind, count, fn in _pass_kinds(case, floor, budget):
        single = (kind, floor.on_train)
        seen = case.single_pass_seconds.get(single, math.inf)
        case.single_pass_seconds[single] = min(seen, _fastest(fn))
        passes = run_length(count)
        key = (kind, floor.on_train, passes)
        run = _fastest(fn, reps=REPEATS, inner=passes)
        case.pass_seconds[key] = min(case.pass_seconds.get(key, math.inf), run)


def time_floor_once(case: Case, floor: Floor, budget: Budget) -> float:
    """Seconds of `floor` from one timed run of passes of each kind, scaled to its count.

    `run_row` calls this once per round of its tools' calls, the floor taking its turn like a
    tool: the row's floor is then the fastest of as many tries as each tool gets, under the
    same conditions (`Measurement.floor`).
    """
    return sum(
        count * _seconds_per_call(fn, run_length(count))
        for _, count, fn in _pass_kinds(case, floor, budget)
    )


def _pass_kinds(
    case: Case, floor: Floor, budget: Budget
) -> list[tuple[str, float, Callable[[], None]]]:
    """(kind, count, one plain pass of that kind) for each kind of pass `floor` counts."""
    x_np = case.trained.x_train[: budget.patch_train] if floor.on_train else case.x
    y_np = case.trained.y_train[: budget.patch_train] if floor.on_train else case.y
    x = torch.from_numpy(_standard_layout(x_np, np.float32))
    y = torch.from_numpy(_standard_layout(y_np, np.int64))
    model = case.reference

    def grad() -> None:
        xx = x.clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(model(xx), y, reduction="sum")
        torch.autograd.grad(loss, xx)

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def jacobian() -> None:
        xx = x.clone().requires_grad_(True)
        logits = model(xx)
        for k in range(case.n_classes):
            torch.autograd.grad(logits[:, k].sum(), xx, retain_graph=k < case.n_classes - 1)

    passes = {"grad": grad, "forward": forward, "jacobian": jacobian}
    return [(kind, count, passes[kind]) for kind, count in _floor_counts(floor).items() if count]


CHECK = Floor(forward=1)
"""One forward pass over the samples: what a user of a tool that returns only the adversarial
inputs (ART, torchattacks) must add to learn which of them fool the model. mlwarden and foolbox
make that pass inside the call and report it (`Produced.claimed`)."""


def check_seconds(case: Case) -> float:
    """Seconds of the fastest `CHECK` pass timed so far (NaN before `run_row` timed one)."""
    return case.pass_seconds.get(("forward", False, run_length(CHECK.forward)), math.nan)


def _floor_counts(floor: Floor) -> dict[str, float]:
    return {"grad": floor.grad, "forward": floor.forward, "jacobian": floor.jacobian}


def floor_seconds(case: Case, floor: Floor) -> float:
    """The floor in seconds from the fastest timed runs of passes so far."""
    return sum(
        count * case.pass_seconds.get((kind, floor.on_train, run_length(count)), math.nan)
        for kind, count in _floor_counts(floor).items()
        if count
    )


def single_floor_seconds(case: Case, floor: Floor) -> float:
    """The older floor: each pass at the fastest single pass seen in the run."""
    return sum(
        count * case.single_pass_seconds.get((kind, floor.on_train), math.nan)
        for kind, count in _floor_counts(floor).items()
        if count
    )


# -- attack rows ---------------------------------------------------------------------------------


@dataclass
class Produced:
    """A tool's answer: adversarial inputs and, if the tool says so, which ones it thinks work."""

    x_adv: np.ndarray
    claimed: np.ndarray | None = None


Params = dict[str, Any]


def seed_of(p: Params) -> int:
    """The seed a call runs at: `SEED` unless `run_row` asks for another (`--seeds`)."""
    return int(p.get("seed", SEED))


Runner = Callable[[Case, Params], Produced]


@dataclass(frozen=True)
class Entry:
    tool: str
    run: Runner
    label: str = ""
    attack: str = ""
    """mlwarden attack name (for `get_attack`); empty for peers."""

    @property
    def name(self) -> str:
        return self.label or self.tool


@dataclass(frozen=True)
class Row:
    key: str
    title: str
    norm: str
    """How the budget is checked: linf, l2, pixels (changed positions), patch (bounding box)."""
    params: Callable[[Case, Budget, float | None], Params]
    """Matched parameters; the third argument overrides eps (suite runs)."""
    floor: Callable[[Case, Params], Floor]
    entries: tuple[Entry, ...]
    applies: Callable[[Case], bool] = lambda case: True
    minimum_norm: bool = False
    describe: Callable[[Params], str] = lambda p: ""


def _numpy(t: Any) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return np.asarray(t.detach().cpu().numpy())
    return np.asarray(t)


def mlwarden_entry(
    name: str, args: Callable[[Case, Params], dict[str, Any]], label: str = ""
) -> Entry:
    def run(case: Case, p: Params) -> Produced:
        from mlwarden.attacks.evasion import get_attack

        _, fn = get_attack(name)
        result = fn(case.wrapper("mlwarden"), case.x, case.y, seed=seed_of(p), **args(case, p))
        return Produced(np.asarray(result.x_adv), np.asarray(result.success))

    return Entry("mlwarden", run, label=label, attack=name)


def art_entry(make: Callable[[Any, Case, Params], Any]) -> Entry:
    def run(case: Case, p: Params) -> Produced:
        attack = make(case.wrapper("ART"), case, p)
        return Produced(np.asarray(attack.generate(x=case.x.copy(), y=case.y.copy())))

    return Entry("ART", run)


def torchattacks_entry(make: Callable[[Any, Case, Params], Any]) -> Entry:
    def run(case: Case, p: Params) -> Produced:
        import torchattacks

        x, y = case.tensors()
        return Produced(_numpy(make(torchattacks, case, p)(x, y)))

    return Entry("torchattacks", run)


def foolbox_entry(make: Callable[[Any, Params], Any], eps: Callable[[Params], Any]) -> Entry:
    def run(case: Case, p: Params) -> Produced:
        import foolbox

        x, y = case.tensors()
        _, clipped, success = make(foolbox, p)(case.wrapper("foolbox"), x, y, epsilons=eps(p))
        return Produced(_numpy(clipped), _numpy(success).astype(bool))

    return Entry("foolbox", run)


def _eps(p: Params) -> Any:
    return p["eps"]


def _unbounded(p: Params) -> Any:
    return None


def _linf_params(case: Case, budget: Budget, eps: float | None) -> Params:
    return {"eps": case.spec.eps_linf if eps is None else eps}


def _pgd_params(norm: str) -> Callable[[Case, Budget, float | None], Params]:
    def params(case: Case, budget: Budget, eps: float | None) -> Params:
        if eps is None:
            eps = case.spec.eps_linf if norm == "linf" else case.spec.eps_l2
        steps = budget.pgd_steps
        return {"eps": eps, "steps": steps, "step": PGD_STEP_FACTOR * eps / steps}

    return params


def _apgd_params(case: Case, budget: Budget, eps: float | None) -> Params:
    eps = case.spec.eps_linf if eps is None else eps
    return {"eps": eps, "steps": budget.apgd_steps, "targets": case.n_classes - 1}


def _pgd_args(norm: str, early_stop: bool | None) -> Callable[[Case, Params], dict[str, Any]]:
    def args(case: Case, p: Params) -> dict[str, Any]:
        out = {
            "eps": p["eps"],
            "norm": norm,
            "steps": p["steps"],
            "step_size": p["step"],
            "restarts": 1,
            "random_start": True,
        }
        if early_stop is not None:
            out["early_stop"] = early_stop
        return out

    return args


def _pgd_entries(norm: str) -> tuple[Entry, ...]:
    art_norm: float = np.inf if norm == "linf" else 2
    every = _pgd_args(norm, early_stop=False)
    default = _pgd_args(norm, early_stop=None)
    return (
        mlwarden_entry("pgd", every, label="mlwarden (every step)"),
        mlwarden_entry("pgd", default, label="mlwarden (default)"),
        art_entry(
            lambda clf, case, p: _art("ProjectedGradientDescent")(
                clf,
                norm=art_norm,
                eps=p["eps"],
                eps_step=p["step"],
                decay=None,
                max_iter=p["steps"],
                targeted=False,
                num_random_init=1,
                batch_size=case.n,
                random_eps=False,
                verbose=False,
            )
        ),
        torchattacks_entry(
            lambda ta, case, p: (
                ta.PGD(case.counted, eps=p["eps"], alpha=p["step"], steps=p["steps"])
                if norm == "linf"
                else ta.PGDL2(case.counted, eps=p["eps"], alpha=p["step"], steps=p["steps"])
            )
        ),
        foolbox_entry(
            lambda fb, p: (fb.attacks.LinfPGD if norm == "linf" else fb.attacks.L2PGD)(
                abs_stepsize=p["step"], steps=p["steps"], random_start=True
            ),
            _eps,
        ),
    )


def _art(name: str) -> Any:
    import art.attacks.evasion

    return getattr(art.attacks.evasion, name)


def _apgd_entries(loss: str) -> tuple[Entry, ...]:
    name = "apgd" if loss == "ce" else "apgd_dlr"
    art_loss = "cross_entropy" if loss == "ce" else "difference_logits_ratio"
    return (
        mlwarden_entry(
            name,
            lambda case, p: {"eps": p["eps"], "norm": "linf", "steps": p["steps"], "restarts": 1},
        ),
        art_entry(
            lambda clf, case, p: _art("AutoProjectedGradientDescent")(
                clf,
                norm=np.inf,
                eps=p["eps"],
                eps_step=APGD_FIRST_STEP * p["eps"],
                max_iter=p["steps"],
                targeted=False,
                nb_random_init=1,
                batch_size=case.n,
                loss_type=art_loss,
                verbose=False,
            )
        ),
        torchattacks_entry(
            lambda ta, case, p: ta.APGD(
                case.counted,
                norm="Linf",
                eps=p["eps"],
                steps=p["steps"],
                n_restarts=1,
                seed=seed_of(p),
                loss=loss,
                eot_iter=1,
                rho=0.75,
            )
        ),
    )


def _pixel_budget(case: Case, budget: Budget, eps: float | None) -> Params:
    return {
        "pixels": case.spec.pixels,
        "iterations": budget.pixel_iterations,
        "population": budget.pixel_population,
    }


def _hsj_floor(case: Case, p: Params) -> Floor:
    # the gradient-estimation probes of each iteration: init_evals * sqrt(t), at most max_evals
    probes = sum(
        min(p["init_evals"] * math.sqrt(t), p["max_evals"]) for t in range(1, p["steps"] + 1)
    )
    return Floor(forward=math.ceil(probes))


def _hsj_args(case: Case, p: Params) -> dict[str, Any]:
    peers = [q for q in p.get("peer_queries", []) if math.isfinite(q)]
    # equal queries: never more per sample than the most frugal peer spent
    cap = int(min(peers)) if peers else math.ceil(_hsj_floor(case, p).forward) + 200
    return {
        "eps": None,
        "norm": "l2",
        "steps": p["steps"],
        "init_evals": p["init_evals"],
        "max_evals": p["max_evals"],
        "gamma": p["gamma"],
        "max_queries": max(cap, 1),
    }


def _patch_training(case: Case, p: Params) -> tuple[np.ndarray, np.ndarray]:
    """The first training images not of the patch's class: what both tools train on."""
    keep = case.trained.y_train != p["class"]
    x = np.ascontiguousarray(case.trained.x_train[keep][: p["train"]], np.float32)
    return x, np.ascontiguousarray(case.trained.y_train[keep][: p["train"]], np.int64)


def _art_patch(case: Case, p: Params) -> Produced:
    from art.attacks.evasion.adversarial_patch.adversarial_patch_numpy import (
        AdversarialPatchNumpy,
    )

    class Patch(AdversarialPatchNumpy):
        def reset_patch(self, initial_patch_value: Any) -> None:
            # ART 1.20.1 hands its own check a NumPy float32 (from the float32 clip values),
            # which the check rejects for not being a Python float; the constructor then fails
            if isinstance(initial_patch_value, np.floating):
                initial_patch_value = float(initial_patch_value)
            super().reset_patch(initial_patch_value)

    scale = p["side"] / case.shape[-1]
    x_train, _ = _patch_training(case, p)
    attack = Patch(
        case.wrapper("ART"),
        target=p["class"],
        rotation_max=0.0,
        scale_min=scale,
        scale_max=scale,
        learning_rate=5.0,
        max_iter=p["steps"],
        batch_size=len(x_train),
        targeted=True,
        verbose=False,
    )
    goal = np.eye(case.n_classes, dtype=np.float32)[np.full(len(x_train), p["class"])]
    attack.generate(x=x_train, y=goal)
    return Produced(np.asarray(attack.apply_patch(case.x.copy(), scale=scale)))


def _mlwarden_patch(case: Case, p: Params) -> Produced:
    from mlwarden.attacks.evasion import get_attack
    from mlwarden.attacks.evasion.universal_patch import apply_patch

    _, fn = get_attack("patch")
    x_train, y_train = _patch_training(case, p)
    result = fn(
        case.wrapper("mlwarden"),
        x_train,
        y_train,
        patch_size=p["side"],
        steps=p["steps"],
        target_class=p["class"],
        seed=seed_of(p),
    )
    # evaluated like ART's apply_patch: on the test samples, one random position each
    room = np.array(case.shape[1:]) - p["side"] + 1
    corners = np.random.default_rng(seed_of(p)).integers(0, room, size=(case.n, 2))
    return Produced(apply_patch(case.x, np.asarray(result.artifacts["patch"]), corners))


def rows() -> list[Row]:
    """Every attack row, in the order of the tables."""
    return [
        Row(
            "fgsm",
            "FGSM (Linf)",
            "linf",
            _linf_params,
            lambda case, p: Floor(grad=1),
            (
                mlwarden_entry("fgsm", lambda case, p: {"eps": p["eps"], "norm": "linf"}),
                art_entry(
                    lambda clf, case, p: _art("FastGradientMethod")(
                        clf,
                        norm=np.inf,
                        eps=p["eps"],
                        eps_step=p["eps"],
                        targeted=False,
                        num_random_init=0,
                        batch_size=case.n,
                        minimal=False,
                    )
                ),
                torchattacks_entry(lambda ta, case, p: ta.FGSM(case.counted, eps=p["eps"])),
                foolbox_entry(lambda fb, p: fb.attacks.FGSM(random_start=False), _eps),
            ),
            describe=lambda p: f"eps {p['eps']:g}",
        ),
        Row(
            "pgd-linf",
            "PGD-Linf",
            "linf",
            _pgd_params("linf"),
            lambda case, p: Floor(grad=p["steps"]),
            _pgd_entries("linf"),
            describe=lambda p: f"eps {p['eps']:g}, {p['steps']} steps of {p['step']:.4g}, 1 start",
        ),
        Row(
            "pgd-l2",
            "PGD-L2",
            "l2",
            _pgd_params("l2"),
            lambda case, p: Floor(grad=p["steps"]),
            _pgd_entries("l2"),
            describe=lambda p: f"eps {p['eps']:g}, {p['steps']} steps of {p['step']:.4g}, 1 start",
        ),
        Row(
            "apgd-ce",
            "APGD-CE (Linf)",
            "linf",
            _apgd_params,
            lambda case, p: Floor(grad=p["steps"]),
            _apgd_entries("ce"),
            describe=lambda p: f"eps {p['eps']:g}, {p['steps']} steps, 1 restart",
        ),
        Row(
            "apgd-dlr",
            "APGD-DLR (Linf)",
            "linf",
            _apgd_params,
            lambda case, p: Floor(grad=p["steps"]),
            _apgd_entries("dlr"),
            applies=lambda case: case.n_classes >= 3,
            describe=lambda p: f"eps {p['eps']:g}, {p['steps']} steps, 1 restart",
        ),
        Row(
            "apgd-t",
            "APGD-T (Linf)",
            "linf",
            _apgd_params,
            lambda case, p: Floor(grad=p["steps"] * p["targets"]),
            (
                mlwarden_entry(
                    "apgd_t",
                    lambda case, p: {
                        "eps": p["eps"],
                        "norm": "linf",
                        "steps": p["steps"],
                        "n_target_classes": p["targets"],
                        "restarts": 1,
                    },
                ),
                torchattacks_entry(
                    lambda ta, case, p: ta.APGDT(
                        case.counted,
                        norm="Linf",
                        eps=p["eps"],
                        steps=p["steps"],
                        n_restarts=1,
                        seed=seed_of(p),
                        eot_iter=1,
                        rho=0.75,
                        n_classes=case.n_classes,
                    )
                ),
            ),
            applies=lambda case: case.n_classes >= 4,
            describe=lambda p: f"eps {p['eps']:g}, {p['steps']} steps x {p['targets']} targets",
        ),
        Row(
            "cw-l2",
            "C&W-L2 (minimum norm)",
            "l2",
            lambda case, budget, eps: {
                "eps": None,
                "search": budget.cw_search_steps,
                "steps": budget.cw_steps,
                "lr": CW_LEARNING_RATE,
                "const": CW_INITIAL_CONST,
            },
            lambda case, p: Floor(grad=p["search"] * p["steps"]),
            (
                mlwarden_entry(
                    "cw",
                    lambda case, p: {
                        "eps": None,
                        "binary_search_steps": p["search"],
                        "steps": p["steps"],
                        "learning_rate": p["lr"],
                        "initial_const": p["const"],
                        "confidence": 0.0,
                        "abort_early": True,
                    },
                ),
                art_entry(
                    lambda clf, case, p: _art("CarliniL2Method")(
                        clf,
                        confidence=0.0,
                        targeted=False,
                        learning_rate=p["lr"],
                        binary_search_steps=p["search"],
                        max_iter=p["steps"],
                        initial_const=p["const"],
                        max_halving=5,
                        max_doubling=5,
                        batch_size=case.n,
                        verbose=False,
                    )
                ),
                torchattacks_entry(
                    lambda ta, case, p: ta.CW(
                        case.counted,
                        c=p["const"],
                        kappa=0,
                        steps=p["search"] * p["steps"],
                        lr=p["lr"],
                    )
                ),
                foolbox_entry(
                    lambda fb, p: fb.attacks.L2CarliniWagnerAttack(
                        binary_search_steps=p["search"],
                        steps=p["steps"],
                        stepsize=p["lr"],
                        confidence=0,
                        initial_const=p["const"],
                        abort_early=True,
                    ),
                    _unbounded,
                ),
            ),
            minimum_norm=True,
            describe=lambda p: (
                f"{p['search']} x {p['steps']} steps, lr {p['lr']:g}, c0 {p['const']:g}"
            ),
        ),
        Row(
            "deepfool",
            "DeepFool-L2 (minimum norm)",
            "l2",
            lambda case, budget, eps: {
                "eps": None,
                "steps": budget.deepfool_steps,
                "overshoot": DEEPFOOL_OVERSHOOT,
                "candidates": case.n_classes,
            },
            lambda case, p: Floor(jacobian=p["steps"]),
            (
                mlwarden_entry(
                    "deepfool",
                    lambda case, p: {
                        "eps": None,
                        "steps": p["steps"],
                        "overshoot": p["overshoot"],
                        "candidates": p["candidates"],
                    },
                ),
                art_entry(
                    lambda clf, case, p: _art("DeepFool")(
                        clf,
                        max_iter=p["steps"],
                        epsilon=p["overshoot"],
                        nb_grads=p["candidates"],
                        batch_size=case.n,
                        verbose=False,
                    )
                ),
                torchattacks_entry(
                    lambda ta, case, p: ta.DeepFool(
                        case.counted, steps=p["steps"], overshoot=p["overshoot"]
                    )
                ),
                foolbox_entry(
                    lambda fb, p: fb.attacks.L2DeepFoolAttack(
                        steps=p["steps"],
                        candidates=p["candidates"],
                        overshoot=p["overshoot"],
                        loss="logits",
                    ),
                    _unbounded,
                ),
            ),
            minimum_norm=True,
            describe=lambda p: (
                f"{p['steps']} steps, overshoot {p['overshoot']:g}, {p['candidates']} candidates"
            ),
        ),
        Row(
            "square",
            "Square (Linf, score-based)",
            "linf",
            lambda case, budget, eps: {
                "eps": case.spec.eps_linf if eps is None else eps,
                "queries": budget.square_queries,
                "p_init": SQUARE_P_INIT,
            },
            lambda case, p: Floor(forward=p["queries"]),
            (
                mlwarden_entry(
                    "square",
                    lambda case, p: {
                        "eps": p["eps"],
                        "norm": "linf",
                        "queries": p["queries"],
                        "p_init": p["p_init"],
                    },
                ),
                art_entry(
                    lambda clf, case, p: _art("SquareAttack")(
                        clf,
                        norm=np.inf,
                        eps=p["eps"],
                        max_iter=p["queries"],
                        p_init=p["p_init"],
                        nb_restarts=1,
                        batch_size=case.n,
                        verbose=False,
                    )
                ),
                torchattacks_entry(
                    lambda ta, case, p: ta.Square(
                        case.counted,
                        norm="Linf",
                        eps=p["eps"],
                        n_queries=p["queries"],
                        n_restarts=1,
                        p_init=p["p_init"],
                        loss="margin",
                        resc_schedule=True,
                        seed=seed_of(p),
                    )
                ),
            ),
            describe=lambda p: f"eps {p['eps']:g}, {p['queries']} queries, p_init {p['p_init']:g}",
        ),
        Row(
            "hsj",
            "HopSkipJump-L2 (decision-based, minimum norm)",
            "l2",
            lambda case, budget, eps: {
                "eps": None,
                "steps": budget.hsj_steps,
                "init_evals": HSJ_INIT_EVALS,
                "max_evals": budget.hsj_max_evals,
                "gamma": HSJ_GAMMA,
            },
            _hsj_floor,
            (
                # peers first: mlwarden's query budget is the smallest a peer spent
                art_entry(
                    lambda clf, case, p: _art("HopSkipJump")(
                        clf,
                        batch_size=max(case.n, p["max_evals"]),
                        targeted=False,
                        norm=2,
                        max_iter=p["steps"],
                        max_eval=p["max_evals"],
                        init_eval=p["init_evals"],
                        init_size=100,
                        verbose=False,
                    )
                ),
                foolbox_entry(
                    lambda fb, p: fb.attacks.HopSkipJumpAttack(
                        steps=p["steps"],
                        initial_gradient_eval_steps=p["init_evals"],
                        max_gradient_eval_steps=p["max_evals"],
                        stepsize_search="geometric_progression",
                        gamma=p["gamma"],
                        constraint="l2",
                    ),
                    _unbounded,
                ),
                mlwarden_entry("hopskipjump", _hsj_args),
            ),
            minimum_norm=True,
            describe=lambda p: (
                f"{p['steps']} iterations, {p['init_evals']} to {p['max_evals']} probes per "
                "gradient estimate"
            ),
        ),
        Row(
            "pixel",
            "Few-pixel (differential evolution)",
            "pixels",
            _pixel_budget,
            lambda case, p: Floor(forward=p["population"] * (p["iterations"] + 1)),
            (
                mlwarden_entry(
                    "pixel",
                    lambda case, p: {
                        "pixels": p["pixels"],
                        "generations": p["iterations"],
                        "population": p["population"],
                    },
                ),
                art_entry(
                    lambda clf, case, p: _art("PixelAttack")(
                        clf, th=p["pixels"], es=1, max_iter=p["iterations"], verbose=False
                    )
                ),
                torchattacks_entry(
                    lambda ta, case, p: ta.OnePixel(
                        case.counted,
                        pixels=p["pixels"],
                        steps=p["iterations"],
                        popsize=p["population"],
                        inf_batch=p["population"],
                    )
                ),
            ),
            applies=lambda case: case.spec.pixels > 0,
            describe=lambda p: (
                f"{p['pixels']} pixel(s), {p['iterations']} generations of {p['population']}"
            ),
        ),
        Row(
            "patch",
            "Universal patch (targeted, random positions)",
            "patch",
            lambda case, budget, eps: {
                "eps": case.spec.patch_side,
                "side": case.spec.patch_side,
                "class": case.spec.patch_class,
                "steps": budget.patch_steps,
                "train": budget.patch_train,
            },
            lambda case, p: Floor(grad=p["steps"], on_train=True),
            (
                Entry("mlwarden", _mlwarden_patch, attack="patch"),
                Entry("ART", _art_patch),
            ),
            applies=lambda case: case.spec.patch_side > 0,
            describe=lambda p: (
                f"{p['side']}x{p['side']} px toward class {p['class']}, {p['steps']} steps "
                f"on {p['train']} training images"
            ),
        ),
    ]


ROW_KEYS = (*(row.key for row in rows()), "suite")
SUITE_PEER_ROWS = ("pgd-linf", "apgd-ce", "apgd-dlr", "apgd-t", "square")
"""The single peer attacks whose strongest result the standard suite must match at every eps."""


# -- running and judging -------------------------------------------------------------------------


@dataclass
class Measurement:
    case: str
    row: str
    tool: str
    status: str = "ok"
    """ok, ``not available: ...`` or ``error: ...``."""
    robust_accuracy: float = math.nan
    success_rate: float = math.nan
    median_norm: float = math.nan
    queries: float = math.nan
    """Samples the model was asked about, per attacked sample (forward passes, gradients too)."""
    wall: float = math.nan
    cpu: float = math.nan
    floor: float = math.nan
    """Seconds: the row's floor, the fastest of the runs of passes timed in turns with the
    tools' calls (`run_row`), one per round, as many as the shortest tools' calls."""
    run_floor: float = math.nan
    """Seconds: the fastest runs of passes of each kind anywhere in the whole run, set once it
    is over: the floor of every run before the row floor was timed in turns."""
    single_floor: float = math.nan
    """Seconds at the fastest single pass of each kind: the older, stricter floor."""
    floor_spec: Floor | None = None
    violations: int = 0
    """Samples returned outside the eps ball, the input range, or not finite."""
    false_claims: int | None = None
    """Samples the tool called adversarial that our own forward pass did not (None: no claim)."""
    by_seed: list[tuple[float, float]] = field(default_factory=list)
    """(robust accuracy, median norm) of the call at each seed, `SEED` first; one entry unless
    the run was made with `--seeds`."""
    seed_error: str = ""
    """Why a call at a later seed failed; its means are then not given."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def availability(entry: Entry, peers: dict[str, str]) -> str:
    """'' if the entry can run, else why not."""
    if entry.tool != "mlwarden":
        version = peers.get(entry.tool, "not available")
        return version if version.startswith("not available") else ""
    try:
        from mlwarden.attacks.evasion import get_attack

        get_attack(entry.attack)
    except Exception as exc:
        return f"not available: {type(exc).__name__}: {last_line(str(exc))}"
    return ""


def _reset(case: Case, seed: int = SEED) -> None:
    case.counted.samples = 0
    case.counted.eval()
    case.counted.requires_grad_(True)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    gc.collect()


def run_entry(
    case: Case,
    row: Row,
    entry: Entry,
    p: Params,
    peers: dict[str, str],
    floor: Floor | None,
    *,
    repeat: bool = True,
) -> Measurement:
    """Run one tool's attack, time it, and judge its output ourselves.

    With `repeat`, a call shorter than `REPEAT_BELOW_S` is timed again at once (`REPEATS`
    calls in all); `run_row` passes False and repeats its tools in turns instead.
    """
    m = Measurement(case.key, row.key, entry.name, floor_spec=floor)
    if floor is not None:
        m.floor = m.run_floor = floor_seconds(case, floor)
        m.single_floor = single_floor_seconds(case, floor)
    problem = availability(entry, peers)
    if problem:
        m.status = problem
        return m
    try:
        case.wrapper(entry.tool)
    except Exception as exc:
        m.status = f"error: {type(exc).__name__}: {last_line(str(exc))}"
        return m
    try:
        produced, m.wall, m.cpu = _timed_call(case, entry, p)
        m.queries = case.counted.samples / case.n
        for _ in range(REPEATS - 1 if repeat and m.wall < REPEAT_BELOW_S else 0):
            retime(case, entry, p, m)
    except Exception as exc:
        m.status = f"error: {type(exc).__name__}: {last_line(str(exc))}"
        return m
    judge(case, row, p, produced, m)
    m.by_seed.append((m.robust_accuracy, m.median_norm))
    return m


def retime(case: Case, entry: Entry, p: Params, m: Measurement) -> None:
    """Time one more call of `entry`, keeping the fastest wall and CPU times in `m`."""
    _, wall, cpu = _timed_call(case, entry, p)
    m.wall, m.cpu = min(m.wall, wall), min(m.cpu, cpu)


def _timed_call(case: Case, entry: Entry, p: Params) -> tuple[Produced, float, float]:
    """One attack call from the same seeds: its output, wall and CPU seconds."""
    _reset(case, seed_of(p))
    started, cpu_started = time.perf_counter(), time.process_time()
    with quiet():
        produced = entry.run(case, p)
    return produced, time.perf_counter() - started, time.process_time() - cpu_started


def budget_norms(delta: np.ndarray, norm: str, case: Case) -> np.ndarray:
    """Per-sample size of `delta` ``(n, ...)`` in the row's budget unit."""
    flat = delta.reshape(len(delta), -1)
    if norm == "linf":
        return np.asarray(np.abs(flat).max(axis=1))
    if norm == "l2":
        return np.asarray(np.sqrt((flat**2).sum(axis=1)))
    changed = np.abs(delta.reshape(len(delta), case.shape[0], -1)) > TOLERANCE
    moved = changed.any(axis=1)
    if norm == "pixels":
        return np.asarray(moved.sum(axis=1), dtype=np.float64)
    # patch: the side of the smallest square box holding every changed pixel
    grid = moved.reshape(len(delta), case.shape[1], case.shape[2])
    sides = np.zeros(len(delta))
    for i, mask in enumerate(grid):
        rows_, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if len(rows_):
            sides[i] = max(rows_[-1] - rows_[0] + 1, cols[-1] - cols[0] + 1)
    return sides


def judge(case: Case, row: Row, p: Params, produced: Produced, m: Measurement) -> None:
    """Robust accuracy, success and norms from our own forward pass; budget violations counted."""
    x = case.x.astype(np.float64)
    adv = np.asarray(produced.x_adv, dtype=np.float64)
    if adv.size != x.size:
        m.status = f"error: returned shape {adv.shape} for inputs {x.shape}"
        return
    adv = adv.reshape(x.shape)
    finite = np.isfinite(adv).reshape(case.n, -1).all(axis=1)
    adv = np.where(np.isfinite(adv), adv, x)
    flat = adv.reshape(case.n, -1)
    low, high = RANGE
    in_range = ((flat >= low - TOLERANCE) & (flat <= high + TOLERANCE)).all(axis=1)
    norms = budget_norms(adv - x, row.norm, case)
    eps = p.get("eps")
    inside = np.ones(case.n, dtype=bool)
    if eps is not None:
        inside = norms <= eps * (1 + 1e-5) + TOLERANCE
    valid = finite & in_range & inside
    predictions = case.predict(adv.astype(np.float32))
    if row.norm == "patch":
        eligible = case.clean_correct & (case.y != p["class"])
        hit = predictions == p["class"]
    else:
        eligible = case.clean_correct
        hit = predictions != case.y
    fooled = eligible & hit & valid
    wrong = valid & (predictions != case.y)
    m.violations = int((~valid).sum())
    m.robust_accuracy = float((case.clean_correct & ~wrong).mean())
    m.success_rate = float(fooled.sum() / max(int(eligible.sum()), 1))
    if row.minimum_norm:
        minimal = np.where(fooled, norms, np.inf)[eligible]
        m.median_norm = float(np.median(minimal)) if len(minimal) else math.nan
    elif fooled.any() and row.norm in ("linf", "l2"):
        m.median_norm = float(np.median(budget_norms(adv - x, "l2", case)[fooled]))
    if produced.claimed is not None and len(produced.claimed) == case.n:
        m.false_claims = int((produced.claimed & eligible & ~fooled).sum())


def run_row(
    case: Case, row: Row, budget: Budget, peers: dict[str, str], *, seeds: int = 1
) -> list[Measurement]:
    """Every tool of `row` on `case`, timed and judged at `SEED`; with `seeds` > 1, each tool
    that ran is called once more at each seed from 1 to ``seeds - 1``, untimed, for strength."""
    p = row.params(case, budget, None)
    floor = row.floor(case, p)
    measure_passes(case, floor, budget)
    measure_passes(case, CHECK, budget)
    seconds = floor_seconds(case, floor)
    log(f"[{case.key}] {row.key}: {row.describe(p)}; floor {seconds:.3f} s ({floor.describe()})")
    # the floor takes its turn in every round of calls, first: its fastest try is measured as
    # each tool's fastest call is
    floor_tries = [time_floor_once(case, floor, budget)]
    out = []
    for entry in row.entries:
        m = run_entry(case, row, entry, p, peers, floor, repeat=False)
        if m.ok and entry.tool != "mlwarden":
            p.setdefault("peer_queries", []).append(m.queries)
        log(f"  {entry.name:<22} {_progress_line(m)}")
        out.append(m)
    # short calls again, every tool in turn: a busy moment on the machine then costs each
    # tool one of its calls, not all of one tool's calls
    again = [
        (e, m) for e, m in zip(row.entries, out, strict=True) if m.ok and m.wall < REPEAT_BELOW_S
    ]
    for _ in range(REPEATS - 1 if again else 0):
        floor_tries.append(time_floor_once(case, floor, budget))
        for entry, m in again:
            if not m.ok:
                continue
            try:
                retime(case, entry, p, m)
            except Exception as exc:
                m.status = f"error on a repeated call: {type(exc).__name__}: {last_line(str(exc))}"
    for m in out:
        m.floor = min(floor_tries)
    if again:
        log(
            "  fastest of "
            + ", ".join(f"{m.tool} {m.wall:.3f} s" for _, m in again)
            + f"; floor {min(floor_tries):.3f} s"
        )
    for seed in range(1, seeds):
        for entry, m in zip(row.entries, out, strict=True):
            if m.ok:
                rerun_at_seed(case, row, entry, p, m, seed)
        log(f"  seed {seed}: " + ", ".join(_seed_line(m) for m in out if m.ok))
    return out


def rerun_at_seed(case: Case, row: Row, entry: Entry, p: Params, m: Measurement, seed: int) -> None:
    """Call `entry` once more at `seed` and add its judged strength to `m.by_seed`.

    Only strength is kept: the timings stay those of `SEED`. A call that fails at a seed is
    noted in `m.seed_error` and the tool gets no mean, rather than a mean over fewer seeds than
    the others; its results at `SEED` stand.
    """
    if m.seed_error:
        return
    at_seed = {**p, "seed": seed}
    scratch = Measurement(case.key, row.key, entry.name)
    try:
        produced, _, _ = _timed_call(case, entry, at_seed)
    except Exception as exc:
        m.seed_error = f"seed {seed}: {type(exc).__name__}: {last_line(str(exc))}"
        return
    judge(case, row, at_seed, produced, scratch)
    if not scratch.ok:
        m.seed_error = f"seed {seed}: {scratch.status}"
        return
    m.by_seed.append((scratch.robust_accuracy, scratch.median_norm))


def _seed_line(m: Measurement) -> str:
    if m.seed_error:
        return f"{m.tool} error at {m.seed_error}"
    robust, median = m.by_seed[-1]
    return f"{m.tool} {_pct(robust)} / {_num(median)}"


def _progress_line(m: Measurement) -> str:
    if not m.ok:
        return m.status
    return (
        f"{m.wall:7.2f} s ({m.wall / m.floor:5.2f}x floor), robust {_pct(m.robust_accuracy)}, "
        f"success {_pct(m.success_rate)}, median {_num(m.median_norm)}, "
        f"{m.violations} outside"
    )


# -- the standard suite --------------------------------------------------------------------------


@dataclass
class SuitePoint:
    eps: float
    ours: float = math.nan
    best_peer: float = math.nan
    best_peer_name: str = ""
    autoattack: float = math.nan
    autoattack_wall: float = math.nan
    autoattack_violations: int = 0
    peer_violations: int = 0
    peer_wall: float = 0.0


@dataclass
class SuiteResult:
    case: str
    status: str = "ok"
    wall: float = math.nan
    cpu: float = math.nan
    points: list[SuitePoint] = field(default_factory=list)
    autoattack_status: str = "ok"
    notes: list[str] = field(default_factory=list)


def _spread(values: Sequence[float], count: int) -> list[float]:
    if count >= len(values):
        return list(values)
    picks = np.linspace(0, len(values) - 1, count).round().astype(int)
    return [values[i] for i in sorted(set(picks.tolist()))]


def _autoattack_entry() -> Entry:
    return torchattacks_entry(
        lambda ta, case, p: ta.AutoAttack(
            case.counted,
            norm="Linf",
            eps=p["eps"],
            version="standard",
            n_classes=case.n_classes,
            seed=SEED,
        )
    )


def run_suite(
    case: Case, budget: Budget, peers: dict[str, str], all_rows: list[Row]
) -> SuiteResult:
    """mlwarden's standard suite vs the strongest single peer attack and AutoAttack, per eps."""
    result = SuiteResult(case.key)
    eps_list = _spread(case.spec.suite_eps, budget.suite_eps)
    result.points = [SuitePoint(eps) for eps in eps_list]
    log(f"[{case.key}] suite: eps {', '.join(f'{e:g}' for e in eps_list)}")
    try:
        from mlwarden.evaluate import robustness
    except Exception as exc:
        result.status = f"not available: {type(exc).__name__}: {last_line(str(exc))}"
    else:
        _reset(case)
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            with quiet():
                evaluation = robustness(
                    case.wrapper("mlwarden"),
                    case.x,
                    case.y,
                    norm="linf",
                    eps=eps_list,
                    suite="standard",
                    seed=SEED,
                )
        except Exception as exc:
            result.status = f"error: {type(exc).__name__}: {last_line(str(exc))}"
        else:
            result.wall = time.perf_counter() - started
            result.cpu = time.process_time() - cpu_started
            for point in result.points:
                point.ours = _suite_accuracy(evaluation, point.eps)
            result.notes.append(
                f"{case.spec.title}: mlwarden's standard suite ran "
                + ", ".join(getattr(evaluation, "attacks", []) or ["(attacks not listed)"])
            )
    log(f"  mlwarden standard: {result.status} {_num(result.wall)} s")
    by_key = {row.key: row for row in all_rows}
    for point in result.points:
        for key in SUITE_PEER_ROWS:
            row = by_key[key]
            if not row.applies(case):
                continue
            p = row.params(case, budget, point.eps)
            for entry in row.entries:
                if entry.tool == "mlwarden":
                    continue
                m = run_entry(case, row, entry, p, peers, None)
                if not m.ok:
                    continue
                point.peer_wall += m.wall
                point.peer_violations += m.violations
                if not m.robust_accuracy >= point.best_peer:
                    point.best_peer = m.robust_accuracy
                    point.best_peer_name = f"{entry.name} {row.title.split(' ')[0]}"
        auto = Row("autoattack", "AutoAttack", "linf", _linf_params, lambda c, p: Floor(), ())
        m = run_entry(case, auto, _autoattack_entry(), {"eps": point.eps}, peers, None)
        if m.ok:
            point.autoattack = m.robust_accuracy
            point.autoattack_wall = m.wall
            point.autoattack_violations = m.violations
        else:
            result.autoattack_status = m.status
        log(
            f"  eps {point.eps:g}: mlwarden {_pct(point.ours)}, best single peer "
            f"{_pct(point.best_peer)} ({point.best_peer_name}), AutoAttack {_pct(point.autoattack)}"
        )
    return result


def _suite_accuracy(evaluation: Any, eps: float) -> float:
    table = getattr(evaluation, "robust_accuracy", {})
    for key, value in table.items():
        if math.isclose(float(key), eps, rel_tol=1e-9, abs_tol=1e-12):
            return float(value)
    return math.nan


# -- the report ----------------------------------------------------------------------------------


def _pct(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{100 * value:.1f}%"


def _num(value: float, digits: int = 3) -> str:
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞"
    return f"{value:.{digits}g}"


def _ratio(value: float, floor: float) -> str:
    return (
        "—"
        if not (math.isfinite(value) and math.isfinite(floor) and floor > 0)
        else (f"{value / floor:.2f}x")
    )


def _ratios(m: Measurement) -> str:
    return f"{_ratio(m.wall, m.floor)} wall / {_ratio(m.cpu, m.floor)} CPU"


def case_table(
    case: Case, measured: list[Measurement], table_rows: list[Row], budget: Budget
) -> str:
    lines = [
        f"## {case.spec.title}",
        "",
        f"{case.n} test samples, clean accuracy {_pct(float(case.clean_correct.mean()))}; "
        f"inputs {case.shape} in [0, 1].",
        "",
        "| attack | tool | robust acc | success | median L2 | queries/sample | wall s | CPU s "
        "| wall / floor | CPU / floor | outside budget | false claims |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table_rows:
        ms = [m for m in measured if m.row == row.key and m.case == case.key]
        if not ms:
            continue
        p = row.params(case, budget, None)
        floor, run_floor = ms[0].floor, ms[0].run_floor
        head = (
            f"**{row.title}**<br>{row.describe(p)}<br>floor {_num(floor)} s"
            f"<br>(fastest in the run {_num(run_floor)} s)"
        )
        for i, m in enumerate(ms):
            first = head if i == 0 else ""
            if not m.ok:
                lines.append(f"| {first} | {m.tool} | {m.status} | | | | | | | | | |")
                continue
            claims = "—" if m.false_claims is None else str(m.false_claims)
            lines.append(
                f"| {first} | {m.tool} | {_pct(m.robust_accuracy)} | {_pct(m.success_rate)} "
                f"| {_num(m.median_norm)} | {m.queries:.0f} | {m.wall:.2f} | {m.cpu:.2f} "
                f"| {_ratio(m.wall, m.floor)} | {_ratio(m.cpu, m.floor)} | {m.violations} "
                f"| {claims} |"
            )
    return "\n".join(lines)


def seed_values(m: Measurement) -> tuple[list[float], list[float]]:
    """Robust accuracy at each of `m`'s seeds, and its finite median norms (a seed that fooled
    nothing has none)."""
    return [r for r, _ in m.by_seed], [d for _, d in m.by_seed if math.isfinite(d)]


def seed_mean(m: Measurement) -> tuple[float, float]:
    """Mean robust accuracy and mean median norm of `m` over its seeds (NaN medians skipped)."""
    robust, medians = seed_values(m)
    mean_median = float(np.mean(medians)) if medians else math.nan
    return float(np.mean(robust)) if robust else math.nan, mean_median


def _or_inf(value: float) -> float:
    """`value`, or infinity when it is NaN (a tool that fooled nothing has no median norm)."""
    return value if math.isfinite(value) else math.inf


def seeds_table(case: Case, measured: list[Measurement], table_rows: list[Row], seeds: int) -> str:
    """Strength at each of `seeds` seeds: mean, lowest and highest per tool; '' for one seed."""
    ms = [m for m in measured if m.case == case.key and (len(m.by_seed) > 1 or m.seed_error)]
    if seeds < 2 or not ms:
        return ""
    lines = [
        f"### {case.spec.title}: strength over seeds",
        "",
        "Each tool called once more "
        + (f"at each seed from 1 to {seeds - 1}" if seeds > 2 else "at seed 1")
        + f" (seed {SEED} is the call in the table above), untimed. Robust accuracy: lower is "
        "stronger; median L2 (minimum-norm attacks): smaller is stronger.",
        "",
        "| attack | tool | seeds | mean robust acc | lowest | highest | mean median L2 "
        "| smallest | largest |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table_rows:
        first = True
        for m in (m for m in ms if m.row == row.key):
            if m.seed_error:
                title = f"**{row.title}**" if first else ""
                lines.append(f"| {title} | {m.tool} | error at {m.seed_error} | | | | | | |")
                first = False
                continue
            robust, medians = seed_values(m)
            mean_robust, mean_median = seed_mean(m)
            low_median = _num(min(medians)) if medians else "—"
            high_median = _num(max(medians)) if medians else "—"
            lines.append(
                f"| {f'**{row.title}**' if first else ''} | {m.tool} | {len(m.by_seed)} "
                f"| {_pct(mean_robust)} | {_pct(min(robust))} | {_pct(max(robust))} "
                f"| {_num(mean_median)} | {low_median} | {high_median} |"
            )
            first = False
    return "\n".join(lines)


def suite_table(cases: dict[str, Case], suites: list[SuiteResult]) -> str:
    lines = [
        "## Standard suite vs the strongest single peer attack (Linf)",
        "",
        "Robust accuracy (lower is a stronger evaluation). The best single peer attack is the "
        "lowest robust accuracy any one peer attack (PGD, APGD-CE, APGD-DLR, APGD-T, Square, "
        "from every peer that has it) reached at that eps, each verified by our forward pass.",
        "",
        "| model | eps | mlwarden standard | best single peer attack | torchattacks AutoAttack "
        "| mlwarden suite wall s | AutoAttack wall s | all single peer attacks wall s "
        "| peer outputs outside budget |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for suite in suites:
        title = cases[suite.case].spec.title
        for i, point in enumerate(suite.points):
            ours = _pct(point.ours) if suite.status == "ok" else suite.status if i == 0 else ""
            wall = _num(suite.wall) if i == 0 else ""
            auto = _pct(point.autoattack) if math.isfinite(point.autoattack) else "—"
            lines.append(
                f"| {title if i == 0 else ''} | {point.eps:g} | {ours} "
                f"| {_pct(point.best_peer)} ({point.best_peer_name}) | {auto} | {wall} "
                f"| {_num(point.autoattack_wall)} | {point.peer_wall:.1f} "
                f"| {point.peer_violations + point.autoattack_violations} |"
            )
    notes = [note for suite in suites for note in suite.notes]
    notes += [
        f"{cases[suite.case].spec.title}: AutoAttack {suite.autoattack_status}"
        for suite in suites
        if suite.autoattack_status != "ok"
    ]
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    return "\n".join(lines)


def findings(
    cases: dict[str, Case],
    measured: list[Measurement],
    table_rows: list[Row],
    suites: list[SuiteResult],
) -> str:
    """The 'what this shows' paragraph, computed from the numbers of this run."""
    faster, slower, stronger, weaker, missing = [], [], [], [], []
    seeded_stronger, seeded_weaker = [], []
    checked_notes = []
    floor_notes = []
    for key, case in cases.items():
        for row in table_rows:
            ms = [m for m in measured if m.case == key and m.row == row.key]
            ours = [m for m in ms if m.tool.startswith("mlwarden")]
            peers = [m for m in ms if not m.tool.startswith("mlwarden") and m.ok]
            if ours and not any(m.ok for m in ours):
                missing.append(f"{row.title} ({case.key}): {ours[0].status}")
                continue
            if not ours or not peers:
                continue
            mine = min((m for m in ours if m.ok), key=lambda m: m.wall)
            fastest = min(peers, key=lambda m: m.wall)
            speed = f"{row.key} on {key}: {mine.wall:.2f} s vs {fastest.tool} {fastest.wall:.2f} s"
            (faster if mine.wall < fastest.wall else slower).append(speed)
            if mine.wall >= fastest.wall and fastest.false_claims is None:
                checked = fastest.wall + check_seconds(case)
                checked_notes.append(
                    f"{row.key} on {key}: mlwarden {_ratio(mine.wall, mine.floor)}, "
                    f"{fastest.tool} {_ratio(fastest.wall, fastest.floor)} and "
                    f"{_ratio(checked, fastest.floor)} with the check"
                    + (" (mlwarden faster)" if mine.wall < checked else "")
                )
            if row.minimum_norm:
                best = min(peers, key=lambda m: (m.median_norm, m.robust_accuracy))
                text = (
                    f"{row.key} on {key}: median L2 {_num(mine.median_norm, 4)} vs "
                    f"{best.tool} {_num(best.median_norm, 4)}"
                )
                (stronger if mine.median_norm <= best.median_norm else weaker).append(text)
            else:
                best = min(peers, key=lambda m: m.robust_accuracy)
                text = (
                    f"{row.key} on {key}: robust {_pct(mine.robust_accuracy)} vs "
                    f"{best.tool} {_pct(best.robust_accuracy)}"
                )
                (stronger if mine.robust_accuracy <= best.robust_accuracy else weaker).append(text)
            seeded = [
                m for m in [*ours, *peers] if m.ok and len(m.by_seed) > 1 and not m.seed_error
            ]
            if mine in seeded and len(seeded) > 1:
                metric = 1 if row.minimum_norm else 0
                best_seeded = min(
                    (m for m in seeded if not m.tool.startswith("mlwarden")),
                    key=lambda m: _or_inf(seed_mean(m)[metric]),
                    default=None,
                )
                if best_seeded is not None:
                    ours_mean, theirs_mean = seed_mean(mine)[metric], seed_mean(best_seeded)[metric]
                    shown = _num if row.minimum_norm else _pct
                    text = (
                        f"{row.key} on {key}: {shown(ours_mean)} vs {best_seeded.tool} "
                        f"{shown(theirs_mean)} over {len(mine.by_seed)} seeds"
                    )
                    held = ours_mean <= theirs_mean + 1e-12
                    (seeded_stronger if held else seeded_weaker).append(text)
            if row.key.startswith("pgd"):
                every = next((m for m in ours if "every" in m.tool and m.ok), None)
                default = next((m for m in ours if "default" in m.tool and m.ok), None)
                peer_ratios = ", ".join(f"{m.tool} {_ratios(m)}" for m in peers)
                every_ratio = _ratios(every) if every else "—"
                default_ratio = _ratios(default) if default else "—"
                timed = ([every] if every else []) + peers
                run_wide = ", ".join(f"{m.tool} {_ratio(m.wall, m.run_floor)}" for m in timed)
                strict = ", ".join(f"{m.tool} {_ratio(m.wall, m.single_floor)}" for m in timed)
                floor_notes.append(
                    f"{row.title} on {key}: mlwarden every step {every_ratio}, default "
                    f"{default_ratio} ({peer_ratios}; wall against the fastest run of passes "
                    f"anywhere in the run: {run_wide}; against steps x the fastest single "
                    f"pass: {strict})"
                )
    outside = {}
    claims = {}
    for m in measured:
        if m.ok and m.violations:
            outside.setdefault(m.tool, []).append(f"{m.row}/{m.case} {m.violations}")
        if m.ok and m.false_claims:
            claims.setdefault(m.tool, []).append(f"{m.row}/{m.case} {m.false_claims}")
    lines = ["## What this shows", ""]
    total = len(faster) + len(slower)
    if total:
        lines.append(
            f"- **Speed**: mlwarden was faster than the fastest peer in {len(faster)} of {total} "
            "attack/model pairs that both ran."
            + (f" Slower in: {'; '.join(slower)}." if slower else "")
        )
    if checked_notes:
        lines.append(
            "- **Counting the success check**: mlwarden and foolbox verify their result with "
            "one forward pass inside the call; where the faster peer does not, its user needs "
            "that pass to learn which samples were fooled (wall / floor): "
            + "; ".join(checked_notes)
            + "."
        )
    if floor_notes:
        lines.append("- **PGD against the floor** (time / floor): " + "; ".join(floor_notes) + ".")
    count = len(stronger) + len(weaker)
    if count:
        lines.append(
            f"- **Strength**: mlwarden was at least as strong as the strongest peer (robust "
            f"accuracy no higher, or median minimal L2 no larger) in {len(stronger)} of {count} "
            "pairs." + (f" Weaker in: {'; '.join(weaker)}." if weaker else "")
        )
    seeded_count = len(seeded_stronger) + len(seeded_weaker)
    if seeded_count:
        lines.append(
            f"- **Strength, mean over seeds** (`--seeds`): mlwarden's mean no weaker than the "
            f"strongest peer's mean in {len(seeded_stronger)} of {seeded_count} pairs."
            + (f" Weaker in: {'; '.join(seeded_weaker)}." if seeded_weaker else "")
            + (f" Held in: {'; '.join(seeded_stronger)}." if seeded_stronger else "")
        )
    suite_ok = [(s, p) for s in suites for p in s.points if math.isfinite(p.ours)]
    if suite_ok:
        held = [
            (s, p)
            for s, p in suite_ok
            if not math.isfinite(p.best_peer) or p.ours <= p.best_peer + 1e-12
        ]
        failed = [f"{s.case} eps {p.eps:g}" for s, p in suite_ok if (s, p) not in held]
        timed = [s for s in suites if math.isfinite(s.wall)]
        ours_wall = sum(s.wall for s in timed)
        auto_wall = sum(
            p.autoattack_wall for s in timed for p in s.points if math.isfinite(p.autoattack_wall)
        )
        lines.append(
            f"- **Standard suite**: robust accuracy no higher than the strongest single peer "
            f"attack at {len(held)} of {len(suite_ok)} (model, eps) points."
            + (f" Higher at: {', '.join(failed)}." if failed else "")
            + f" It took {ours_wall:.1f} s in all, torchattacks' AutoAttack {auto_wall:.1f} s "
            "over the same models and eps."
        )
    elif suites:
        lines.append(f"- **Standard suite**: not measured ({suites[0].status}).")
    if outside:
        lines.append(
            "- **Honesty**: outputs outside the eps ball or the input range: "
            + "; ".join(f"{tool}: {', '.join(where)}" for tool, where in outside.items())
            + "."
        )
    else:
        lines.append("- **Honesty**: no tool returned an output outside its eps ball or [0, 1].")
    if claims:
        lines.append(
            "- **Claims that did not hold** under our own forward pass: "
            + "; ".join(f"{tool}: {', '.join(where)}" for tool, where in claims.items())
            + "."
        )
    errors = sorted(
        {f"{m.tool} {m.row}/{m.case}: {m.status}" for m in measured if m.status.startswith("error")}
    )
    if errors:
        lines.append("- **Errors**: " + "; ".join(errors) + ".")
    if missing:
        lines.append("- **Not yet measured for mlwarden**: " + "; ".join(missing) + ".")
    return "\n".join(lines)


def header(peers: dict[str, str], budget: Budget, quick: bool, elapsed: float) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in peers.items())
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        versions += f", eagerpy {importlib.metadata.version('eagerpy')}"
    return "\n".join(
        [
            "# Evasion benchmark results",
            "",
            f"Run {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} by "
            "`benchmarks/evasion/run.py`"
            + (" `--quick` (smoke run, not a result)" if quick else "")
            + f"; total {elapsed / 60:.1f} min.",
            "",
            f"- Machine: {platform.platform()}, {os.cpu_count()} cores, torch "
            f"{torch.__version__} with {torch.get_num_threads()} threads, Python "
            f"{platform.python_version()}.",
            f"- mlwarden {importlib.metadata.version('mlwarden')} from this checkout; peers: "
            f"{versions}.",
            f"- Budget: {budget}.",
            "- glibc keeps freed memory (`STEADY_MALLOC`), for every tool and the floor alike. "
            f"Calls shorter than {REPEAT_BELOW_S:g} s are made {REPEATS} times for every "
            "tool alike, the tools taking turns, and the fastest time is kept; longer calls "
            f"are made once. The floor takes a turn in every round of a row's calls, first: "
            f"one run of up to {FLOOR_RUN} passes one after another (scaled to the row's "
            "count), the fastest kept; the fastest such run anywhere in the benchmark is given "
            "beside it. No other warm-up beyond "
            "importing every tool's attack modules and building each tool's model wrapper "
            "before timing. "
            "Robust accuracy, success and norms come from our own forward pass on each tool's "
            "output; an output outside the budget or [0, 1] never counts as fooled. See README.md "
            "for what each column means and how parameters were matched.",
        ]
    )


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few samples and steps: a smoke run")
    parser.add_argument(
        "--only", default="", help=f"comma-separated rows to run, from: {', '.join(ROW_KEYS)}"
    )
    parser.add_argument(
        "--models", default="", help=f"comma-separated models, from: {', '.join(CASE_SPECS)}"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help="where to write results")
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="call every tool of every row at this many seeds (0 to N-1) and report the mean "
        "strength too; timings stay those of seed 0 (default 1)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads for torch and NumPy's BLAS (default 1; 0 leaves the libraries' defaults)",
    )
    parser.add_argument(
        "--no-setup",
        action="store_true",
        help="run in this interpreter, without installing or switching to .venv-bench/evasion",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    for option, known in (("only", ROW_KEYS), ("models", tuple(CASE_SPECS))):
        chosen = [v for v in getattr(args, option).split(",") if v]
        unknown = sorted(set(chosen) - set(known))
        if unknown:
            parser.error(
                f"--{option}: unknown {', '.join(unknown)}; choose from {', '.join(known)}"
            )
        setattr(args, option, chosen or list(known))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.no_setup:
        ENV.enter(str(Path(__file__).resolve()), env=STEADY_MALLOC)
    logging.getLogger("art").setLevel(logging.ERROR)
    if args.threads > 0:
        # one thread by default: OpenMP workers spin while another process holds a core, which
        # makes multi-threaded timings of such small models depend on whatever else runs
        torch.set_num_threads(args.threads)
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.threads)
    budget = QUICK if args.quick else FULL
    started = time.perf_counter()
    peers = ENV.status()  # imports every peer's attack package before any timing
    log("peers: " + ", ".join(f"{name} {version}" for name, version in peers.items()))
    warm_mlwarden_imports()
    all_rows = rows()
    table_rows = [row for row in all_rows if row.key in args.only]
    cases: dict[str, Case] = {}
    measured: list[Measurement] = []
    suites: list[SuiteResult] = []
    for key in args.models:
        case = cases[key] = build_case(key, budget)
        for row in table_rows:
            if row.applies(case):
                measured += run_row(case, row, budget, peers, seeds=args.seeds)
        if "suite" in args.only:
            suites.append(run_suite(case, budget, peers, all_rows))
    for m in measured:
        if m.floor_spec is not None:
            m.run_floor = floor_seconds(cases[m.case], m.floor_spec)
            m.single_floor = single_floor_seconds(cases[m.case], m.floor_spec)
    elapsed = time.perf_counter() - started
    parts = [header(peers, budget, args.quick, elapsed)]
    for case in cases.values():
        parts.append(case_table(case, measured, table_rows, budget))
        seeded = seeds_table(case, measured, table_rows, args.seeds)
        if seeded:
            parts.append(seeded)
    if suites:
        parts.append(suite_table(cases, suites))
    parts.append(findings(cases, measured, table_rows, suites))
    text = "\n\n".join(parts) + "\n"
    print(text)
    args.out.write_text(text)
    log(f"wrote {args.out} ({elapsed / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
