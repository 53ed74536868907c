"""`mlwarden.attacks.membership.audit`: run membership inference attacks and measure them.

One call validates the data once, queries the target once for its outputs on the candidates,
trains the reference models once (if any attack needs them), runs every requested attack and
evaluates each the same way: ROC, AUC, TPR at 1% and 0.1% FPR, advantage, an empirical epsilon
lower bound and the most exposed records. Not for: the attacks (one module each), training
(`reference`), metrics (`metrics`).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlwarden.attacks.membership.base import (
    AttackOutcome,
    MembershipContext,
    ReferenceMode,
    ReferenceSet,
    get_attack,
)
from mlwarden.errors import InputError, UsageError

if TYPE_CHECKING:
    from mlwarden.audit.runner import ProgressFn
    from mlwarden.targets.base import Target

Data = tuple[np.ndarray, np.ndarray]

SCORE_ATTACKS = ("loss", "confidence", "entropy", "modified-entropy")
"""Attacks that need only the target's probabilities."""
REFERENCE_ATTACKS = ("shadow", "lira-offline", "rmia")
"""Attacks that need reference models trained without the candidates."""
DEFAULT_FPR_LEVELS = (0.01, 0.001)


@dataclass
class MembershipAudit:
    """Every attack's outcome, and what the audit was run on."""

    outcomes: dict[str, AttackOutcome]
    n_members: int
    n_non_members: int
    n_population: int
    n_reference: int
    reference_mode: ReferenceMode | None
    member_accuracy: float | None
    """The target's accuracy on the members (its training data); None for label errors."""
    non_member_accuracy: float | None
    reference_seconds: float = 0.0
    reference_cached: int = 0
    notes: list[str] = field(default_factory=list)

    def best(self, fpr: float = 0.001) -> AttackOutcome:
        """The attack with the highest TPR at `fpr` (ties: higher AUC)."""
        if not self.outcomes:
            raise UsageError("the audit ran no attack")
        return max(self.outcomes.values(), key=lambda o: (o.tpr_at_fpr.get(fpr, 0.0), o.auc))


