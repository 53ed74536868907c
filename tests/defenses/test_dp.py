"""DP-SGD training: the budget is spent as asked, the model still learns, bad models are named."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

from mlwarden.errors import InputError, UsageError

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")

from torch import nn  # noqa: E402

from mlwarden.defenses.dp import DPResult, DPSettings, train_dp  # noqa: E402

Data = tuple[np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def cancer() -> dict[str, Data]:
    """breast_cancer scaled to [0, 1]: 300 training and 200 held-out records."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x = (data.data - data.data.min(axis=0)) / (data.data.max(axis=0) - data.data.min(axis=0))
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order].astype(np.float32), data.target[order]
    return {"train": (x[:300], y[:300]), "test": (x[300:500], y[300:500])}


def small_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 2))


def normalised_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(30, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))


def accuracy(module: nn.Module, data: Data) -> float:
    with torch.no_grad():
        predicted = module(torch.from_numpy(data[0])).argmax(dim=1).numpy()
    return float((predicted == data[1]).mean())


def fit(cancer: dict[str, Data], **options: Any) -> DPResult:
    settings: dict[str, Any] = {
        "settings": DPSettings(noise_multiplier=1.0),
        "epochs": 1,
        "batch_size": 60,
        "lr": 1.0,
        "seed": 0,
    }
    model = options.pop("model", small_mlp)
    settings.update(options)
    return train_dp(model, *cancer["train"], **settings)


def test_epsilon_one_is_spent_and_the_model_beats_chance(cancer) -> None:  # type: ignore[no-untyped-def]
    result = fit(cancer, settings=DPSettings(epsilon=1.0), epochs=10)
    assert 0.9 < result.epsilon_spent <= 1.0 + 0.02
    assert result.delta == 1e-5 and result.noise_multiplier > 1.0
    majority = max(cancer["test"][1].mean(), 1 - cancer["test"][1].mean())
    assert accuracy(result.module, cancer["test"]) > max(0.8, majority + 0.1)
    assert len(result.accuracy_history) == 10 and len(result.loss_history) == 10
    assert result.notes == []


def test_the_result_is_a_plain_module_in_eval_mode(cancer) -> None:  # type: ignore[no-untyped-def]
    module = fit(cancer).module
    assert type(module) is nn.Sequential and not module.training
    assert all(not hasattr(p, "grad_sample") for p in module.parameters())
    assert all(not layer._forward_hooks and not layer._backward_hooks for layer in module.modules())


def test_more_noise_spends_less_epsilon(cancer) -> None:  # type: ignore[no-untyped-def]
    quiet = fit(cancer, settings=DPSettings(noise_multiplier=0.8))
    loud = fit(cancer, settings=DPSettings(noise_multiplier=4.0))
    assert loud.noise_multiplier == 4.0
    assert 0 < loud.epsilon_spent < quiet.epsilon_spent


def test_training_is_deterministic_in_the_seed(cancer) -> None:  # type: ignore[no-untyped-def]
    first, again, other = (fit(cancer, seed=s).module for s in (3, 3, 4))
    pairs = list(zip(first.parameters(), again.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in pairs)
    assert not all(
        torch.equal(a, b) for a, b in zip(first.parameters(), other.parameters(), strict=True)
    )


def test_batchnorm_is_replaced_and_noted(cancer) -> None:  # type: ignore[no-untyped-def]
    result = fit(cancer, model=normalised_mlp)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in result.module.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in result.module.modules())
    assert result.notes == ["replaced BatchNorm by GroupNorm for DP-SGD: 1 (BatchNorm1d)"]


def test_batchnorm_is_refused_when_replacing_is_off(cancer) -> None:  # type: ignore[no-untyped-def]
    settings = DPSettings(epsilon=1.0, replace_batchnorm=False)
    with pytest.raises(UsageError, match=r"BatchNorm layers \(1 \(BatchNorm1d\)\).*GroupNorm"):
        fit(cancer, model=normalised_mlp, settings=settings)


def test_a_large_delta_is_noted(cancer) -> None:  # type: ignore[no-untyped-def]
    result = fit(cancer, settings=DPSettings(noise_multiplier=1.0, delta=0.01))
    assert any("not below 1 / 300" in note for note in result.notes)


