"""Robust accuracy a user can trust: a suite of attacks, worst case per sample, with sanity checks.

`robustness(target, x, y, eps=[...])` runs a suite (`mlwarden.evaluate.suites`) the way
AutoAttack does: at each eps every fixed-budget attack runs only on the samples no earlier attack
has fooled, so a sample counts as robust only if every attack failed on it, and the strong but
slow attacks see only the few samples the fast ones could not break. Minimum-norm attacks run
once on every sample and give the distribution of the smallest fooling perturbations, and a
sample fooled at one eps is fooled at every larger eps without attacking it again. White-box
attacks run before black-box ones (the order is `suites._phase`). Afterwards the sanity checks
of `mlwarden.evaluate.masking` look for signs of gradient masking. Not for:
single attacks (`mlwarden.attacks.evasion`), findings (the ``ml01.evasion`` audit check) or
drawing (`mlwarden.report`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from mlwarden.attacks.evasion.base import NORMS, AttackResult, Norm, check_eps
from mlwarden.attacks.evasion.constraints import FeatureConstraints
from mlwarden.errors import InputError
from mlwarden.evaluate.masking import SanityInputs, run_sanity_checks
from mlwarden.evaluate.results import (
    AdversarialExample,
    AttackRun,
    MaskingFlag,
    RobustnessResult,
)
from mlwarden.evaluate.suites import (
    AttackChoices,
    Plan,
    PlannedAttack,
    SuiteRequest,
    plan_attacks,
    plan_suite,
)
from mlwarden.targets import target as as_target
from mlwarden.targets.base import Target, validate_batch, validate_labels

EvaluationProgress = Callable[[str, int, int], None]
"""``progress(description, done, total)``, the audit's shape; total 0 when unknown."""

DEFAULT_EPS: dict[Norm, tuple[float, ...]] = {
    "linf": (2 / 255, 4 / 255, 8 / 255),
    "l2": (0.25, 0.5, 1.0),
    "l1": (4.0, 8.0, 12.0),
    "l0": (1.0, 5.0, 10.0),
}
"""Budgets used when none are given, for inputs in [0, 1] (scaled by the width of the target's
input range, except l0 which counts values): the usual image benchmarks' values."""