def audit(
    target: Any,
    *,
    members: Data,
    non_members: Data,
    population: Data | None = None,
    train_fn: Any = None,
    attacks: Sequence[str] | None = None,
    n_reference: int = 8,
    reference_mode: ReferenceMode | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    fpr_levels: Sequence[float] = DEFAULT_FPR_LEVELS,
    confidence: float = 0.95,
    delta: float = 0.0,
    n_exposed: int = 10,
    cache_dir: str | os.PathLike[str] | None = None,
    n_jobs: int = 1,
    dask: Any = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> MembershipAudit:
    """Measure how much `target` leaks about membership in its training data.

    `target`: a `Target` or anything `mlwarden.targets.target` wraps. `members`: records the
    model was trained on, `non_members`: records it never saw (same distribution), both
    ``(x, y)`` with x in the target's input units and y class indices. `population`: more
    records from the distribution, disjoint from both, used to train reference models.
    `train_fn`: how to train a reference model: ``train_fn(x, y, seed) -> model``, a
    scikit-learn estimator (cloned) or a `mlwarden.attacks.membership.reference.TorchTrainer`.
    `attacks`: names (see `attack_names()`); default: every attack the inputs allow.
    `n_reference`: reference models (>= 1; >= 4 for ``lira-online``). `reference_mode`:
    ``online`` or ``offline`` (default: online when ``lira-online`` is asked for).
    `params`: per-attack options. `fpr_levels`: FPRs the TPR is reported at, in (0, 1).
    `confidence`: of the epsilon interval, in (0, 1). `delta`: of the (epsilon, delta) bound,
    in [0, 1). `cache_dir`: reference-model outputs are kept there and reused (resume).
    `n_jobs`: parallel training processes (joblib); `dask`: a ``dask.distributed.Client`` or a
    scheduler address to train on instead. `seed`: every random choice.
    """
    from mlwarden.attacks.membership.metrics import evaluate
    from mlwarden.targets import target as as_target

    target = as_target(target)
    x_m, y_m = _checked("members", members, target)
    x_n, y_n = _checked("non_members", non_members, target)
    _check_disjoint("members", x_m, "non_members", x_n)
    x_c = np.concatenate([x_m, x_n])
    y_c = np.concatenate([y_m, y_n])
    is_member = np.concatenate([np.ones(len(x_m), bool), np.zeros(len(x_n), bool)])
    pop: Data | None = None
    if population is not None:
        pop = _checked("population", population, target)
        _check_disjoint("population", pop[0], "members and non_members", x_c)
    _check_levels(fpr_levels, confidence, delta)
    names = _choose_attacks(attacks, target, train_fn, pop)
    chosen = [get_attack(name) for name in names]
    label_only = target.output == "labels"
    for attack in chosen:
        if attack.scores_needed and label_only:
            raise UsageError(
                f"attack {attack.name!r} needs probabilities, but the target returns labels "
                "only; use attacks=['label-only'] (it needs only the predicted class)"
            )
    needs_reference = [a for a in chosen if a.needs != "none"]
    mode = reference_mode or (
        "online" if any(a.needs == "online-reference" for a in chosen) else "offline"
    )
    if any(a.needs == "online-reference" for a in chosen) and mode != "online":
        raise UsageError("lira-online needs reference_mode='online'")
    reference: ReferenceSet | None = None
    if needs_reference:
        if train_fn is None or pop is None:
            missing = " and ".join(
                n for n, v in (("train_fn", train_fn), ("population", pop)) if v is None
            )
            raise UsageError(
                f"{', '.join(a.name for a in needs_reference)} need reference models: pass "
                f"{missing} (or choose attacks={list(SCORE_ATTACKS)})"
            )
        from mlwarden.attacks.membership.reference import train_reference

        reference = train_reference(
            train_fn,
            candidates=(x_c, y_c),
            population=pop,
            n_reference=n_reference,
            mode=mode,
            n_classes=target.n_classes,
            seed=seed,
            cache_dir=Path(cache_dir) if cache_dir is not None else None,
            n_jobs=n_jobs,
            dask=dask,
            progress=progress,
        )
    probs = None if label_only else target.predict_proba(x_c)
    accuracy_m, accuracy_n = _accuracies(target, probs, x_c, y_c, is_member)
    outcomes: dict[str, AttackOutcome] = {}
    for attack in chosen:
        context = MembershipContext(
            target=target,
            x=x_c,
            y=y_c,
            population=pop if pop is not None else (x_c[:0], y_c[:0]),
            target_probs=probs,
            reference=reference,
            seed=seed,
            params=dict((params or {}).get(attack.name, {})),
            progress=progress,
        )
        queries_before = target.queries
        started = time.perf_counter()
        scores = np.asarray(attack.run(context), dtype=np.float64)
        if scores.shape != (len(x_c),) or not np.all(np.isfinite(scores)):
            raise RuntimeError(f"attack {attack.name} returned invalid scores (a bug)")
        outcome = evaluate(
            attack.name,
            attack.title,
            scores,
            is_member,
            fpr_levels=tuple(fpr_levels),
            confidence=confidence,
            delta=delta,
            n_exposed=n_exposed,
        )
        outcome.queries = target.queries - queries_before
        outcome.seconds = time.perf_counter() - started
        outcomes[attack.name] = outcome
    return MembershipAudit(
        outcomes=outcomes,
        n_members=len(x_m),
        n_non_members=len(x_n),
        n_population=0 if pop is None else len(pop[0]),
        n_reference=0 if reference is None else reference.k,
        reference_mode=None if reference is None else reference.mode,
        member_accuracy=accuracy_m,
        non_member_accuracy=accuracy_n,
        reference_seconds=0.0 if reference is None else reference.train_seconds,
        reference_cached=0 if reference is None else reference.cached,
    )


def _checked(name: str, data: Data, target: Target) -> Data:
    if not (isinstance(data, tuple) and len(data) == 2):
        raise InputError(f"{name} must be a pair (x, y)")
    from mlwarden.targets.base import validate_batch, validate_labels

    x = validate_batch(target, np.asarray(data[0]), what=name)
    y = validate_labels(np.asarray(data[1]), len(x), target.n_classes, what=f"{name} labels")
    return x, y


def _row_digests(x: np.ndarray) -> set[bytes]:
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1)
    return {hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat}


def _check_disjoint(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    shared = _row_digests(a) & _row_digests(b)
    if shared:
        raise InputError(
            f"{len(shared)} record(s) appear in both {name_a} and {name_b}; a record cannot be "
            "both, and a shared record makes every rate meaningless: remove the duplicates"
        )


def _check_levels(fpr_levels: Sequence[float], confidence: float, delta: float) -> None:
    if not fpr_levels or not all(0.0 < float(f) < 1.0 for f in fpr_levels):
        raise InputError(f"fpr_levels must be in (0, 1), got {list(fpr_levels)}")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    if not 0.0 <= delta < 1.0:
        raise InputError(f"delta must be in [0, 1), got {delta}")


def _choose_attacks(
    attacks: Sequence[str] | None, target: Target, train_fn: Any, population: Data | None
) -> list[str]:
    if attacks is not None:
        names = list(dict.fromkeys(attacks))
        if not names:
            raise UsageError("attacks is empty; name at least one (see attack_names())")
        return names
    if target.output == "labels":
        return ["label-only"]
    names = list(SCORE_ATTACKS)
    if train_fn is not None and population is not None:
        names += [*REFERENCE_ATTACKS]
    return names


def _accuracies(
    target: Target,
    probs: np.ndarray | None,
    x: np.ndarray,
    y: np.ndarray,
    is_member: np.ndarray,
) -> tuple[float | None, float | None]:
    predicted = probs.argmax(axis=1) if probs is not None else target.predict(x)
    correct = predicted == y
    return float(correct[is_member].mean()), float(correct[~is_member].mean())
