"""The privacy checks' own results: per-class inversion verdicts and defence comparisons.

Plain values the checks compute and the figures draw, so that `mlwarden.report.figures` never
computes and never imports an attack. Not for: the attacks' results
(`mlwarden.attacks.membership.MembershipAudit`, `mlwarden.attacks.inversion.InversionResult`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ClassReconstruction:
    """One class's reconstruction and how close it came to what that class really looks like."""

    label: int
    image: np.ndarray
    """The reconstructed input, ``input_shape``, in input units."""
    confidence: float
    """The target's probability of `label` on `image`, 0..1."""
    class_mean: np.ndarray | None
    """Mean of the reference records of this class; None without reference records of it."""
    distance: float | None
    """Root-mean-square distance from `image` to `class_mean`, as a fraction of the input
    range (0 = identical, 1 = as far apart as the range allows); None without a class mean."""
    baseline: float | None
    """The same distance from `class_mean` to the mean of all reference records: what an
    attacker who knows the data but not the model would guess; None without a class mean."""
    reconstructed: bool
    """Accepted with high confidence and closer to the class mean than the baseline."""

    @property
    def ratio(self) -> float | None:
        """`distance` / `baseline` (below 1: the model taught the attacker something)."""
        if self.distance is None or not self.baseline:
            return None
        return self.distance / self.baseline


@dataclass(frozen=True)
class DefenceRow:
    """The membership audit of one defended model (or of the model as deployed)."""

    defence: str
    """``none`` for the model as deployed, else the spec (``top-k:1``, ``dp:epsilon=1,...``)."""
    attacks: tuple[str, ...]
    best_attack: str
    """The attack with the highest TPR at 0.1% FPR."""
    tpr_at_0_1: float
    """Highest TPR at 0.1% FPR over the attacks, 0..1."""
    tpr_at_1: float
    """Highest TPR at 1% FPR over the attacks, 0..1."""
    auc: float
    """Highest AUC over the attacks, 0..1."""
    epsilon_lower: float
    """Highest empirical epsilon lower bound over the attacks, >= 0."""
    member_accuracy: float | None
    non_member_accuracy: float | None
    utility_cost: float | None
    """Accuracy lost on the non-members against the deployed model (positive = worse); 0 for
    the deployed model; None when an accuracy is unknown."""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DefenceComparison:
    """The model as deployed, then each defence, attacked the same way."""

    baseline: DefenceRow
    rows: tuple[DefenceRow, ...] = field(default_factory=tuple)

    def all_rows(self) -> tuple[DefenceRow, ...]:
        """The baseline first, then the defences in the order given."""
        return (self.baseline, *self.rows)
