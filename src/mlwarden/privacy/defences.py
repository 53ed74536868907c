"""Defences, measured: the membership audit re-run against each defended model, before / after.

Output defences (``top-k:K``, ``round:D``, ``label-only``, ``temperature:T``) wrap the deployed
target with `mlwarden.defenses.output.harden`; the attacker is assumed to know the defence, so the
reference models answer through the same wrapper. ``dp:epsilon=E`` trains a new model on the
members with DP-SGD (`mlwarden.defenses.dp` through the ``TorchTrainer`` given as `train_fn`,
whose factory, epochs and learning rate it reuses), and reference models are trained the same
way. Every defended model faces the same attacks as the deployed one (``label-only`` faces the
label-only attack: it is the only one its answers allow). The utility cost of a defence is the
accuracy it loses on the non-members, records the model never saw. Not for: the defences
themselves (`mlwarden.defenses`) or judging severities (`mlwarden.privacy.check`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from mlwarden.errors import UsageError
from mlwarden.privacy.results import DefenceComparison, DefenceRow
from mlwarden.privacy.settings import DefenceSpec, PrivacySettings, slug

if TYPE_CHECKING:
    from mlwarden.attacks.membership import MembershipAudit
    from mlwarden.audit.runner import ProgressFn
    from mlwarden.targets.base import Target

LOW_FPR = 0.001
ONE_PERCENT_FPR = 0.01


def compare_defences(
    target: Target,
    settings: PrivacySettings,
    *,
    baseline: MembershipAudit | None = None,
    progress: ProgressFn | None = None,
) -> DefenceComparison:
    """Attack the deployed `target`, then each of `settings.defences`, the same way.

    Args:
        target: the model as deployed.
        settings: members, non-members, population, train_fn, attacks and the defences.
        baseline: the deployed model's membership audit when already run (it is reused).
        progress: ``progress(description, done, total)``; descriptions name the defence.
    """
    from mlwarden.privacy.check import run_membership

    if not settings.measures_membership:
        raise UsageError("comparing defences needs members and non_members")
    if baseline is None:
        baseline = run_membership(target, settings, progress=progress)
    deployed_accuracy = baseline.non_member_accuracy
    rows = []
    for spec in settings.defences:
        result = _audit_defended(target, settings, spec, baseline, _prefixed(progress, spec))
        rows.append(defence_row(spec.text, result, deployed_accuracy))
    return DefenceComparison(
        baseline=defence_row("none", baseline, deployed_accuracy), rows=tuple(rows)
    )


def defence_row(
    defence: str, result: MembershipAudit, deployed_non_member_accuracy: float | None
) -> DefenceRow:
    """One row of the comparison: the strongest numbers over the attacks in `result` and the
    accuracy lost on non-members against `deployed_non_member_accuracy`."""
    outcomes = list(result.outcomes.values())
    if not outcomes:
        raise UsageError(f"the audit of defence {defence} ran no attack")
    best = result.best(fpr=LOW_FPR)
    after = result.non_member_accuracy
    cost = (
        None
        if after is None or deployed_non_member_accuracy is None
        else deployed_non_member_accuracy - after
    )
    return DefenceRow(
        defence=defence,
        attacks=tuple(result.outcomes),
        best_attack=best.attack,
        tpr_at_0_1=max(o.tpr_at_fpr.get(LOW_FPR, math.nan) for o in outcomes),
        tpr_at_1=max(o.tpr_at_fpr.get(ONE_PERCENT_FPR, math.nan) for o in outcomes),
        auc=max(o.auc for o in outcomes),
        epsilon_lower=max(o.epsilon.lower for o in outcomes),
        member_accuracy=result.member_accuracy,
        non_member_accuracy=after,
        utility_cost=cost,
        notes=tuple(result.notes),
    )


def _audit_defended(
    target: Target,
    settings: PrivacySettings,
    spec: DefenceSpec,
    baseline: MembershipAudit,
    progress: ProgressFn | None,
) -> MembershipAudit:
    from mlwarden.attacks.membership import audit

    assert settings.members is not None and settings.non_members is not None
    if spec.retrains:
        trainer = dp_trainer(settings.train_fn, spec)
        defended = _dp_target(target, trainer, settings)
        train_fn: Any = trainer
    else:
        defended = harden_target(target, spec)
        train_fn = (
            None
            if settings.train_fn is None
            else HardenedTrainFn(settings.train_fn, spec, input_range=target.input_range)
        )
    attacks = (
        ["label-only"]
        if defended.output == "labels"
        else [name for name in baseline.outcomes if name != "label-only"] or ["label-only"]
    )
    return audit(
        defended,
        members=settings.members,
        non_members=settings.non_members,
        population=settings.population,
        train_fn=train_fn,
        attacks=attacks,
        n_reference=settings.n_reference,
        reference_mode=settings.reference_mode,
        confidence=settings.confidence,
        n_exposed=settings.n_exposed,
        cache_dir=(
            None
            if settings.cache_dir is None
            else settings.cache_dir / f"defence-{slug(spec.text)}"
        ),
        n_jobs=settings.n_jobs,
        dask=settings.dask,
        seed=settings.seed,
        progress=progress,
    )


def harden_target(target: Target, spec: DefenceSpec) -> Target:
    """`target` behind the output defence `spec` (`mlwarden.defenses.output.harden`)."""
    from mlwarden.defenses.output import harden

    value = spec.value
    if spec.kind == "top-k":
        return harden(target, top_k=int(value or 1))
    if spec.kind == "round":
        return harden(target, decimals=int(value or 0))
    if spec.kind == "temperature":
        return harden(target, temperature=float(value or 1.0))
    if spec.kind == "label-only":
        return harden(target, label_only=True)
    raise UsageError(f"defence {spec.text} is not an output defence")


def remembering(settings: PrivacySettings) -> PrivacySettings:
    """`settings` whose ``train_fn`` keeps the models it trains in memory, so that the output
    defences reuse the deployed audit's reference models instead of training them again.
    Training in worker processes (``n_jobs > 1``, Dask) cannot share them: unchanged then."""
    if settings.train_fn is None or settings.n_jobs != 1 or settings.dask is not None:
        return settings
    if not any(not spec.retrains for spec in settings.defences):
        return settings
    return dataclasses.replace(settings, train_fn=RememberingTrainFn(settings.train_fn))


@dataclasses.dataclass(frozen=True)
class RememberingTrainFn:
    """A ``train_fn`` that trains each (records, seed) once per audit and hands the same model
    back when asked again; its identity (for the reference cache) is the wrapped one's."""

    train_fn: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "_models", {})

    def __call__(self, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
        """The model `train_fn` trains on ``(x, y)`` with `seed`, trained at most once."""
        from mlwarden.attacks.membership.reference import as_train_fn

        digest = hashlib.blake2b(digest_size=16)
        digest.update(np.ascontiguousarray(x).tobytes())
        digest.update(np.ascontiguousarray(y).tobytes())
        key = (digest.hexdigest(), int(seed))
        models: dict[tuple[str, int], Any] = self._models  # type: ignore[attr-defined]
        if key not in models:
            models[key] = as_train_fn(self.train_fn)(x, y, seed)
        return models[key]

    def __getstate__(self) -> dict[str, Any]:
        return {"train_fn": self.train_fn}

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "train_fn", state["train_fn"])
        object.__setattr__(self, "_models", {})


