"""Attack suites: named recipes of attacks and parameters for `mlwarden.evaluate.robustness`.

A suite is a function of the threat (norm, white-box or not, scores or labels only, feature
constraints) that returns the attacks to run with their parameters. Suites live in a registry
(`register_suite`), so adding one means adding a function, never editing a switch. This module
also resolves an explicit ``attacks=[...]`` list, checks each attack's parameters against its
signature, and sets aside, with the reason, every attack that does not apply to the target.
Not for: running the attacks (`mlwarden.evaluate.robustness`) or judging their results
(`mlwarden.evaluate.masking`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlwarden.attacks.evasion import attack_names, get_attack
from mlwarden.attacks.evasion.base import AttackResult, AttackSpec, Norm
from mlwarden.errors import UsageError
from mlwarden.targets.base import Target

AttackChoice = str | tuple[str, Mapping[str, Any]]
"""An attack name, or a name and its parameters: ``"pgd"``, ``("pgd", {"steps": 100})``."""

AttackChoices = Sequence[AttackChoice] | Mapping[str, Mapping[str, Any]]
"""Attacks to run, in order: a list of `AttackChoice`, or ``{name: params}``."""

RESERVED_PARAMS = frozenset(
    {"target", "x", "y", "eps", "norm", "y_target", "seed", "progress", "constraints"}
)
"""Parameters the evaluation sets itself; a suite or a user cannot pass them per attack."""


@dataclass(frozen=True)
class SuiteRequest:
    """What a suite needs to know about the evaluation to choose its attacks."""

    norm: Norm
    white_box: bool
    """The target gives gradients."""
    scores: bool
    """The target reveals class probabilities (score-based attacks work), not only labels."""
    constrained: bool
    """The inputs carry feature constraints (tabular data): only constraint-aware attacks run."""


@dataclass(frozen=True)
class PlannedAttack:
    """One attack of a plan, resolved: its registry entry and the parameters to call it with."""

    name: str
    spec: AttackSpec
    fn: Callable[..., AttackResult]
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def minimum_norm(self) -> bool:
        """Runs once, unbounded, and yields the smallest fooling perturbation of each sample."""
        return self.spec.minimum_norm

    def accepts(self, parameter: str) -> bool:
        """Whether the attack's public function takes `parameter`."""
        return parameter in inspect.signature(self.fn).parameters

    def budget(self, eps: float | None, norm: Norm, target: Target) -> dict[str, Any] | None:
        """The keyword arguments that set this attack's budget to `eps` under `norm`, or None
        when the attack cannot run inside `eps` at all (a budget below its smallest step)."""
        adapter = BUDGET_ADAPTERS.get(self.name)
        if adapter is not None and eps is not None:
            return adapter[1](eps, target)
        # single-norm attacks (C&W is l2) take no norm argument; the spec has checked it
        return {"eps": eps, "norm": norm} if self.accepts("norm") else {"eps": eps}

    def default(self, parameter: str) -> Any:
        """The value `parameter` takes in this plan: the plan's own, else the function's default
        (None when the function has no default for it)."""
        if parameter in self.params:
            return self.params[parameter]
        found = inspect.signature(self.fn).parameters.get(parameter)
        if found is None or found.default is inspect.Parameter.empty:
            return None
        return found.default


@dataclass(frozen=True)
class Plan:
    """The attacks an evaluation runs, in execution order, and those set aside with why."""

    attacks: list[PlannedAttack]
    skipped: dict[str, str]


