"""Membership inference (ML04): does the model give away who was in its training data?

    from mlwarden.attacks.membership import audit
    result = audit(model, members=(x_train, y_train), non_members=(x_test, y_test),
                   population=(x_extra, y_extra), train_fn=LogisticRegression(), n_reference=8)
    best = result.best(fpr=0.001)
    print(best.attack, best.tpr_at_fpr[0.001], best.auc, best.epsilon.lower)

Attacks: metric-based (``loss``, ``confidence``, ``entropy``, ``modified-entropy``), the shadow-
model attack (``shadow``), LiRA (``lira-offline``, ``lira-online``), RMIA (``rmia``) and a
label-only attack (``label-only``). Not for: model inversion (`mlwarden.attacks.inversion`).
"""

from __future__ import annotations

from mlwarden.attacks.membership.audit import MembershipAudit, audit
from mlwarden.attacks.membership.base import (
    AttackOutcome,
    EpsilonBound,
    ExposedRecord,
    MembershipAttack,
    MembershipContext,
    ReferenceSet,
    attack_names,
    get_attack,
    register_attack,
)

__all__ = [
    "AttackOutcome",
    "EpsilonBound",
    "ExposedRecord",
    "MembershipAttack",
    "MembershipAudit",
    "MembershipContext",
    "ReferenceSet",
    "attack_names",
    "audit",
    "get_attack",
    "register_attack",
]