def robustness(
    target: Target | Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    norm: Norm = "linf",
    eps: float | Sequence[float] | None = None,
    suite: str = "standard",
    attacks: AttackChoices | None = None,
    constraints: FeatureConstraints | None = None,
    n_examples: int = 8,
    sanity_checks: bool = True,
    query_budget: int | None = None,
    seed: int = 0,
    progress: EvaluationProgress | None = None,
    feature_names: Sequence[str] = (),
    target_options: Mapping[str, Any] | None = None,
) -> RobustnessResult:
    """Robust accuracy of `target` on `x`, `y` at each eps, worst case over a suite of attacks.

    Args:
        target: a `Target`, or anything `mlwarden.target()` accepts (a torch module, a
            scikit-learn estimator, ...), built with `target_options`.
        x: clean inputs ``(n, *input_shape)`` inside the target's input range, n >= 1.
        y: true labels ``(n,)``.
        norm: ``linf``, ``l2``, ``l1`` or ``l0``.
        eps: one budget or several, in input units under `norm` (l0: number of input values),
            each >= 0; sorted, repeats dropped. None uses `DEFAULT_EPS` scaled to the input range.
        suite: ``quick``, ``standard`` or ``strong`` (see `suite_names()`); ignored when
            `attacks` is given.
        attacks: run these instead of a suite: names from
            `mlwarden.attacks.evasion.attack_names()`, each optionally with a dict of parameters
            (``[("pgd", {"steps": 100}), "square"]``, or ``{"pgd": {"steps": 100}}``).
        constraints: feature constraints of tabular inputs; only attacks that respect them run.
        n_examples: adversarial examples kept per eps for the report, >= 0.
        sanity_checks: run the gradient-masking checks of `mlwarden.evaluate.masking`.
        query_budget: most samples the suite's attacks may ask the target about, >= 1; when it
            is spent the evaluation stops and returns what it measured (``interrupted``). None
            for no limit beyond the target's own.
        seed: seeds every attack; the result is deterministic under it.
        progress: ``progress(description, done, total)`` callback.
        feature_names: column names of tabular inputs, for the report.
        target_options: options for `mlwarden.target()` when `target` is not a `Target` yet.

    Returns:
        A `RobustnessResult`. Ctrl-C or a spent query budget stops the evaluation early; the
        result then holds what was measured, with ``interrupted`` set (its robust accuracies are
        upper bounds).
    """
    model = as_target(target, **dict(target_options or {}))
    if norm not in NORMS:
        raise InputError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    x = validate_batch(model, x)
    y = validate_labels(y, len(x), model.n_classes)
    budgets = _budgets(eps, norm, model)
    examples_per_eps = _count(n_examples, "n_examples", minimum=0)
    budget = None if query_budget is None else _count(query_budget, "query_budget", minimum=1)
    if constraints is not None:
        constraints.validate(x)
    names = tuple(str(name) for name in feature_names)
    if names and len(names) != int(np.prod(model.input_shape)):
        raise InputError(
            f"{len(names)} feature names for inputs of {int(np.prod(model.input_shape))} "
            "features; give one name per feature, or none"
        )
    request = SuiteRequest(
        norm=norm,
        white_box=model.white_box,
        scores=model.output == "probabilities",
        constrained=constraints is not None,
    )
    plan = plan_attacks(attacks, request) if attacks is not None else plan_suite(suite, request)
    if not plan.attacks:
        reasons = "; ".join(f"{name} {why}" for name, why in plan.skipped.items())
        raise InputError(
            f"no attack of the {'given list' if attacks is not None else suite + ' suite'} "
            f"applies to {model.name} under {norm} ({reasons}); choose other attacks or another "
            "norm"
        )
    evaluation = _Evaluation(model, x, y, norm, budgets, constraints, seed, progress)
    with _limited(model, budget):
        evaluation.run(plan)
    flags: list[MaskingFlag] = []
    checks_run: list[str] = []
    if sanity_checks and not evaluation.interrupted:
        flags, checks_run, stopped = run_sanity_checks(evaluation.sanity_inputs(plan), progress)
        evaluation.interrupted |= stopped
    return RobustnessResult(
        target_name=model.name,
        norm=norm,
        eps=budgets,
        suite=suite if attacks is None else "custom",
        attacks=[a.name for a in plan.attacks],
        n_samples=len(x),
        clean_accuracy=float(evaluation.correct.mean()),
        robust_accuracy={e: float(evaluation.robust[:, k].mean()) for k, e in enumerate(budgets)},
        per_attack=evaluation.per_attack(plan),
        robust=evaluation.robust,
        minimal_norms=evaluation.minimal_norms,
        runs=evaluation.runs,
        examples=evaluation.examples(examples_per_eps),
        flags=flags,
        queries=sum(run.queries for run in evaluation.runs),
        elapsed_s=time.perf_counter() - evaluation.started,
        interrupted=evaluation.interrupted,
        feature_names=names,
        skipped=dict(plan.skipped),
        checks_run=checks_run,
    )


def _budgets(eps: float | Sequence[float] | None, norm: Norm, model: Target) -> list[float]:
    """Validated budgets, ascending, without repeats."""
    if eps is None:
        width = 1.0 if norm == "l0" else model.input_range[1] - model.input_range[0]
        size = int(np.prod(model.input_shape))
        largest = {"linf": 1.0, "l2": np.sqrt(size), "l1": float(size), "l0": float(size)}[norm]
        values: list[Any] = [v * width for v in DEFAULT_EPS[norm] if v <= largest]
    elif isinstance(eps, (str, bytes)):
        raise InputError(f"eps must be a number or a list of numbers, got {eps!r}")
    elif isinstance(eps, (int, float, np.number)):
        values = [eps]
    else:
        values = list(np.asarray(eps, dtype=object).ravel())
    if not values:
        raise InputError("eps is empty: give one budget or a list of budgets in input units")
    checked = {check_eps(value, norm, model, required=True) for value in values}
    return sorted(float(value) for value in checked if value is not None)