def _pixel_budget(eps: float, target: Target) -> dict[str, Any] | None:
    """The pixel attack counts whole pixels (every channel of one position); eps counts values."""
    from mlwarden.attacks.evasion.few_pixel import pixel_layout

    channels, height, width = pixel_layout(target.input_shape)
    pixels = min(int(eps) // channels, height * width)
    return {"pixels": pixels} if pixels >= 1 else None


BUDGET_ADAPTERS: dict[str, tuple[str, Callable[[float, Target], dict[str, Any] | None]]] = {
    "pixel": ("pixels", _pixel_budget),
}
"""attack -> (its budget parameter, eps -> its keyword arguments), for attacks that take their
budget in their own units instead of ``eps`` and ``norm``."""


SuiteFn = Callable[[SuiteRequest], list[tuple[str, dict[str, Any]]]]
"""Build a suite's attack list ``[(attack name, params)]`` for one evaluation."""


@dataclass(frozen=True)
class Suite:
    """A registered suite."""

    name: str
    description: str
    build: SuiteFn


_SUITES: dict[str, Suite] = {}


def register_suite(name: str, description: str) -> Callable[[SuiteFn], SuiteFn]:
    """Register `build` as suite `name`; `description` is one line for help texts."""

    def decorate(build: SuiteFn) -> SuiteFn:
        _SUITES[name] = Suite(name, description, build)
        return build

    return decorate


def suite_names() -> list[str]:
    """Names of every registered suite, cheapest first."""
    return list(_SUITES)


def get_suite(name: str) -> Suite:
    """The suite called `name`, or a `UsageError` listing the known ones."""
    suite = _SUITES.get(name) if isinstance(name, str) else None
    if suite is None:
        raise UsageError(f"unknown suite {name!r}; known suites: {', '.join(suite_names())}")
    return suite


def plan_suite(name: str, request: SuiteRequest) -> Plan:
    """The attacks of suite `name` for `request`, those that do not apply set aside."""
    return _plan(get_suite(name).build(request), request)


def plan_attacks(choices: AttackChoices, request: SuiteRequest) -> Plan:
    """An explicit attack list resolved against the registry: unknown names, unknown or
    reserved parameters and repeated attacks are `UsageError`s."""
    pairs = _choice_pairs(choices)
    if not pairs:
        raise UsageError(
            f"attacks is empty; name at least one of {', '.join(attack_names())} "
            "or leave it out to use a suite"
        )
    names = [name for name, _ in pairs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(
            f"attack {', '.join(repeated)} is listed twice; give each attack once, with the "
            "parameters you want"
        )
    return _plan(pairs, request)


def _choice_pairs(choices: AttackChoices) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(choices, str):
        raise UsageError(f"attacks must be a list of attack names, got the string {choices!r}")
    if isinstance(choices, Mapping):
        items: list[Any] = list(choices.items())
    else:
        items = list(choices)
    pairs: list[tuple[str, dict[str, Any]]] = []
    for item in items:
        if isinstance(item, str):
            pairs.append((item, {}))
        elif (
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], Mapping)
        ):
            pairs.append((item[0], dict(item[1])))
        else:
            raise UsageError(
                f"cannot read attack {item!r}; give a name ('pgd') or a name and a dict of "
                "parameters (('pgd', {'steps': 100}))"
            )
    return pairs


def _plan(pairs: list[tuple[str, dict[str, Any]]], request: SuiteRequest) -> Plan:
    planned: list[PlannedAttack] = []
    skipped: dict[str, str] = {}
    for name, params in pairs:
        spec, fn = get_attack(name)
        _check_params(name, fn, params)
        attack = PlannedAttack(name, spec, fn, params)
        reason = _why_not(attack, request)
        if reason is None:
            planned.append(attack)
        else:
            skipped[name] = reason
    return Plan(sorted(planned, key=_phase), skipped)


def _phase(attack: PlannedAttack) -> int:
    """Execution order: white-box fixed-budget attacks first (the first one sees every sample,
    so its own numbers are exact), then white-box minimum-norm attacks (on every sample), then
    black-box fixed-budget attacks (on what every white-box attack missed, so each of their
    successes is evidence of gradient masking), black-box minimum-norm attacks last. Within a
    phase the given order holds."""
    if attack.spec.white_box:
        return 1 if attack.minimum_norm else 0
    return 3 if attack.minimum_norm else 2


def _check_params(name: str, fn: Callable[..., AttackResult], params: Mapping[str, Any]) -> None:
    own_budget = {BUDGET_ADAPTERS[name][0]} if name in BUDGET_ADAPTERS else set()
    accepted = [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
        and p.name not in RESERVED_PARAMS
        and p.name not in own_budget
    ]
    reserved = sorted(set(params) & (RESERVED_PARAMS | own_budget))
    if reserved:
        raise UsageError(
            f"{name}: {', '.join(reserved)} is set by the evaluation, not per attack; pass it to "
            "robustness() instead"
        )
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise UsageError(
            f"{name} has no parameter {', '.join(unknown)}; its parameters are "
            f"{', '.join(accepted) or 'none'}"
        )


