"""Tiny models trained in seconds from scikit-learn's bundled datasets, for the demo, tests and
benchmarks: a CNN on digits (8x8, or upsampled to 28x28) and an MLP on breast_cancer.

No downloads: the data ships with scikit-learn. Deterministic under a seed. Not for: anything
that claims to be a good model; they are small on purpose so that attacks run in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class TrainedModel:
    """A trained model and the held-out data to attack it with."""

    model: nn.Module
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    """Float32 inputs in [0, 1]."""
    y_test: np.ndarray
    input_shape: tuple[int, ...]
    n_classes: int
    feature_names: tuple[str, ...] = ()
    """Column names for tabular data; empty for images."""


class DigitsCNN(nn.Module):
    """Two convolutions and a linear layer; ~98% test accuracy on 8x8 digits."""

    def __init__(self, side: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(32 * (side // 2) ** 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, 10)`` for images ``(n, 1, side, side)`` in [0, 1]."""
        out: torch.Tensor = self.classifier(self.features(x).flatten(1))
        return out


class TabularMLP(nn.Module):
    """A two-layer MLP over standardised features given in [0, 1]."""

    def __init__(self, n_features: int, n_classes: int = 2, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, n_classes)``."""
        out: torch.Tensor = self.net(x)
        return out


def _fit(
    model: nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int, lr: float, seed: int
) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xs), generator=generator)
        for start in range(0, len(xs), 64):
            batch = order[start : start + 64]
            optimiser.zero_grad()
            loss: torch.Tensor = nn.functional.cross_entropy(model(xs[batch]), ys[batch])
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
    model.eval()
    return model


def _split(n: int, seed: int, test_fraction: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = int(n * (1 - test_fraction))
    return order[:cut], order[cut:]


def train_digits_cnn(*, seed: int = 0, side: int = 8, epochs: int = 12) -> TrainedModel:
    """A CNN on scikit-learn's digits; `side` 8 (native) or 28 (bilinear upsampling)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    if side != 8:
        upsampled = nn.functional.interpolate(
            torch.from_numpy(images), size=(side, side), mode="bilinear", align_corners=False
        )
        images = upsampled.clamp(0, 1).numpy()
    labels = digits.target.astype(np.int64)
    train, test = _split(len(labels), seed)
    torch.manual_seed(seed)
    model = _fit(DigitsCNN(side), images[train], labels[train], epochs=epochs, lr=2e-3, seed=seed)
    return TrainedModel(
        model, images[train], labels[train], images[test], labels[test], (1, side, side), 10
    )


def train_breast_cancer_mlp(*, seed: int = 0, epochs: int = 60) -> TrainedModel:
    """An MLP on scikit-learn's breast_cancer, features min-max scaled to [0, 1]."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    features = data.data.astype(np.float64)
    low, high = features.min(axis=0), features.max(axis=0)
    scaled = ((features - low) / (high - low)).astype(np.float32)
    labels = data.target.astype(np.int64)
    train, test = _split(len(labels), seed)
    torch.manual_seed(seed)
    model = _fit(
        TabularMLP(scaled.shape[1]), scaled[train], labels[train], epochs=epochs, lr=3e-3, seed=seed
    )
    return TrainedModel(
        model,
        scaled[train],
        labels[train],
        scaled[test],
        labels[test],
        (scaled.shape[1],),
        2,
        tuple(str(n) for n in data.feature_names),
    )
