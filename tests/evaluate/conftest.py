"""Fixtures for the evaluation tests: a small slice of digits and models that mask gradients.

Each masking model wraps the trained digits CNN and breaks attacks the way published defences
did by accident: rounding the input (shattered, all-zero gradients), scaling the logits so the
softmax saturates (cross-entropy gradients underflow to zero), and noise at inference
(randomised outputs).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

N_SAMPLES = 48


class Quantised(nn.Module):
    """Rounds every input value to a quarter before the model: gradients are exactly zero."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(torch.round(x * 4) / 4)
        return out


class Saturated(nn.Module):
    """Logits scaled by 1e4: the softmax is one-hot in float32 and cross-entropy is flat."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x) * 1e4
        return out


class Noisy(nn.Module):
    """Gaussian noise on the logits at inference: two identical queries answer differently."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x)
        return out + 0.5 * torch.randn(out.shape)


@pytest.fixture
def digits_sample(digits_model):  # type: ignore[no-untyped-def]
    """The first `N_SAMPLES` held-out digits and their labels."""
    return digits_model.x_test[:N_SAMPLES], digits_model.y_test[:N_SAMPLES]


def _wrap(module: nn.Module, digits_model):  # type: ignore[no-untyped-def]
    import mlwarden.targets

    return mlwarden.targets.target(module, input_shape=digits_model.input_shape)


@pytest.fixture
def quantised_target(digits_model):  # type: ignore[no-untyped-def]
    """The digits CNN behind input rounding."""
    return _wrap(Quantised(digits_model.model), digits_model)


@pytest.fixture
def saturated_target(digits_model):  # type: ignore[no-untyped-def]
    """The digits CNN with logits scaled by 1e4."""
    return _wrap(Saturated(digits_model.model), digits_model)


@pytest.fixture
def noisy_target(digits_model):  # type: ignore[no-untyped-def]
    """The digits CNN with noise on its logits."""
    return _wrap(Noisy(digits_model.model), digits_model)


@pytest.fixture
def black_box_digits(digits_model):  # type: ignore[no-untyped-def]
    """The digits CNN behind a plain callable: probabilities only, no gradients."""
    import numpy as np

    import mlwarden.targets

    model = digits_model.model.eval()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()

    return mlwarden.targets.target(predict, input_shape=digits_model.input_shape)
