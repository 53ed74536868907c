"""Sanity checks that tell when a robustness number is probably a lie (gradient masking).

From the literature on evaluating defences (Carlini et al. 2019, "On evaluating adversarial
robustness"; Athalye et al. 2018, "Obfuscated gradients give a false sense of security") and
AutoAttack's flags: a score-based black-box attack beating the white-box ones, a gradient attack
with an unbounded budget failing to reach zero accuracy, more iterations changing the answer,
input gradients that are exactly zero, and outputs that change between two identical queries.
Each check returns a `MaskingFlag` when it fails, None when it passes; checks that attack run on a
small subsample so that they cost a fraction of the evaluation. Their queries are not charged to
the target (they verify the evaluation, as the runner's re-verification does). Not for: running
the suite (`mlwarden.evaluate.robustness`) or proving robustness: a model that passes every check
can still be broken by an adaptive attack.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from mlwarden.attacks.evasion import get_attack
from mlwarden.attacks.evasion.base import AttackResult, Norm
from mlwarden.attacks.evasion.constraints import FeatureConstraints
from mlwarden.evaluate.results import MaskingFlag
from mlwarden.evaluate.suites import PlannedAttack
from mlwarden.targets.base import Target, WhiteBoxTarget

SANITY_SAMPLES = 64
"""Samples each attacking check runs on (a random subsample when there are more)."""

BLACK_BOX_MIN_COUNT = 2
BLACK_BOX_FRACTION = 0.01
"""Black-box successes that every white-box attack missed, at one eps, tolerated before the
flag: one stray sample is optimisation noise, a percent of the data is a pattern."""

UNBOUNDED_STEPS = 100
UNBOUNDED_MAX_ROBUST = 0.05
"""Fraction of correctly classified samples allowed to survive an unbounded gradient attack."""

MORE_ITERATIONS_STEP_FACTOR = 4
MORE_ITERATIONS_MIN_RESTARTS = 2
MORE_ITERATIONS_MAX_DROP = 0.03
"""Robust accuracy (absolute, over the whole evaluation) that 4x the steps and more restarts
may still take away before the flag: a converged attack gains almost nothing from them."""

MORE_ITERATIONS_MIN_COUNT = 2

ZERO_GRADIENT_FRACTION = 0.05
"""Fraction of samples whose cross-entropy input gradient is exactly zero before the flag: a
few saturated, very confident points are normal; masking makes it common."""

RANDOMISED_TOLERANCE = 1e-5
"""Largest change in a probability between two identical queries still taken as the same."""


@dataclass(frozen=True)
class SanityInputs:
    """What the checks see of a finished evaluation."""

    target: Target
    x: np.ndarray
    """Evaluated inputs, validated."""
    y: np.ndarray
    correct: np.ndarray
    """Bool ``(n,)``: classified correctly on the clean input."""
    robust: np.ndarray
    """Bool ``(n, len(eps))``: not fooled by any attack of the suite."""
    norm: Norm
    eps: list[float]
    fooled_by: Mapping[str, np.ndarray]
    """attack -> bool ``(n, len(eps))``: the attack fooled the sample at that eps."""
    white_box_attacks: tuple[str, ...]
    black_box_attacks: tuple[str, ...]
    main_attack: PlannedAttack | None
    """The suite's first fixed-budget white-box attack (the one more iterations should not
    improve), None when the suite has none."""
    constraints: FeatureConstraints | None
    """Feature constraints of tabular data, passed on to the attacks that re-run."""
    seed: int


@dataclass(frozen=True)
class SanityCheck:
    """A registered check: its id, whether it needs gradients, and the function running it."""

    check: str
    needs_white_box: bool
    run: Callable[[SanityInputs], MaskingFlag | None]
    applies: Callable[[SanityInputs], bool]
    """Whether the check can say anything for this evaluation (before it costs anything)."""


def subsample(index: np.ndarray, size: int, seed: int) -> np.ndarray:
    """At most `size` of `index`, drawn without replacement under `seed`, in ascending order."""
    if len(index) <= size:
        return index
    rng = np.random.default_rng([seed, 0x5A])
    return np.sort(rng.choice(index, size=size, replace=False))


# -- the checks -------------------------------------------------------------------------------


def black_box_beats_white_box(
    fooled_by: Mapping[str, np.ndarray],
    white_box_attacks: tuple[str, ...],
    black_box_attacks: tuple[str, ...],
    eps: list[float],
    *,
    min_count: int = BLACK_BOX_MIN_COUNT,
    fraction: float = BLACK_BOX_FRACTION,
) -> MaskingFlag | None:
    """Flag when black-box attacks fool samples that every white-box attack missed at the same
    eps: at least `min_count` samples and `fraction` (0..1) of all samples at one eps."""
    if not white_box_attacks or not black_box_attacks:
        return None
    white = np.any([fooled_by[a] for a in white_box_attacks], axis=0)
    black = np.any([fooled_by[a] for a in black_box_attacks], axis=0)
    only_black = (black & ~white).sum(axis=0)
    n_samples = len(white)
    worst = int(np.argmax(only_black))
    count = int(only_black[worst])
    if count < max(min_count, math.ceil(fraction * n_samples)):
        return None
    return MaskingFlag(
        check="black-box-beats-white-box",
        detail=(
            f"at eps {eps[worst]:g}, {', '.join(black_box_attacks)} fooled {count} of "
            f"{n_samples} samples that every white-box attack "
            f"({', '.join(white_box_attacks)}) missed: the gradients mislead the white-box "
            "attacks (gradient masking); trust the black-box numbers and try an adaptive attack"
        ),
        evidence={"eps": eps[worst], "count": count, "fraction": count / n_samples},
    )


def randomised_outputs(
    target: Target, x: np.ndarray, *, tolerance: float = RANDOMISED_TOLERANCE
) -> MaskingFlag | None:
    """Flag when predicting `x` twice gives probabilities more than `tolerance` apart."""
    with target.unmetered():
        first = target.predict_proba(x)
        second = target.predict_proba(x)
    difference = np.abs(first.astype(np.float64) - second).max(axis=1)
    changed = difference > tolerance
    if not changed.any():
        return None
    flipped = int((first.argmax(axis=1) != second.argmax(axis=1)).sum())
    return MaskingFlag(
        check="randomised-outputs",
        detail=(
            f"the same {len(x)} inputs predicted twice gave different probabilities for "
            f"{int(changed.sum())} of them (largest change {difference.max():.3g}, {flipped} "
            "changed label): a randomised defence makes single-run attacks look weaker than "
            "they are; evaluate with expectation over transformation (average gradients over "
            "many draws)"
        ),
        evidence={
            "samples": len(x),
            "changed": int(changed.sum()),
            "label_changed": flipped,
            "max_difference": float(difference.max()),
        },
    )


def zero_gradients(
    target: WhiteBoxTarget,
    x: np.ndarray,
    y: np.ndarray,
    *,
    fraction: float = ZERO_GRADIENT_FRACTION,
) -> MaskingFlag | None:
    """Flag when more than `fraction` (0..1) of samples have an all-zero cross-entropy gradient
    with respect to the input."""
    import torch

    from mlwarden.attacks.evasion._torch import ce_loss, labels_tensor, to_tensor

    zero = np.zeros(len(x), dtype=bool)
    with target.unmetered(), target.session():
        for start in range(0, len(x), target.batch_size):
            part = slice(start, start + target.batch_size)
            inputs = to_tensor(x[part], target).requires_grad_(True)
            loss = ce_loss(target.logits(inputs), labels_tensor(y[part], target)).sum()
            (grad,) = torch.autograd.grad(loss, inputs)
            zero[part] = (grad.flatten(1) == 0).all(dim=1).cpu().numpy()
    share = float(zero.mean()) if len(zero) else 0.0
    if share <= fraction:
        return None
    return MaskingFlag(
        check="zero-gradients",
        detail=(
            f"{int(zero.sum())} of {len(x)} samples have an input gradient that is exactly zero: "
            "gradient attacks cannot move them (shattered gradients, e.g. quantisation, or a "
            "saturated softmax); use a black-box attack, or approximate the non-differentiable "
            "step (BPDA) and attack the logits"
        ),
        evidence={"samples": len(x), "zero": int(zero.sum()), "fraction": share},
    )


def largest_budget(norm: Norm, target: Target) -> float:
    """The budget that reaches every point of the input range, in input units under `norm`."""
    width = target.input_range[1] - target.input_range[0]
    size = int(np.prod(target.input_shape))
    return {"linf": width, "l2": width * math.sqrt(size), "l1": width * size, "l0": float(size)}[
        norm
    ]


def unbounded_not_zero(
    target: WhiteBoxTarget,
    x: np.ndarray,
    y: np.ndarray,
    norm: Norm,
    *,
    seed: int = 0,
    max_robust: float = UNBOUNDED_MAX_ROBUST,
) -> MaskingFlag | None:
    """Flag when PGD with a budget that reaches every input leaves more than `max_robust`
    (0..1) of the correctly classified samples `x` unfooled.

    PGD starts at the clean input, not at a random point: with an unbounded budget a random
    start replaces the input by noise, which any classifier mislabels, and would test nothing.
    """
    spec, pgd = get_attack("pgd")
    if norm not in spec.norms:
        return None
    budget = largest_budget(norm, target)
    with target.unmetered():
        result = pgd(
            target,
            x,
            y,
            eps=budget,
            norm=norm,
            steps=UNBOUNDED_STEPS,
            random_start=False,
            seed=seed,
        )
    _pass_on_interruption(result)
    robust = result.robust_accuracy
    if robust <= max_robust:
        return None
    return MaskingFlag(
        check="unbounded-not-zero",
        detail=(
            f"PGD with an unbounded budget ({norm} eps {budget:g}, any input reachable) left "
            f"{robust:.0%} of {len(x)} correctly classified samples unfooled; it should reach 0%. "
            "The gradients do not lead anywhere (masking): the robust accuracy at small eps "
            "overstates robustness"
        ),
        evidence={"eps": budget, "samples": len(x), "robust_accuracy": robust},
    )


def more_iterations_help(
    target: WhiteBoxTarget,
    x: np.ndarray,
    y: np.ndarray,
    attack: PlannedAttack,
    norm: Norm,
    eps: float,
    *,
    robust_share: float = 1.0,
    constraints: FeatureConstraints | None = None,
    seed: int = 0,
    max_drop: float = MORE_ITERATIONS_MAX_DROP,
    min_count: int = MORE_ITERATIONS_MIN_COUNT,
) -> MaskingFlag | None:
    """Flag when `attack` with 4x the steps and more restarts fools samples `x` that the suite
    left robust at `eps`, enough to lower robust accuracy by more than `max_drop` (absolute).

    `x` is a (sub)sample of the robust samples; `robust_share` is the fraction of all samples
    that were robust, so the drop is estimated for the whole evaluation. `constraints` go to
    the attack as in the suite.
    """
    params = dict(attack.params)
    if constraints is not None:
        params["constraints"] = constraints
    steps = attack.default("steps")
    if steps is None:
        return None
    params["steps"] = int(steps) * MORE_ITERATIONS_STEP_FACTOR
    if attack.accepts("restarts"):
        restarts = int(attack.default("restarts") or 1)
        params["restarts"] = max(MORE_ITERATIONS_MIN_RESTARTS, 2 * restarts)
    budget = attack.budget(eps, norm, target)
    if budget is None:
        return None
    with target.unmetered():
        result = attack.fn(target, x, y, seed=seed + 1, **budget, **params)
    _pass_on_interruption(result)
    fooled = int(result.success.sum())
    drop = float(fooled / len(x) * robust_share)
    if fooled < min_count or drop <= max_drop:
        return None
    return MaskingFlag(
        check="more-iterations-help",
        detail=(
            f"{attack.name} with {params['steps']} steps"
            + (f" and {params['restarts']} restarts" if "restarts" in params else "")
            + f" fooled {fooled} of {len(x)} samples the suite left robust at eps {eps:g}, "
            f"lowering robust accuracy by about {drop:.1%}: the evaluation has not converged; "
            "use a stronger suite, more steps and restarts"
        ),
        evidence={
            "eps": eps,
            "samples": len(x),
            "fooled": fooled,
            "robust_accuracy_drop": drop,
            "steps": params["steps"],
        },
    )


def _pass_on_interruption(result: AttackResult) -> None:
    """The runner turns Ctrl-C into a partial result; a check must not judge one, so the
    interruption goes on to the caller (checks are unmetered: no query budget can stop them)."""
    if result.interrupted:
        raise KeyboardInterrupt


# -- wiring the checks to an evaluation -------------------------------------------------------


def _run_black_box(inputs: SanityInputs) -> MaskingFlag | None:
    return black_box_beats_white_box(
        inputs.fooled_by, inputs.white_box_attacks, inputs.black_box_attacks, inputs.eps
    )


def _run_randomised(inputs: SanityInputs) -> MaskingFlag | None:
    chosen = subsample(np.arange(len(inputs.x)), SANITY_SAMPLES, inputs.seed)
    return randomised_outputs(inputs.target, inputs.x[chosen])


def _correct_sample(inputs: SanityInputs) -> np.ndarray:
    return subsample(np.flatnonzero(inputs.correct), SANITY_SAMPLES, inputs.seed)


def _run_zero_gradients(inputs: SanityInputs) -> MaskingFlag | None:
    assert isinstance(inputs.target, WhiteBoxTarget)
    chosen = _correct_sample(inputs)
    return zero_gradients(inputs.target, inputs.x[chosen], inputs.y[chosen])


def _run_unbounded(inputs: SanityInputs) -> MaskingFlag | None:
    assert isinstance(inputs.target, WhiteBoxTarget)
    chosen = _correct_sample(inputs)
    return unbounded_not_zero(
        inputs.target, inputs.x[chosen], inputs.y[chosen], inputs.norm, seed=inputs.seed
    )


def _probe_level(inputs: SanityInputs) -> int | None:
    """The eps whose robust accuracy is nearest one half: where extra effort shows most."""
    share = inputs.robust.mean(axis=0)
    candidates = [k for k, e in enumerate(inputs.eps) if e > 0 and inputs.robust[:, k].any()]
    if not candidates:
        return None
    return min(candidates, key=lambda k: abs(share[k] - 0.5))


def _run_more_iterations(inputs: SanityInputs) -> MaskingFlag | None:
    assert isinstance(inputs.target, WhiteBoxTarget) and inputs.main_attack is not None
    level = _probe_level(inputs)
    if level is None:
        return None
    robust = np.flatnonzero(inputs.robust[:, level])
    chosen = subsample(robust, SANITY_SAMPLES, inputs.seed)
    return more_iterations_help(
        inputs.target,
        inputs.x[chosen],
        inputs.y[chosen],
        inputs.main_attack,
        inputs.norm,
        inputs.eps[level],
        robust_share=len(robust) / len(inputs.x),
        constraints=inputs.constraints,
        seed=inputs.seed,
    )


def _has_correct(inputs: SanityInputs) -> bool:
    return bool(inputs.correct.any())


SANITY_CHECKS: tuple[SanityCheck, ...] = (
    SanityCheck(
        "randomised-outputs", needs_white_box=False, run=_run_randomised, applies=lambda i: True
    ),
    SanityCheck(
        "zero-gradients", needs_white_box=True, run=_run_zero_gradients, applies=_has_correct
    ),
    SanityCheck(
        "black-box-beats-white-box",
        needs_white_box=False,
        run=_run_black_box,
        applies=lambda i: bool(i.white_box_attacks and i.black_box_attacks),
    ),
    SanityCheck(
        "unbounded-not-zero",
        needs_white_box=True,
        run=_run_unbounded,
        applies=lambda i: (
            _has_correct(i) and i.constraints is None and i.norm in get_attack("pgd")[0].norms
        ),
    ),
    SanityCheck(
        "more-iterations-help",
        needs_white_box=True,
        run=_run_more_iterations,
        applies=lambda i: (
            i.main_attack is not None
            and i.main_attack.default("steps") is not None
            and _probe_level(i) is not None
        ),
    ),
)
"""Every check, cheapest first."""


def run_sanity_checks(
    inputs: SanityInputs, progress: Callable[[str, int, int], None] | None = None
) -> tuple[list[MaskingFlag], list[str], bool]:
    """Run every check that applies.

    Returns the flags raised, the ids of the checks that ran to the end, and whether Ctrl-C
    stopped them (the checks finished before it still count).
    """
    flags: list[MaskingFlag] = []
    ran: list[str] = []
    todo = [
        check
        for check in SANITY_CHECKS
        if (inputs.target.white_box or not check.needs_white_box) and check.applies(inputs)
    ]
    try:
        for done, check in enumerate(todo):
            if progress is not None:
                progress(f"sanity check {check.check}", done, len(todo))
            flag = check.run(inputs)
            ran.append(check.check)
            if flag is not None:
                flags.append(flag)
    except KeyboardInterrupt:
        return flags, ran, True
    if progress is not None and todo:
        progress("sanity checks", len(todo), len(todo))
    return flags, ran, False
