"""`invert`: reconstruct what a model has learned each class looks like, and measure it.

Validates once, picks the method (MI-Face for white-box targets, the query-only search
otherwise), runs it, then asks the target once more about every reconstruction (unmetered, like
the evasion runner's verification) and, given reference data, measures how close each
reconstruction comes to its class and to the nearest individual record. Not for: the searches
themselves (`mi_face`, `zeroth_order`).
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mlwarden.attacks.inversion.base import (
    METHOD_MODULES,
    Cost,
    InversionProblem,
    InversionResult,
    InversionSearch,
    Method,
    Reconstruction,
    SearchFn,
)
from mlwarden.errors import InputError, UsageError

if TYPE_CHECKING:
    from mlwarden.audit.runner import ProgressFn
    from mlwarden.targets.base import Target

DEFAULT_STEPS: dict[Method, int] = {"mi-face": 300, "black-box": 200}
DEFAULT_LR: dict[Method, float] = {"mi-face": 0.02, "black-box": 0.05}
DEFAULT_BLACK_BOX_QUERIES = 5000
"""Samples per class the black-box search may spend unless told otherwise."""
DEFAULT_SIGMA_FRACTION = 0.05
"""The black-box finite-difference radius, as a fraction of the input range."""


def invert(
    target: Any,
    classes: Sequence[int] | int | None = None,
    *,
    method: Literal["auto", "mi-face", "black-box"] = "auto",
    steps: int | None = None,
    lr: float | None = None,
    cost: Cost = "log",
    tv_weight: float = 0.05,
    l2_weight: float = 0.05,
    patience: int = 30,
    tolerance: float = 1e-4,
    max_queries: int | None = None,
    samples: int = 16,
    sigma: float | None = None,
    seed: int = 0,
    reference: tuple[np.ndarray, np.ndarray] | None = None,
    progress: ProgressFn | None = None,
) -> InversionResult:
    """Reconstruct a representative input of each class from the model alone.

    Args:
        target: a `Target` or anything `mlwarden.targets.target` wraps. It must return
            probabilities; label-only targets are refused (nothing to climb).
        classes: class indices to reconstruct (one int or several); None for every class.
        method: ``mi-face`` (gradients; white-box targets only), ``black-box`` (queries only)
            or ``auto`` (MI-Face when the target is white-box, else black-box).
        steps: maximum optimisation steps per class (default 300 MI-Face, 200 black-box).
        lr: Adam step size in input units (default 0.02 MI-Face, 0.05 black-box).
        cost: ``log`` (-log p, the default) or ``probability`` (1 - p, the paper's cost).
        tv_weight: weight of the total-variation prior for image-shaped inputs (>= 0).
        l2_weight: weight of the prior keeping inputs near the neutral start (>= 0).
        patience: a class stops after this many steps without improving by `tolerance`.
        tolerance: relative improvement that counts as progress (>= 0).
        max_queries: samples the target may answer per class, gradient passes included;
            None: unlimited for MI-Face, 5000 for black-box.
        samples: black-box only: antithetic direction pairs per gradient estimate
            (each step costs ``2 * samples + 1`` queries per class).
        sigma: black-box only: finite-difference radius in input units (default 5% of the
            input range).
        seed: seeds every random choice.
        reference: ``(x, y)`` records from the training distribution: the search starts from
            their mean instead of the middle of the input range, and each reconstruction is
            measured against its class mean and nearest record.
        progress: ``progress("inversion", step, steps)`` callback.

    The target's query budget stops the search cleanly: the result holds the best inputs found
    so far, with a note.
    """
    from mlwarden.targets import target as as_target

    started = time.perf_counter()
    target = as_target(target)
    chosen = _choose_method(method, target)
    labels = _checked_classes(classes, target.n_classes)
    ref = _checked_reference(reference, target)
    directions = _count(samples, "samples")
    problem = InversionProblem(
        target=target,
        classes=labels,
        start=_neutral_start(target, ref),
        steps=_count(DEFAULT_STEPS[chosen] if steps is None else steps, "steps"),
        lr=_positive(DEFAULT_LR[chosen] if lr is None else lr, "lr"),
        cost=_checked_cost(cost),
        tv_weight=_positive(tv_weight, "tv_weight", allow_zero=True),
        l2_weight=_positive(l2_weight, "l2_weight", allow_zero=True),
        patience=_count(patience, "patience"),
        tolerance=_positive(tolerance, "tolerance", allow_zero=True),
        max_queries=_budget(max_queries, chosen, directions),
        samples=directions,
        sigma=_positive(
            DEFAULT_SIGMA_FRACTION * (target.input_range[1] - target.input_range[0])
            if sigma is None
            else sigma,
            "sigma",
        ),
        seed=int(seed),
        progress=progress,
    )
    queries_before = target.queries
    search: SearchFn = importlib.import_module(METHOD_MODULES[chosen]).search
    found = search(problem)
    queries = target.queries - queries_before
    reconstructions = _measure(target, labels, found, ref)
    notes = list(found.notes)
    if ref is not None:
        missing = sorted({int(c) for c in labels} - {int(c) for c in np.unique(ref[1])})
        if missing:
            notes.append(
                f"the reference data has no record of class(es) {missing}: no distances for them"
            )
    return InversionResult(
        reconstructions=reconstructions,
        method=chosen,
        queries=queries,
        seconds=time.perf_counter() - started,
        start=problem.start,
        interrupted=found.interrupted,
        notes=notes,
    )


# -- validation -------------------------------------------------------------------------------


def _choose_method(method: str, target: Target) -> Method:
    if target.output == "labels":
        raise UsageError(
            f"{target.name} returns labels only; model inversion climbs the model's confidence "
            "and a label-only answer has none to climb (that is the protection a label-only "
            "output gives); invert the model behind it, or measure membership with the "
            "label-only attack"
        )
    if method == "auto":
        return "mi-face" if target.white_box else "black-box"
    if method == "mi-face":
        if not target.white_box:
            raise UsageError(
                f"mi-face needs gradients; {target.name} is a black-box target. Use "
                "method='black-box' (or 'auto'), or give the PyTorch model itself"
            )
        return "mi-face"
    if method == "black-box":
        return "black-box"
    raise InputError(f"method must be auto, mi-face or black-box; got {method!r}")


def _checked_classes(classes: Sequence[int] | int | None, n_classes: int) -> np.ndarray:
    if classes is None:
        return np.arange(n_classes, dtype=np.int64)
    wanted = [classes] if isinstance(classes, (int, np.integer)) else list(classes)
    if not wanted:
        raise InputError("classes is empty; name at least one class, or None for all")
    for value in wanted:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InputError(f"classes must be class indices (ints), got {value!r}")
        if not 0 <= int(value) < n_classes:
            raise InputError(
                f"class {int(value)} does not exist: the target has classes 0 to {n_classes - 1}"
            )
    return np.asarray(list(dict.fromkeys(int(v) for v in wanted)), dtype=np.int64)


def _checked_reference(
    reference: tuple[np.ndarray, np.ndarray] | None, target: Target
) -> tuple[np.ndarray, np.ndarray] | None:
    if reference is None:
        return None
    if not (isinstance(reference, tuple) and len(reference) == 2):
        raise InputError("reference must be a pair (x, y) of records and their labels")
    from mlwarden.targets.base import validate_batch, validate_labels

    x = validate_batch(target, np.asarray(reference[0]), what="reference records")
    y = validate_labels(np.asarray(reference[1]), len(x), target.n_classes, "reference labels")
    return x, y


def _neutral_start(target: Target, ref: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    if ref is not None:
        return np.asarray(ref[0].mean(axis=0), dtype=np.float32)
    middle = 0.5 * (target.input_range[0] + target.input_range[1])
    return np.full(target.input_shape, middle, dtype=np.float32)


def _count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def _positive(value: float, name: str, *, allow_zero: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise InputError(
            f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}"
        )
    return number


def _checked_cost(cost: str) -> Cost:
    if cost == "log":
        return "log"
    if cost == "probability":
        return "probability"
    raise InputError(f"cost must be log or probability; got {cost!r}")


def _budget(max_queries: int | None, method: Method, samples: int) -> int | None:
    if max_queries is None:
        return DEFAULT_BLACK_BOX_QUERIES if method == "black-box" else None
    cap = _count(max_queries, "max_queries")
    per_step = 2 * samples + 1 if method == "black-box" else 1
    if cap < per_step:
        raise InputError(
            f"max_queries={cap} cannot pay for one step ({per_step} samples per class with "
            f"samples={samples}); raise max_queries or lower samples"
        )
    return cap


# -- measuring the reconstructions -----------------------------------------------------------


def _measure(
    target: Target,
    labels: np.ndarray,
    found: InversionSearch,
    ref: tuple[np.ndarray, np.ndarray] | None,
) -> list[Reconstruction]:
    with target.unmetered():
        probs = target.predict_proba(found.images)
    geometry = _Geometry(ref) if ref is not None else None
    out: list[Reconstruction] = []
    for i, label in enumerate(int(c) for c in labels):
        image = found.images[i]
        far = geometry.distances(image, label) if geometry is not None else _Distances()
        out.append(
            Reconstruction(
                label=label,
                image=image,
                confidence=float(probs[i, label]),
                predicted=int(probs[i].argmax()),
                distance_to_class_mean=far.class_mean,
                distance_to_other_means=far.other_means,
                baseline_distance=far.baseline,
                nearest_class=far.nearest_class,
                distance_to_nearest_record=far.nearest_record_distance,
                nearest_record=far.nearest_record,
                steps=int(found.steps[i]),
                queries=int(found.queries[i]),
            )
        )
    return out


@dataclass(frozen=True)
class _Distances:
    class_mean: float | None = None
    other_means: float | None = None
    baseline: float | None = None
    nearest_class: int | None = None
    nearest_record_distance: float | None = None
    nearest_record: int | None = None


class _Geometry:
    """Class means of the reference data and the distances a reconstruction is judged by."""

    def __init__(self, ref: tuple[np.ndarray, np.ndarray]) -> None:
        x, y = ref
        self.flat = x.reshape(len(x), -1).astype(np.float64)
        self.labels = y
        self.means = {int(c): self.flat[y == c].mean(axis=0) for c in np.unique(y)}
        self.overall = self.flat.mean(axis=0)

    def distances(self, image: np.ndarray, label: int) -> _Distances:
        if label not in self.means:
            return _Distances()
        point = image.reshape(-1).astype(np.float64)
        to_mean = {c: float(np.linalg.norm(point - m)) for c, m in self.means.items()}
        others = [d for c, d in to_mean.items() if c != label]
        members = np.flatnonzero(self.labels == label)
        to_records = np.linalg.norm(self.flat[members] - point, axis=1)
        nearest = int(to_records.argmin())
        return _Distances(
            class_mean=to_mean[label],
            other_means=float(np.mean(others)) if others else None,
            baseline=float(np.linalg.norm(self.overall - self.means[label])),
            nearest_class=min(to_mean, key=lambda c: to_mean[c]),
            nearest_record_distance=float(to_records[nearest]),
            nearest_record=int(members[nearest]),
        )
