"""Membership audits and inversions with known numbers, built without running an attack."""

from __future__ import annotations

import numpy as np

from mlwarden.attacks.inversion import InversionResult, Reconstruction
from mlwarden.attacks.membership import AttackOutcome, EpsilonBound, ExposedRecord, MembershipAudit


def outcome(
    attack: str,
    *,
    tpr_low: float,
    tpr_1: float | None = None,
    auc: float = 0.7,
    epsilon_lower: float = 0.5,
    n: int = 200,
    exposed: int = 3,
) -> AttackOutcome:
    """An outcome with the given TPR at 0.1% and 1% FPR; the ROC passes through both."""
    tpr_1 = max(tpr_low, tpr_1 if tpr_1 is not None else 2 * tpr_low)
    fpr = np.array([0.0, 0.001, 0.01, 0.1, 1.0])
    tpr = np.array([0.0, tpr_low, tpr_1, max(tpr_1, 0.3), 1.0])
    is_member = np.concatenate([np.ones(n, bool), np.zeros(n, bool)])
    return AttackOutcome(
        attack=attack,
        title=f"{attack} attack",
        scores=np.linspace(1, 0, 2 * n),
        is_member=is_member,
        fpr=fpr,
        tpr=tpr,
        auc=auc,
        tpr_at_fpr={0.01: tpr_1, 0.001: tpr_low},
        advantage=0.3,
        epsilon=EpsilonBound(
            value=epsilon_lower + 0.4,
            lower=epsilon_lower,
            upper=float("inf"),
            confidence=0.95,
            delta=0.0,
        ),
        exposed=[
            ExposedRecord(index=i * 7, score=1.0 - i / 10, rank=i + 1, flagged_at_fpr=0.001)
            for i in range(exposed)
        ],
        queries=2 * n,
        seconds=0.01,
    )


def membership_audit(
    *outcomes: AttackOutcome,
    n_members: int = 200,
    n_non_members: int = 200,
    member_accuracy: float | None = 1.0,
    non_member_accuracy: float | None = 0.8,
) -> MembershipAudit:
    return MembershipAudit(
        outcomes={o.attack: o for o in outcomes},
        n_members=n_members,
        n_non_members=n_non_members,
        n_population=400,
        n_reference=4,
        reference_mode="offline",
        member_accuracy=member_accuracy,
        non_member_accuracy=non_member_accuracy,
        reference_seconds=1.5,
    )


def reconstruction(
    label: int,
    *,
    confidence: float,
    distance: float | None,
    baseline: float | None,
    shape: tuple[int, ...] = (1, 8, 8),
) -> Reconstruction:
    image = np.full(shape, 0.25 + 0.05 * label, dtype=np.float32)
    closer = None if distance is None or baseline is None else distance < baseline
    return Reconstruction(
        label=label,
        image=image,
        confidence=confidence,
        predicted=label if confidence > 0.5 else (label + 1) % 10,
        distance_to_class_mean=distance,
        distance_to_other_means=None,
        baseline_distance=baseline,
        nearest_class=label if closer else None,
        distance_to_nearest_record=distance,
        nearest_record=0 if distance is not None else None,
        steps=10,
        queries=10,
    )


def inversion_result(*items: Reconstruction, method: str = "mi-face") -> InversionResult:
    return InversionResult(
        reconstructions=list(items),
        method=method,  # type: ignore[arg-type]
        queries=sum(r.queries for r in items),
        seconds=0.1,
        start=np.zeros_like(items[0].image),
    )