class HardenedTrainFn:
    """A reference-model ``train_fn`` whose models answer through an output defence, as the
    deployed model does: the attacker knows the defence and calibrates on it."""

    def __init__(
        self, train_fn: Any, spec: DefenceSpec, *, input_range: tuple[float, float]
    ) -> None:
        self.train_fn = train_fn
        self.spec = spec
        self.input_range = input_range

    def __call__(self, x: np.ndarray, y: np.ndarray, seed: int) -> HardenedModel:
        """Train one reference model and put the defence in front of it."""
        from mlwarden.attacks.membership.reference import as_train_fn

        model = as_train_fn(self.train_fn)(x, y, seed)
        return HardenedModel(model, self.spec, input_range=self.input_range)


class HardenedModel:
    """A trained model answering through an output defence: ``model(x) -> probabilities``
    (and ``predict_proba``), rows as the defended deployed model would return them."""

    def __init__(self, model: Any, spec: DefenceSpec, *, input_range: tuple[float, float]) -> None:
        self.model = model
        self.spec = spec
        self.input_range = input_range

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Defended probabilities ``(n, n_classes)`` for inputs ``(n, ...)``."""
        from mlwarden.targets import target as as_target

        x = np.asarray(x, dtype=np.float32)
        inner = as_target(self.model, input_shape=tuple(x.shape[1:]), input_range=self.input_range)
        return np.asarray(harden_target(inner, self.spec).predict_proba(x), dtype=np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x)


def dp_trainer(train_fn: Any, spec: DefenceSpec) -> Any:
    """The ``TorchTrainer`` `train_fn` with DP-SGD at the spec's epsilon and delta (its
    ``max_grad_norm`` and ``epochs`` replace the trainer's when given)."""
    from mlwarden.attacks.membership.reference import TorchTrainer
    from mlwarden.defenses.dp import DPSettings

    if isinstance(train_fn, RememberingTrainFn):
        train_fn = train_fn.train_fn
    if not isinstance(train_fn, TorchTrainer):
        given = "no train_fn" if train_fn is None else f"a {type(train_fn).__name__}"
        raise UsageError(
            f"defence {spec.text} retrains the model with DP-SGD and needs train_fn to be a "
            f"TorchTrainer (the model factory and its training settings); got {given}"
        )
    options = spec.dp
    dp = DPSettings(
        epsilon=options["epsilon"],
        delta=options["delta"],
        max_grad_norm=options.get("max_grad_norm", 1.0),
    )
    changes: dict[str, Any] = {"dp": dp}
    if "epochs" in options:
        changes["epochs"] = int(options["epochs"])
    return dataclasses.replace(train_fn, **changes)


def _dp_target(target: Target, trainer: Any, settings: PrivacySettings) -> Target:
    """The model retrained on the members with DP-SGD, as a target shaped like `target`."""
    from mlwarden.targets import target as as_target

    assert settings.members is not None
    x, y = settings.members
    model = trainer(np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64), settings.seed)
    return as_target(
        model,
        input_shape=target.input_shape,
        input_range=target.input_range,
        name=f"{target.name} (DP-SGD)",
    )


def _prefixed(progress: ProgressFn | None, spec: DefenceSpec) -> ProgressFn | None:
    if progress is None:
        return None
    report: Callable[[str, int, int], None] = progress

    def update(description: str, done: int, total: int) -> None:
        report(f"defence {spec.text}: {description}", done, total)

    return update
