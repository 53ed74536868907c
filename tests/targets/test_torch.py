"""The PyTorch target's attack session: eval mode and frozen weights, always restored."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import mlwarden.targets
from mlwarden.attacks.evasion.base import AttackSpec, AttackState, run_attack
from mlwarden.targets.torch import TorchTarget

SPEC = AttackSpec(name="test", title="test attack", white_box=True, norms=("linf",))


class Net(torch.nn.Module):
    """A small classifier that counts calls to `train` (``eval()`` is ``train(False)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
        self.head = torch.nn.Linear(8, 3)
        self.train_calls = 0

    def train(self, mode: bool = True) -> Net:
        self.train_calls += 1
        return super().train(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.body(x))
        return out


def _target(model: torch.nn.Module) -> TorchTarget:
    return TorchTarget(model, input_shape=(4,), n_classes=3)


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((6, 4), dtype=np.float32), rng.integers(0, 3, 6)


def test_a_raising_attack_leaves_weights_and_mode_as_they_were() -> None:
    model = Net().train()
    model.head.bias.requires_grad_(False)  # frozen by the user: must stay frozen
    seen: list[bool] = []

    def explode(state: AttackState, target: Any) -> None:
        seen.append(model.training or model.body[0].training)
        seen.extend(p.requires_grad for p in model.parameters())
        raise RuntimeError("attack bug")

    x, y = _data()
    with pytest.raises(RuntimeError, match="attack bug"):
        run_attack(explode, SPEC, _target(model), x, y, eps=0.1, norm="linf")
    assert not any(seen)
    assert model.training and model.body[0].training
    assert [p.requires_grad for p in model.parameters()] == [True, True, True, False]


def test_a_model_in_eval_mode_is_not_switched_back_and_forth() -> None:
    model = Net().eval()
    target = _target(model)
    model.train_calls = 0
    with target.session():
        assert not any(p.requires_grad for p in model.parameters())
    assert model.train_calls == 0  # eval() and train() walk the whole model: skipped
    assert all(p.requires_grad for p in model.parameters())
    assert not model.training


def test_a_submodule_left_in_training_mode_is_put_in_eval_mode_and_back() -> None:
    model = Net().eval()
    model.body.train()
    target = _target(model)
    with target.session():
        assert not any(m.training for m in model.modules())
    assert not model.training and not model.head.training
    assert model.body.training and model.body[0].training


@pytest.mark.parametrize("plain", [True, False], ids=["plain modules", "train overridden"])
def test_each_module_gets_its_own_mode_back(plain: bool) -> None:
    # fine-tuning with a frozen BatchNorm: the attack must not unfreeze it
    model: torch.nn.Module = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
    )
    if not plain:
        model = torch.nn.Sequential(Net(), torch.nn.BatchNorm1d(3))
    model.train()
    model[1].eval()
    before = [m.training for m in model.modules()]
    target = _target(model)
    x, y = _data()
    run_attack(lambda state, target: None, SPEC, target, x, y, eps=0.1, norm="linf")
    assert [m.training for m in model.modules()] == before
    stats = model[1].running_mean.clone()
    target.predict_proba(x)
    assert torch.equal(model[1].running_mean, stats)  # eval mode inside: statistics untouched


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_torchscript_model_runs_in_eval_mode_and_is_restored() -> None:
    scripted = torch.jit.script(
        torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.9), torch.nn.Linear(16, 3))
    )
    scripted.train()
    target = _target(scripted)
    x, _ = _data()
    # dropout at p=0.9 would change every answer: two equal answers mean eval mode took
    np.testing.assert_array_equal(target.predict_proba(x), target.predict_proba(x))
    assert all(m.training for m in scripted.modules())


def test_inputs_the_attack_writes_into_are_a_copy_of_the_callers() -> None:
    x, y = _data()
    keep = x.copy()

    def scribble(state: AttackState, target: Any) -> None:
        state.x[:] = 0.5

    run_attack(scribble, SPEC, _target(Net().eval()), x, y, eps=0.1, norm="linf")
    np.testing.assert_array_equal(x, keep)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_are_refused(bad: float) -> None:
    x, y = _data()
    x[2, 1] = bad
    with pytest.raises(mlwarden.errors.InputError, match="NaN or infinite values \\(1 samples\\)"):
        run_attack(lambda state, target: None, SPEC, _target(Net()), x, y, eps=0.1, norm="linf")


def test_inputs_within_float_slack_of_the_range_are_clipped_into_it() -> None:
    x, y = _data()
    x[0, 0], x[1, 1] = -1e-7, 1 + 1e-7
    result = run_attack(
        lambda state, target: None, SPEC, _target(Net().eval()), x, y, eps=0.1, norm="linf"
    )
    assert result.x.min() >= 0.0 and result.x.max() <= 1.0
    assert result.x[0, 0] == 0.0 and result.x[1, 1] == 1.0


def test_targets_built_by_the_factory_are_torch_targets() -> None:
    assert isinstance(mlwarden.targets.target(Net(), input_shape=(4,)), TorchTarget)
