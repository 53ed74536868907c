"""Per-record membership signals: their formulas, and finite values on saturated outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlwarden.attacks.membership import signals

PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [1 / 3, 1 / 3, 1 / 3]])
LABELS = np.array([0, 1, 2])


def test_moderate_probabilities_follow_the_textbook_formulas() -> None:
    p_y = np.array([0.7, 0.3, 1 / 3])
    np.testing.assert_allclose(signals.confidence(PROBS, LABELS), p_y)
    np.testing.assert_allclose(signals.loss(PROBS, LABELS), -np.log(p_y))
    np.testing.assert_allclose(
        signals.logit_scaled_confidence(PROBS, LABELS), np.log(p_y / (1 - p_y))
    )
    np.testing.assert_allclose(signals.entropy(PROBS), -(PROBS * np.log(PROBS)).sum(axis=1))
    expected = [
        -(1 - p[y]) * math.log(p[y]) - sum(p[i] * math.log(1 - p[i]) for i in range(3) if i != y)
        for p, y in zip(PROBS, LABELS, strict=True)
    ]
    np.testing.assert_allclose(signals.modified_entropy(PROBS, LABELS), expected)


def test_entropy_is_zero_for_one_hot_and_log_c_for_uniform() -> None:
    probs = np.array([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    np.testing.assert_allclose(signals.entropy(probs), [0.0, math.log(4)], atol=1e-12)


def test_modified_entropy_punishes_confident_mistakes_unlike_entropy() -> None:
    right = np.array([[0.98, 0.01, 0.01]])
    wrong = np.array([[0.01, 0.98, 0.01]])
    label = np.array([0])
    assert signals.entropy(right)[0] == pytest.approx(signals.entropy(wrong)[0])
    assert (
        signals.modified_entropy(wrong, label)[0] > 10 * signals.modified_entropy(right, label)[0]
    )


def test_saturated_float32_outputs_keep_their_order_and_stay_finite() -> None:
    # p_y rounds to exactly 1 in float32; the other class still says how sure the model is
    probs = np.array([[1.0, 1e-20], [1.0, 1e-10], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    labels = np.array([0, 0, 0, 0])
    for signal in (signals.loss, signals.modified_entropy):
        values = signal(probs, labels)
        assert np.isfinite(values).all()
        assert values[0] < values[1] < values[2]
    phi = signals.logit_scaled_confidence(probs, labels)
    assert np.isfinite(phi).all()
    assert phi[3] > phi[0] > phi[1] > 0 > phi[2]
    assert phi[0] == pytest.approx(math.log(1e20), rel=1e-6)
    assert phi[3] == pytest.approx(-math.log(signals.PROB_FLOOR))


def test_signals_broadcast_over_a_stack_of_reference_models() -> None:
    stack = np.stack([PROBS, PROBS[::-1]])
    phi = signals.logit_scaled_confidence(stack, LABELS)
    assert phi.shape == (2, 3)
    np.testing.assert_allclose(phi[0], signals.logit_scaled_confidence(PROBS, LABELS))
    np.testing.assert_allclose(phi[1], signals.logit_scaled_confidence(PROBS[::-1], LABELS))
    assert signals.modified_entropy(stack, LABELS).shape == (2, 3)
