"""Metric-based membership attacks: one number from the target's own prediction, no reference
models (Yeom et al. 2018; Song & Mittal 2021).

A model is usually more confident, and less wrong, on the records it was trained on. Each attack
here scores a candidate by one such signal of the target's probabilities: ``loss`` (minus the
cross-entropy), ``confidence`` (the true class's probability, on the logit scale ``log p_y -
log(1 - p_y)`` so that float32 outputs rounded to 1 still differ), ``entropy`` (minus the
prediction's entropy) and ``modified-entropy`` (minus Song & Mittal's label-aware entropy). They
cost no query beyond the audit's one pass and need no training, but they ignore that some
records are simply easy: they are weak at low false-positive rates, the regime LiRA and RMIA
were built for. Not for: label-only targets (`label_only`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlwarden.attacks.membership import signals
from mlwarden.attacks.membership._common import read_params, target_probabilities
from mlwarden.attacks.membership.base import AttackFn, MembershipContext, register_attack

YEOM = "Yeom et al. 2018, Privacy Risk in Machine Learning (CSF)"
SONG_MITTAL = (
    "Song & Mittal 2021, Systematic Evaluation of Privacy Risks of ML Models (USENIX Security)"
)


def _signal_attack(name: str, score: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> AttackFn:
    def run(context: MembershipContext) -> np.ndarray:
        read_params(context, name, {})
        return np.asarray(score(target_probabilities(context, name), context.y), dtype=np.float64)

    run.__name__ = name.replace("-", "_")
    run.__doc__ = f"The {name} attack's scores for the context's candidates (higher = member)."
    return run


loss = register_attack("loss", title="Loss threshold", needs="none", reference=YEOM)(
    _signal_attack("loss", lambda p, y: -signals.loss(p, y))
)
confidence = register_attack(
    "confidence", title="Confidence threshold", needs="none", reference=SONG_MITTAL
)(_signal_attack("confidence", signals.logit_scaled_confidence))
entropy = register_attack(
    "entropy", title="Entropy threshold", needs="none", reference=SONG_MITTAL
)(_signal_attack("entropy", lambda p, y: -signals.entropy(p)))
modified_entropy = register_attack(
    "modified-entropy", title="Modified entropy threshold", needs="none", reference=SONG_MITTAL
)(_signal_attack("modified-entropy", lambda p, y: -signals.modified_entropy(p, y)))