def test_missing_opacus_names_the_extra(cancer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "opacus", None)
    with pytest.raises(UsageError, match=r"pip install mlwarden\[dp\]"):
        fit(cancer)
    assert DPSettings(epsilon=2.0).epsilon == 2.0  # settings need no Opacus


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one of epsilon"),
        ({"epsilon": 1.0, "noise_multiplier": 1.0}, "exactly one of epsilon"),
        ({"epsilon": 0.0}, "epsilon must be > 0"),
        ({"epsilon": float("inf")}, "epsilon must be > 0"),
        ({"noise_multiplier": -1.0}, "noise_multiplier must be > 0"),
        ({"epsilon": 1.0, "delta": 0.0}, r"delta must be in \(0, 1\)"),
        ({"epsilon": 1.0, "max_grad_norm": 0.0}, "max_grad_norm must be > 0"),
    ],
)
def test_bad_privacy_settings_say_what_is_wrong(options, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match=message):
        DPSettings(**options)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"epochs": 0}, UsageError, "epochs must be a whole number"),
        ({"batch_size": 301}, UsageError, "between 1 and the 300 training records"),
        ({"lr": -1.0}, UsageError, "lr must be > 0"),
        ({"optimizer": "lbfgs"}, UsageError, "adam or sgd"),
        ({"model": nn.Linear}, UsageError, "factory Linear raised TypeError"),
        ({"model": "not a model"}, UsageError, "needs a torch.nn.Module"),
        ({"model": dict}, UsageError, "returned a dict"),
        ({"model": lambda: nn.Linear(30, 1)}, UsageError, r"n_classes > 1"),
        ({"model": lambda: nn.Linear(5, 2)}, UsageError, r"inputs of shape \(n, 30\)"),
    ],
)
def test_bad_training_settings_say_what_is_wrong(cancer, options, error, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        fit(cancer, **options)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.zeros((0, 30)), np.zeros(0, int), "n >= 1"),
        (np.full((4, 30), np.nan), np.zeros(4, int), "NaN"),
        (np.zeros((4, 30)), np.zeros(3, int), r"expected \(4,\) integer class indices"),
        (np.zeros((4, 30)), np.zeros(4), "integer class indices"),
        (np.zeros((4, 30)), -np.ones(4, int), ">= 0"),
    ],
)
def test_bad_training_data_is_an_input_error(x, y, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=message):
        train_dp(small_mlp, x, y, settings=DPSettings(epsilon=1.0), epochs=1, batch_size=1, lr=0.1)


def test_a_module_is_trained_in_place(cancer) -> None:  # type: ignore[no-untyped-def]
    module = small_mlp()
    before = [p.detach().clone() for p in module.parameters()]
    result = fit(cancer, model=module)
    assert result.module is module
    assert not all(torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def test_torch_trainer_with_dp_settings_trains_with_dp_sgd(cancer) -> None:  # type: ignore[no-untyped-def]
    from mlwarden.attacks.membership.reference import TorchTrainer

    settings = DPSettings(noise_multiplier=1.0)
    trainer = TorchTrainer(small_mlp, epochs=1, lr=0.5, batch_size=60, optimizer="sgd", dp=settings)
    through_trainer = trainer(*cancer["train"], 5)
    direct = train_dp(
        small_mlp, *cancer["train"], settings=settings, epochs=1, batch_size=60, lr=0.5, seed=5
    ).module
    pairs = zip(through_trainer.parameters(), direct.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    plain = TorchTrainer(small_mlp, epochs=1, lr=0.5, batch_size=60, optimizer="sgd")
    undefended = plain(*cancer["train"], 5)
    pairs = zip(through_trainer.parameters(), undefended.parameters(), strict=True)
    assert not all(torch.equal(a, b) for a, b in pairs)


def failing_factory() -> nn.Module:
    raise RuntimeError("no such layer")


def test_a_failing_factory_is_named_once(cancer) -> None:  # type: ignore[no-untyped-def]
    from mlwarden.attacks.membership.reference import TorchTrainer

    trainer = TorchTrainer(failing_factory, dp=DPSettings(noise_multiplier=1.0))
    with pytest.raises(UsageError) as caught:
        trainer(*cancer["train"], 0)
    assert str(caught.value).startswith(
        f"TorchTrainer factory {__name__}:failing_factory raised RuntimeError: no such layer"
    )