def _count(value: int, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


@contextlib.contextmanager
def _limited(model: Target, budget: int | None) -> Iterator[None]:
    """The target's query budget lowered to `budget` more samples for the block, then restored."""
    if budget is None:
        yield
        return
    previous = model.query_budget
    limit = model.queries + budget
    model.query_budget = limit if previous is None else min(previous, limit)
    try:
        yield
    finally:
        model.query_budget = previous


class _Evaluation:
    """The bookkeeping of one evaluation: who is fooled at which eps, by whom, and with what."""

    def __init__(
        self,
        model: Target,
        x: np.ndarray,
        y: np.ndarray,
        norm: Norm,
        budgets: list[float],
        constraints: FeatureConstraints | None,
        seed: int,
        progress: EvaluationProgress | None,
    ) -> None:
        self.model, self.x, self.y, self.norm = model, x, y, norm
        self.budgets, self.constraints, self.seed = budgets, constraints, int(seed)
        self.progress = progress
        self.started = time.perf_counter()
        n, levels = len(x), len(budgets)
        with model.unmetered():
            probs = model.predict_proba(x)
        self.clean_predictions = probs.argmax(axis=1)
        self.clean_confidence = probs.max(axis=1).astype(np.float64)
        self.correct = self.clean_predictions == y
        self.fooled = np.repeat(~self.correct[:, None], levels, axis=1)
        self.minimal_norms = np.where(self.correct, np.inf, 0.0)
        self.fooled_by: dict[str, np.ndarray] = {}
        self.runs: list[AttackRun] = []
        self.interrupted = False
        # the first adversarial input found for each sample, and the eps level it counts from
        self.adv_x = x.copy()
        self.adv_level = np.full(n, levels, dtype=np.int64)
        self.adv_attack = np.full(n, "", dtype=object)
        self.adv_prediction = self.clean_predictions.copy()
        self.adv_confidence = self.clean_confidence.copy()
        self.adv_norm = np.zeros(n)

    @property
    def robust(self) -> np.ndarray:
        """Bool ``(n, len(eps))``: correct and fooled by no attack at that eps."""
        return np.asarray(~self.fooled)

    # -- running --------------------------------------------------------------------------

    def run(self, plan: Plan) -> None:
        """Every attack of `plan` at every eps, stopping at the first interruption."""
        steps: list[tuple[PlannedAttack, int | None]] = []
        for white_box in (True, False):
            fixed = [a for a in plan.attacks if a.spec.white_box is white_box]
            steps += [(a, k) for k in range(len(self.budgets)) for a in fixed if not a.minimum_norm]
            steps += [(a, None) for a in fixed if a.minimum_norm]
        try:
            for number, (attack, level) in enumerate(steps, start=1):
                label = self._label(attack, level, number, len(steps))
                result = self._attack(attack, level, label)
                if result is not None and result.interrupted:
                    self.interrupted = True
                    break
        except KeyboardInterrupt:
            self.interrupted = True

    def _label(self, attack: PlannedAttack, level: int | None, number: int, total: int) -> str:
        where = "unbounded" if level is None else f"at eps {self.budgets[level]:g}"
        return f"{attack.name} {where} [{number}/{total}]"

    def _attack(self, attack: PlannedAttack, level: int | None, label: str) -> AttackResult | None:
        """Run `attack` at eps level `level` (None: minimum-norm) on the samples it should see."""
        if level is None:
            index = np.flatnonzero(self.correct)
            eps: float | None = None
        else:
            index = np.flatnonzero(~self.fooled[:, level])
            eps = self.budgets[level]
        budget = attack.budget(eps, self.norm, self.model)
        # nothing moves inside a zero budget: the clean predictions are the answer
        runs = len(index) > 0 and budget is not None and eps != 0
        if runs and self.progress is not None:
            self.progress(label, 0, 0)
        self.fooled_by.setdefault(attack.name, np.zeros_like(self.fooled))
        if not runs or budget is None:
            return None
        result = attack.fn(
            self.model, self.x[index], self.y[index], **self._kwargs(attack, budget, label)
        )
        self.runs.append(_run_record(attack, eps, result, len(index)))
        hit = result.success
        norms = result.norms[hit]
        if level is None:
            levels = np.searchsorted(np.asarray(self.budgets), norms, side="left")
        else:
            # the runner accepted these inside the eps ball, float32 slack included
            norms = np.minimum(norms, self.budgets[level])
            levels = np.full(len(norms), level, dtype=np.int64)
        self._record(attack.name, index[hit], levels, result, hit, norms)
        return result

    def _kwargs(self, attack: PlannedAttack, budget: dict[str, Any], label: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {**attack.params, **budget, "seed": self.seed}
        if self.constraints is not None:
            kwargs["constraints"] = self.constraints
        if self.progress is not None:
            report = self.progress
            kwargs["progress"] = lambda done, total: report(label, done, total)
        return kwargs

    def _record(
        self,
        name: str,
        index: np.ndarray,
        levels: np.ndarray,
        result: AttackResult,
        hit: np.ndarray,
        norms: np.ndarray,
    ) -> None:
        """Samples `index` fooled by attack `name` from eps level `levels` on (len(eps): at no
        evaluated eps, only a minimal norm)."""
        counts = np.arange(len(self.budgets))[None, :] >= levels[:, None]
        self.fooled_by[name][index] |= counts
        self.fooled[index] |= counts
        self.minimal_norms[index] = np.minimum(self.minimal_norms[index], norms)
        better = levels < self.adv_level[index]
        chosen = index[better]
        self.adv_level[chosen] = levels[better]
        self.adv_x[chosen] = result.x_adv[hit][better]
        self.adv_attack[chosen] = name
        self.adv_prediction[chosen] = result.predictions[hit][better]
        self.adv_confidence[chosen] = result.confidence[hit][better]
        self.adv_norm[chosen] = norms[better]

    # -- what it measured -----------------------------------------------------------------

    def per_attack(self, plan: Plan) -> dict[str, dict[float, float]]:
        """attack -> eps -> fraction correct and not fooled by that attack (see the result);
        attacks an interruption kept from running are left out."""
        table: dict[str, dict[float, float]] = {}
        for attack in plan.attacks:
            fooled = self.fooled_by.get(attack.name)
            if fooled is None:  # interrupted before its turn: it measured nothing
                continue
            survived = self.correct[:, None] & ~fooled
            table[attack.name] = {
                e: float(survived[:, k].mean()) for k, e in enumerate(self.budgets)
            }
        return table

    def examples(self, per_eps: int) -> list[AdversarialExample]:
        """Up to `per_eps` samples per eps: fooled ones first, most confidently fooled first,
        then the robust ones the attacks missed."""
        chosen: list[AdversarialExample] = []
        for k, eps in enumerate(self.budgets):
            fooled = np.flatnonzero(self.correct & (self.adv_level <= k))
            fooled = fooled[np.argsort(-self.adv_confidence[fooled], kind="stable")]
            robust = np.flatnonzero(self.correct & ~self.fooled[:, k])
            robust = robust[np.argsort(-self.clean_confidence[robust], kind="stable")]
            for i in [*fooled[:per_eps], *robust[: max(0, per_eps - len(fooled))]]:
                chosen.append(self._example(int(i), k, eps))
        return chosen

    def _example(self, i: int, level: int, eps: float) -> AdversarialExample:
        success = bool(self.adv_level[i] <= level)
        return AdversarialExample(
            index=i,
            eps=eps,
            attack=str(self.adv_attack[i]) if success else "",
            x=self.x[i].copy(),
            x_adv=(self.adv_x[i] if success else self.x[i]).copy(),
            label=int(self.y[i]),
            clean_prediction=int(self.clean_predictions[i]),
            clean_confidence=float(self.clean_confidence[i]),
            adversarial_prediction=int(
                self.adv_prediction[i] if success else self.clean_predictions[i]
            ),
            adversarial_confidence=float(
                self.adv_confidence[i] if success else self.clean_confidence[i]
            ),
            success=success,
            perturbation_norm=float(self.adv_norm[i]) if success else 0.0,
        )

    def sanity_inputs(self, plan: Plan) -> SanityInputs:
        """What the masking checks need from this evaluation."""
        ran = [a for a in plan.attacks if a.name in self.fooled_by]
        main = next((a for a in ran if a.spec.white_box and not a.minimum_norm), None)
        return SanityInputs(
            target=self.model,
            x=self.x,
            y=self.y,
            correct=self.correct,
            robust=self.robust,
            norm=self.norm,
            eps=self.budgets,
            fooled_by=self.fooled_by,
            white_box_attacks=tuple(a.name for a in ran if a.spec.white_box),
            black_box_attacks=tuple(a.name for a in ran if not a.spec.white_box),
            main_attack=main,
            constraints=self.constraints,
            seed=self.seed,
        )


def _run_record(
    attack: PlannedAttack, eps: float | None, result: AttackResult, n_samples: int
) -> AttackRun:
    return AttackRun(
        attack=attack.name,
        eps=eps,
        robust_accuracy=result.robust_accuracy,
        success_rate=result.success_rate,
        median_norm=result.median_norm,
        queries=result.queries,
        elapsed_s=result.elapsed_s,
        n_projected=result.n_projected,
        interrupted=result.interrupted,
        n_samples=n_samples,
        params=dict(attack.params),
    )
