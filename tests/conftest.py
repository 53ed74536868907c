"""Fixtures shared across the suite: tiny models trained once per test session (per worker)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def digits_model():  # type: ignore[no-untyped-def]
    """A CNN on 8x8 digits (~98% test accuracy), with held-out data in [0, 1]."""
    pytest.importorskip("torch")
    from mlwarden.demo.models import train_digits_cnn

    return train_digits_cnn(seed=0)


@pytest.fixture(scope="session")
def cancer_model():  # type: ignore[no-untyped-def]
    """An MLP on breast_cancer with features scaled to [0, 1]."""
    pytest.importorskip("torch")
    from mlwarden.demo.models import train_breast_cancer_mlp

    return train_breast_cancer_mlp(seed=0)


@pytest.fixture
def digits_target(digits_model):  # type: ignore[no-untyped-def]
    """A fresh white-box target over the digits CNN (query counter at zero)."""
    import mlwarden.targets

    return mlwarden.targets.target(digits_model.model, input_shape=digits_model.input_shape)


@pytest.fixture
def cancer_target(cancer_model):  # type: ignore[no-untyped-def]
    """A fresh white-box target over the breast-cancer MLP."""
    import mlwarden.targets

    return mlwarden.targets.target(cancer_model.model, input_shape=cancer_model.input_shape)


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread per test process: `make test` runs two workers on two cores, and two
    intra-op threads each make them thrash (prediction 5-10x slower under load)."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
