"""Max pooling through the channels-last kernel: the same bits as torch, and really rerouted."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mlwarden.targets
import mlwarden.targets._pooling as pooling
from mlwarden.attacks.evasion import fgsm, pgd
from mlwarden.targets._pooling import ChannelsLastPooling, may_max_pool

GRID = [
    (shape, kernel, stride, padding, dilation, ceil)
    for shape, kernel, stride, padding, dilation, ceil in itertools.product(
        [(3, 4, 9, 7), (2, 16, 8, 8)], [2, 3], [None, 1, 2], [0, 1], [1, 2], [False, True]
    )
    if padding <= kernel // 2 and dilation * (kernel - 1) + 1 <= shape[2] + 2 * padding
] + [((6, 8, 2, 2), 2, 2, 0, 1, False)]  # 1x1 output planes: contiguous in both layouts


@pytest.fixture
def rerouted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the calls that went through the channels-last kernel."""
    calls: list[int] = []
    real = pooling._pool

    def counting(bound: Any) -> torch.Tensor:
        calls.append(1)
        return real(bound)

    monkeypatch.setattr(pooling, "_pool", counting)
    yield calls


def _inputs(shape: tuple[int, ...], kind: str) -> torch.Tensor:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(len(kind) + sum(shape)))
    if kind == "ties":  # whole numbers: windows with several maxima
        x = (x * 3).floor()
    if kind == "special":
        flat = x.view(-1)
        flat[::7] = float("nan")
        flat[::5] = float("-inf")
        flat[::11] = float("inf")
    return x


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit for bit, NaN where NaN, with the same strides."""
    return (
        a.stride() == b.stride()
        and torch.equal(a.isnan(), b.isnan())
        and torch.equal(a.nan_to_num(), b.nan_to_num())
    )


@pytest.mark.parametrize("kind", ["random", "ties", "special"])
def test_outputs_and_gradients_are_torchs_own_bit_for_bit(kind: str, rerouted: list[int]) -> None:
    for shape, kernel, stride, padding, dilation, ceil in GRID:
        x = _inputs(shape, kind)
        args = (kernel, stride, padding, dilation)
        expected = F.max_pool2d(x, *args, ceil_mode=ceil)
        with ChannelsLastPooling():
            got = F.max_pool2d(x, *args, ceil_mode=ceil)
        assert _same(expected, got), (shape, args, ceil)

        mine, theirs = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        (grad_expected,) = torch.autograd.grad(
            F.max_pool2d(theirs, *args, ceil_mode=ceil).nan_to_num().sum(), theirs
        )
        with ChannelsLastPooling():
            pooled = F.max_pool2d(mine, *args, ceil_mode=ceil)
        (grad_got,) = torch.autograd.grad(pooled.nan_to_num().sum(), mine)
        assert torch.equal(grad_expected, grad_got), (shape, args, ceil)
    assert len(rerouted) == 2 * len(GRID)  # not a test of torch against itself


def test_every_way_a_model_max_pools_is_rerouted(rerouted: list[int]) -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3)
    ).eval()
    x = torch.rand(5, 1, 8, 8)
    exported = torch.export.export(model, (x,)).module()
    features = torch.rand(5, 4, 8, 8)
    with torch.no_grad(), ChannelsLastPooling():
        assert torch.equal(model(x), model[4](model[3](F.max_pool2d(model[1](model[0](x)), 2))))
        assert len(rerouted) == 2  # the module and the functional
        assert torch.equal(exported(x), model(x))
        assert len(rerouted) == 4  # the aten operator in the graph, then the module again
        torch.max_pool2d(features, [2, 2])
        torch.ops.aten.max_pool2d.default(features, [2, 2])
        assert len(rerouted) == 6
    assert may_max_pool(model) and may_max_pool(exported)
    assert not may_max_pool(nn.Sequential(nn.Linear(3, 3), nn.ReLU()))


@pytest.mark.parametrize(
    "x, options",
    [
        (torch.rand(2, 4, 8, 8), {"return_indices": True}),  # the indices are the caller's
        (torch.rand(2, 4, 8, 8).contiguous(memory_format=torch.channels_last), {}),
        (torch.rand(2, 1, 8, 8), {}),  # one channel: both layouts are the same memory
        (torch.rand(4, 8, 8), {}),  # unbatched
        (torch.rand(2, 4, 8, 8, dtype=torch.float16), {}),
        (torch.rand(2, 4, 8, 8)[:, :, ::2], {}),  # not contiguous
    ],
)
def test_calls_it_cannot_improve_go_to_torch_as_they_came(
    x: torch.Tensor, options: dict[str, Any], rerouted: list[int]
) -> None:
    expected = F.max_pool2d(x, 2, **options)
    with ChannelsLastPooling():
        got = F.max_pool2d(x, 2, **options)
    assert not rerouted
    if options.get("return_indices"):
        assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1])
    else:
        assert torch.equal(expected, got) and expected.stride() == got.stride()


class _PoolingCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()
        )
        self.head = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(x))
        return out


def _targets(model: nn.Module) -> tuple[Any, Any]:
    on = mlwarden.targets.target(model, input_shape=(1, 8, 8), n_classes=10)
    off = mlwarden.targets.target(
        model, input_shape=(1, 8, 8), n_classes=10, channels_last_pooling=False
    )
    return on, off


def test_a_torch_target_pools_channels_last_unless_told_not_to(rerouted: list[int]) -> None:
    on, off = _targets(_PoolingCNN())
    x = np.random.default_rng(0).random((20, 1, 8, 8), dtype=np.float32)
    expected = off.predict_proba(x)
    assert not rerouted
    assert np.array_equal(on.predict_proba(x), expected)
    assert rerouted

    inputs = torch.from_numpy(x)
    grads = []
    for target in (on, off):
        with target.session():
            x_in = inputs.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(target.logits(x_in).logsumexp(1).sum(), x_in)
        grads.append(grad)
    assert torch.equal(*grads)


def test_attacks_find_the_same_points_with_and_without_it() -> None:
    on, off = _targets(_PoolingCNN())
    rng = np.random.default_rng(1)
    x = rng.random((30, 1, 8, 8), dtype=np.float32)
    y = on.predict(x)
    for attack in (fgsm, pgd):
        mine, plain = attack(on, x, y, eps=0.2), attack(off, x, y, eps=0.2)
        assert np.array_equal(mine.x_adv, plain.x_adv)
        assert np.array_equal(mine.success, plain.success)
        assert np.array_equal(mine.confidence, plain.confidence)


def test_a_model_without_max_pooling_runs_without_the_mode(rerouted: list[int]) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    target = mlwarden.targets.target(model, input_shape=(1, 8, 8), n_classes=3)
    target.predict_proba(np.zeros((2, 1, 8, 8), dtype=np.float32))
    assert not target._pooling and not rerouted


def test_pooling_added_after_the_target_was_built_is_found_at_the_next_run(
    rerouted: list[int],
) -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Flatten(), nn.Linear(256, 3))
    target = mlwarden.targets.target(model, input_shape=(1, 8, 8), n_classes=3)
    model[1] = nn.Sequential(nn.MaxPool2d(2), nn.Flatten())
    model[2] = nn.Linear(64, 3)
    target.predict_proba(np.zeros((2, 1, 8, 8), dtype=np.float32))
    assert rerouted


def _second_order(x: torch.Tensor, rerouted: bool) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    if rerouted:
        with ChannelsLastPooling():
            pooled = F.max_pool2d(x * x, 2)
    else:
        pooled = F.max_pool2d(x * x, 2)
    (grad,) = torch.autograd.grad((pooled**2).sum(), x, create_graph=True)
    (hessian_vector,) = torch.autograd.grad((grad * grad).sum(), x)
    return grad.detach(), hessian_vector


def test_second_derivatives_are_torchs_own(rerouted: list[int]) -> None:
    x = torch.rand(3, 4, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected, got = _second_order(x, False), _second_order(x, True)
    assert rerouted
    assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1])


def test_torch_func_transforms_give_torchs_answers() -> None:
    x = torch.rand(2, 4, 6, 6, generator=torch.Generator().manual_seed(3))

    def summed(z: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(z * 2, 2).sum(dim=(2, 3))

    def per_sample(z: torch.Tensor) -> torch.Tensor:
        return torch.func.grad(lambda one: summed(one[None]).sum())(z)

    expected = (torch.func.jacrev(summed)(x), torch.func.vmap(per_sample)(x))
    with ChannelsLastPooling():
        got = (torch.func.jacrev(summed)(x), torch.func.vmap(per_sample)(x))
    assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1])


@pytest.mark.parametrize(
    "arguments",
    [
        {"kernel_size": np.int64(2)},
        {"kernel_size": (np.int32(2), 2), "stride": torch.Size([2, 2])},
        {"kernel_size": 2, "padding": 1.0},  # torch refuses floats: so must the mode
    ],
)
def test_arguments_of_any_type_torch_takes_or_refuses_are_answered_as_torch_does(
    arguments: dict[str, Any],
) -> None:
    x = torch.rand(2, 4, 8, 8)
    try:
        expected: Any = F.max_pool2d(x, **arguments)
    except (RuntimeError, TypeError) as exc:
        expected = type(exc)
    with ChannelsLastPooling():
        try:
            got: Any = F.max_pool2d(x, **arguments)
        except (RuntimeError, TypeError) as exc:
            got = type(exc)
    if isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor) and torch.equal(expected, got)
    else:
        assert got is expected


def test_bad_arguments_get_torchs_own_error() -> None:
    x = torch.rand(2, 4, 3, 3)
    with pytest.raises(RuntimeError) as expected:
        F.max_pool2d(x, 5)
    with ChannelsLastPooling(), pytest.raises(RuntimeError) as got:
        F.max_pool2d(x, 5)
    assert str(got.value) == str(expected.value)


class _FunctionalPooling(nn.Module):
    """Pools with ``F.max_pool2d`` in ``forward``, as PyTorch's MNIST example does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(F.max_pool2d(F.relu(self.conv(x)), 2).flatten(1))
        return out


def test_pooling_called_in_forward_is_rerouted_too(rerouted: list[int]) -> None:
    model = _FunctionalPooling().eval()
    target = mlwarden.targets.target(model, input_shape=(1, 8, 8), n_classes=3)
    x = np.random.default_rng(4).random((5, 1, 8, 8), dtype=np.float32)
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()
    assert np.array_equal(target.predict_proba(x), expected)
    assert rerouted


def test_a_convolutional_model_that_never_pools_drops_the_mode_after_one_pass() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Flatten(), nn.Linear(256, 3)).eval()
    target = mlwarden.targets.target(model, input_shape=(1, 8, 8), n_classes=3)
    x = torch.rand(2, 1, 8, 8)
    with target.session():
        assert target._pooling  # a Conv2d: it might pool in forward
        first = target.logits(x)
        assert not target._pooling
        assert torch.equal(target.logits(x), first)
    with target.session():  # the model may have changed since: looked at again
        assert target._pooling
