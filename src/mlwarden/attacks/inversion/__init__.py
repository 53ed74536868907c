"""Model inversion (ML03): reconstruct what a model has learned each class looks like.

    from mlwarden.attacks.inversion import invert
    result = invert(model, reference=(x_train, y_train))
    for r in result.reconstructions:
        print(r.label, r.confidence, r.distance_to_class_mean, r.baseline_distance)

MI-Face (Fredrikson et al. 2015) follows the gradients of a white-box target; the black-box
method estimates them from queries. Not for: membership (`mlwarden.attacks.membership`) or
recovering a sensitive feature of a known record (`mlwarden.attacks.attribute`).
"""

from __future__ import annotations

from mlwarden.attacks.inversion.base import InversionResult, Reconstruction
from mlwarden.attacks.inversion.runner import invert

__all__ = ["InversionResult", "Reconstruction", "invert"]