def _why_not(attack: PlannedAttack, request: SuiteRequest) -> str | None:
    spec = attack.spec
    if spec.white_box and not request.white_box:
        return "needs gradients and the target is black-box"
    if request.norm not in spec.norms:
        return f"supports the {', '.join(spec.norms)} norms, not {request.norm}"
    if (not spec.needs_eps and not spec.minimum_norm) or not (
        attack.accepts("eps") or attack.name in BUDGET_ADAPTERS
    ):
        return "has its own threat model (no eps budget) and cannot give robust accuracy at eps"
    if request.constrained and not attack.accepts("constraints"):
        return "cannot respect feature constraints"
    return None


# -- the built-in suites ----------------------------------------------------------------------

QUICK_STEPS = 20
"""APGD steps in the quick suite: a fifth of AutoAttack's 100, enough to converge on small,
undefended models."""

STANDARD_SQUARE_QUERIES = 1000
"""Square queries per sample in the standard suite. AutoAttack uses 5000 (the strong suite
does). Square runs last, only on the samples every white-box attack missed: on a model without
gradient masking it then rarely succeeds at all and spends its whole budget on every such
sample, so it serves as the masking probe rather than the main attack. On masked models it
succeeds early (input rounding on the digits CNN: robust accuracy 97% -> 2% at linf 0.2 within
300 queries). With 1000 queries its cost stays close to targeted APGD's (digits CNN, 450
samples, linf 0.1: 250k queries against 228k); 5000 would make it most of the suite."""


def _gradient_attack(request: SuiteRequest) -> str:
    """APGD where it is defined (linf, l2); PGD with sparse steps stands in for l1."""
    return "pgd" if request.norm == "l1" else "apgd"


def _square_or_decision(
    request: SuiteRequest, square_queries: int, hsj_queries: int
) -> list[tuple[str, dict[str, Any]]]:
    """The black-box part: Square where scores are visible, HopSkipJump with labels only."""
    if request.scores:
        return [("square", {"queries": square_queries})]
    return [("hopskipjump", {"max_queries": hsj_queries})]


@register_suite("quick", "APGD-CE with few steps (Square for black-box targets): a fast estimate")
def _quick(request: SuiteRequest) -> list[tuple[str, dict[str, Any]]]:
    if request.constrained:
        return [("tabular_pgd", {"steps": QUICK_STEPS})]
    if request.norm == "l0":
        return [("pixel", {"generations": 20})]
    if request.white_box:
        return [(_gradient_attack(request), {"steps": QUICK_STEPS})]
    return _square_or_decision(request, square_queries=300, hsj_queries=500)


@register_suite(
    "standard",
    "AutoAttack's standard ensemble (APGD-CE, targeted APGD-DLR, Square) plus DeepFool",
)
def _standard(request: SuiteRequest) -> list[tuple[str, dict[str, Any]]]:
    if request.constrained:
        return [("tabular_pgd", {"steps": 100, "restarts": 2})]
    if request.norm == "l0":
        return [("pixel", {"generations": 100})]
    if not request.white_box:
        attacks = _square_or_decision(request, STANDARD_SQUARE_QUERIES, hsj_queries=2000)
        if request.scores:
            attacks.append(("hopskipjump", {"max_queries": 1000}))
        return attacks
    if request.norm == "l1":
        return [("pgd", {"steps": 100, "restarts": 3})]
    return [
        ("deepfool", {}),
        ("apgd", {"steps": 100}),
        ("apgd_t", {"steps": 100}),
        ("square", {"queries": STANDARD_SQUARE_QUERIES}),
    ]


@register_suite(
    "strong",
    "more steps and restarts, C&W (l2) and PGD with restarts, Square at AutoAttack's 5000 queries",
)
def _strong(request: SuiteRequest) -> list[tuple[str, dict[str, Any]]]:
    if request.constrained:
        return [("tabular_pgd", {"steps": 200, "restarts": 5})]
    if request.norm == "l0":
        return [("pixel", {"generations": 300})]
    if not request.white_box:
        black_box = _square_or_decision(request, square_queries=5000, hsj_queries=5000)
        if request.scores:
            black_box.append(("hopskipjump", {"max_queries": 5000}))
        return black_box
    if request.norm == "l1":
        return [("pgd", {"steps": 200, "restarts": 10})]
    attacks: list[tuple[str, dict[str, Any]]] = [("deepfool", {})]
    if request.norm == "l2":
        attacks.append(("cw", {}))
    attacks += [
        ("apgd", {"steps": 200, "restarts": 5}),
        ("apgd_t", {"steps": 200, "restarts": 2}),
        ("pgd", {"steps": 200, "restarts": 10}),
        ("square", {"queries": 5000}),
    ]
    return attacks
