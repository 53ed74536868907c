"""The privacy audit (OWASP ML03 and ML04): membership inference, model inversion, attribute
inference and the defences against them, measured before and after.

    from mlwarden.audit import AuditContext, run_audit
    from mlwarden.privacy import PrivacySettings, parse_defences

    settings = PrivacySettings(members=(x_train, y_train), non_members=(x_test, y_test),
                               population=(x_extra, y_extra), train_fn=train,
                               defences=parse_defences(["top-k:1", "label-only"]))
    report = run_audit(AuditContext(target=target, privacy=settings),
                       only=["ml04.membership", "ml03.inversion"])

`settings` holds what the checks are given, `check` registers ``ml04.membership`` and
``ml03.inversion``, `defences` re-runs the membership audit against defended models. Not for:
the attacks (`mlwarden.attacks.membership`, `.inversion`, `.attribute`) or the defences
themselves (`mlwarden.defenses`).
"""

from __future__ import annotations

from mlwarden.privacy.results import ClassReconstruction, DefenceComparison, DefenceRow
from mlwarden.privacy.settings import (
    DefenceSpec,
    InversionSettings,
    PrivacySettings,
    PrivacyThresholds,
    load_train_fn,
    parse_defence,
    parse_defences,
)

__all__ = [
    "ClassReconstruction",
    "DefenceComparison",
    "DefenceRow",
    "DefenceSpec",
    "InversionSettings",
    "PrivacySettings",
    "PrivacyThresholds",
    "load_train_fn",
    "parse_defence",
    "parse_defences",
]
