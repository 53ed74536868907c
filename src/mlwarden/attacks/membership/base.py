"""Membership inference: the shared types, the attack registry and the attack contract.

An attack turns what it can learn about each *candidate* record (the members and non-members the
auditor knows the truth about) into a score: higher means "more likely a member". Scores are all
an attack returns; the audit (`audit.py`) turns them into ROC curves, TPR at low FPR, attacker
advantage and an empirical epsilon (`metrics.py`), the same way for every attack. Attacks that
need reference models read them from a `ReferenceSet` the audit trains once and shares
(`reference.py`). Not for: training (`reference`), metrics (`metrics`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mlwarden.errors import UsageError

if TYPE_CHECKING:
    from mlwarden.audit.runner import ProgressFn
    from mlwarden.targets.base import Target

ReferenceMode = Literal["online", "offline"]
"""``online``: each reference model trains on a random half of candidates + population, so every
candidate is IN for about half of them (LiRA online). ``offline``: reference models train on
halves of the population only, so every candidate is OUT (LiRA offline, RMIA, shadow models)."""

Needs = Literal["none", "reference", "online-reference"]


@dataclass(frozen=True)
class ReferenceSet:
    """What reference models answered, computed once per audit and shared by the attacks.

    ``k`` models; ``n_c`` candidates (members first, then non-members, as in the audit);
    ``n_p`` population records. Probabilities are float32 rows summing to 1.
    """

    mode: ReferenceMode
    probs_candidates: np.ndarray
    """``(k, n_c, n_classes)``: each reference model's probabilities on every candidate."""
    probs_population: np.ndarray
    """``(k, n_p, n_classes)``: each reference model's probabilities on every population record."""
    in_candidates: np.ndarray
    """``(k, n_c)`` bool: candidate i was in reference model k's training set."""
    in_population: np.ndarray
    """``(k, n_p)`` bool: population record j was in reference model k's training set."""
    train_seconds: float = 0.0
    """Wall time spent training (0 for models read back from the cache)."""
    cached: int = 0
    """How many of the ``k`` models were read back from the cache instead of trained."""

    @property
    def k(self) -> int:
        """Number of reference models."""
        return int(self.probs_candidates.shape[0])


@dataclass
class MembershipContext:
    """Everything an attack may use. Candidates are members first, then non-members."""

    target: Target
    x: np.ndarray
    """Candidate inputs ``(n_c, *input_shape)`` in the target's input units."""
    y: np.ndarray
    """Candidate labels ``(n_c,)`` int64 class indices."""
    population: tuple[np.ndarray, np.ndarray]
    """Records from the same distribution, disjoint from the candidates: ``(x_p, y_p)``."""
    target_probs: np.ndarray | None
    """The target's probabilities on the candidates ``(n_c, n_classes)``, queried once by the
    audit; None for label-only targets."""
    reference: ReferenceSet | None = None
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    """Per-attack options given by the user (``{"augmentations": 16}`` ...)."""
    progress: ProgressFn | None = field(default=None, repr=False)


AttackFn = Callable[[MembershipContext], np.ndarray]
"""``(context) -> scores``: float64 ``(n_c,)``, higher = more likely member, finite."""


@dataclass(frozen=True)
class MembershipAttack:
    """A registered membership inference attack."""

    name: str
    """Stable id (``loss``, ``lira-online``, ``rmia`` ...)."""
    title: str
    """What a report calls it."""
    needs: Needs
    """``none`` (the target's outputs only), ``reference`` (any `ReferenceSet`) or
    ``online-reference`` (reference models trained with and without each candidate)."""
    scores_needed: bool
    """True when the attack needs probabilities; False for label-only attacks."""
    run: AttackFn
    reference: str = ""
    """Paper it implements (shown in reports)."""


BUILTIN_ATTACK_MODULES: dict[str, str] = {
    "loss": "mlwarden.attacks.membership.metric",
    "confidence": "mlwarden.attacks.membership.metric",
    "entropy": "mlwarden.attacks.membership.metric",
    "modified-entropy": "mlwarden.attacks.membership.metric",
    "shadow": "mlwarden.attacks.membership.shadow",
    "lira-offline": "mlwarden.attacks.membership.lira",
    "lira-online": "mlwarden.attacks.membership.lira",
    "rmia": "mlwarden.attacks.membership.rmia",
    "label-only": "mlwarden.attacks.membership.label_only",
}
"""Attack name -> the module that registers it (imported when the attack is asked for)."""

_ATTACKS: dict[str, MembershipAttack] = {}


def register_attack(
    name: str, *, title: str, needs: Needs, scores_needed: bool = True, reference: str = ""
) -> Callable[[AttackFn], AttackFn]:
    """Register the decorated function as membership attack `name`."""

    def decorate(fn: AttackFn) -> AttackFn:
        _ATTACKS[name] = MembershipAttack(name, title, needs, scores_needed, fn, reference)
        return fn

    return decorate


def get_attack(name: str) -> MembershipAttack:
    """The attack called `name`, or a `UsageError` naming the known ones."""
    if name not in _ATTACKS and name in BUILTIN_ATTACK_MODULES:
        importlib.import_module(BUILTIN_ATTACK_MODULES[name])
    try:
        return _ATTACKS[name]
    except KeyError:
        known = ", ".join(sorted(set(BUILTIN_ATTACK_MODULES) | set(_ATTACKS)))
        raise UsageError(f"unknown membership attack {name!r}; known: {known}") from None


def attack_names() -> list[str]:
    """Every built-in and registered attack name."""
    return sorted(set(BUILTIN_ATTACK_MODULES) | set(_ATTACKS))


@dataclass(frozen=True)
class EpsilonBound:
    """An empirical lower bound on the (epsilon, delta)-DP of the training procedure."""

    value: float
    """Point estimate at the best threshold, error rates estimated as (errors + 1/2) / (n + 1)
    (always finite)."""
    lower: float
    """Lower bound at `confidence` (Clopper-Pearson intervals on FPR and FNR); >= 0."""
    upper: float
    """Upper end of the same interval (may be inf when an error rate is 0)."""
    confidence: float
    delta: float


@dataclass(frozen=True)
class ExposedRecord:
    """A member the attack singles out with near certainty."""

    index: int
    """Index into the ``members`` arrays the user passed."""
    score: float
    rank: int
    """1 = the highest-scoring member."""
    flagged_at_fpr: float | None
    """The smallest FPR level (of 0.001, 0.01, 0.1) whose threshold flags it; None if none."""


@dataclass
class AttackOutcome:
    """One attack's result on the candidates, with every metric the report shows."""

    attack: str
    title: str
    scores: np.ndarray
    """``(n_c,)`` higher = more likely member; members first."""
    is_member: np.ndarray
    """``(n_c,)`` bool ground truth."""
    fpr: np.ndarray
    tpr: np.ndarray
    """ROC curve points (increasing FPR)."""
    auc: float
    tpr_at_fpr: dict[float, float]
    """``{0.01: ..., 0.001: ...}``: largest TPR whose FPR is at most the key."""
    advantage: float
    """max(TPR - FPR) over thresholds (Yeom et al.'s membership advantage)."""
    epsilon: EpsilonBound
    exposed: list[ExposedRecord]
    queries: int = 0
    """Samples the target answered for this attack."""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
