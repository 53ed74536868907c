"""2-D max pooling through torch's channels-last CPU kernel: the same bits, several times faster.

In torch 2.13 on CPU, max pooling over an NCHW tensor runs a kernel that is 2-8x slower than
the channels-last kernel on the same data (`benchmarks/evasion/pooling.py`); in a small CNN it
is the costliest layer of the forward pass. Max pooling only selects values, so the layout it
runs in cannot change any bit of its output: `ChannelsLastPooling` (a torch function mode,
active only around a `TorchTarget`'s own forward passes) copies the input to channels-last,
pools there and hands the model back the NCHW tensor it expects. With gradients, the backward
pass runs torch's NCHW backward kernel with the indices the forward pass found, which equals
torch's own gradient (both kernels keep the first maximum of a window).

Only plain float CPU tensors in NCHW layout with more than one channel are rerouted; anything
else (indices asked for, channels-last already, other devices or dtypes) goes to torch as it
came. Not for: TorchScript models, whose graphs never reach a Python function mode.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

_POOLS: frozenset[Callable[..., Any]] = frozenset(
    {
        torch.nn.functional.max_pool2d,
        torch.max_pool2d,
        torch.ops.aten.max_pool2d.default,
    }
)
"""What a model calls to max-pool: ``nn.MaxPool2d`` and ``F.max_pool2d`` reach the mode as the
functional, ``torch.max_pool2d`` directly, and torch.export graphs as the aten operator."""

_ARGUMENTS = (
    "input",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "ceil_mode",
    "return_indices",
)
_DTYPES = (torch.float32, torch.float64)


def may_pool(module: torch.nn.Module) -> bool:
    """Whether `module` itself (not its children) may max-pool in 2-D: an ``nn.MaxPool2d``; an
    ``nn.Conv2d``, since a convolutional network may call ``F.max_pool2d`` in its ``forward``
    where no module shows it (PyTorch's own MNIST example does); or a torch.export / fx graph
    calling a max-pooling function."""
    if isinstance(module, (torch.nn.MaxPool2d, torch.nn.Conv2d)):
        return True
    return isinstance(module, torch.fx.GraphModule) and any(
        node.op == "call_function" and node.target in _POOLS for node in module.graph.nodes
    )


def may_max_pool(model: torch.nn.Module) -> bool:
    """Whether any module of `model` may max-pool in 2-D: the models worth running under
    `ChannelsLastPooling` (elsewhere the mode would only add its own small cost)."""
    return any(may_pool(module) for module in model.modules())


class ChannelsLastPooling(TorchFunctionMode):
    """Inside ``with ChannelsLastPooling():``, NCHW max pooling on CPU runs channels-last."""

    def __init__(self) -> None:
        super().__init__()
        self.pooled = 0
        """Max-pooling calls seen, rerouted or not: none after a whole forward pass means the
        model does not max-pool, and its later passes are better off without the mode."""

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func in _POOLS:
            self.pooled += 1
            bound = _bind(args, kwargs)
            if bound is not None and _reroutable(bound):
                try:
                    return _pool(bound)
                except (RuntimeError, TypeError, ValueError):
                    # torch.func's vmap cannot run it, or torch takes arguments this module
                    # does not, or they are wrong and torch's own message says it best: either
                    # way, torch's call decides
                    pass
        return func(*args, **kwargs)


def _bind(args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The call's arguments by name, or None for a call this module does not recognise."""
    if len(args) > len(_ARGUMENTS):
        return None
    bound = dict(zip(_ARGUMENTS, args, strict=False))
    for given, value in kwargs.items():
        name = "input" if given == "self" else given  # the aten operator's name for it
        if name not in _ARGUMENTS or name in bound:
            return None
        bound[name] = value
    return bound if "input" in bound and "kernel_size" in bound else None


def _reroutable(bound: Mapping[str, Any]) -> bool:
    x = bound["input"]
    if not (
        type(x) is torch.Tensor
        and not bound.get("return_indices", False)
        and x.device.type == "cpu"
        and x.dtype in _DTYPES
        and x.dim() == 4
        and x.shape[1] > 1
    ):
        return False
    try:
        return x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
    except RuntimeError:  # inside torch.func.vmap, layouts cannot be asked about
        return False


def _pool(bound: Mapping[str, Any]) -> torch.Tensor:
    x: torch.Tensor = bound["input"]
    settings = (
        _pair(bound["kernel_size"]),
        _pair(bound.get("stride")),
        _pair(bound.get("padding", 0)),
        _pair(bound.get("dilation", 1)),
        bool(bound.get("ceil_mode", False)),
    )
    if torch.is_grad_enabled() and x.requires_grad:
        out: torch.Tensor = _ChannelsLastMaxPool.apply(x, settings)[0]  # type: ignore[no-untyped-call]
        return out
    pooled, _ = torch.ops.aten.max_pool2d_with_indices(
        x.contiguous(memory_format=torch.channels_last), *settings
    )
    return _nchw(pooled)


def _nchw(t: torch.Tensor) -> torch.Tensor:
    """`t` in NCHW with exactly the strides torch gives its own output. An output with 1x1
    planes counts as contiguous in either layout, so ``contiguous()`` alone may keep the
    channels-last strides, and the next layer could choose its kernel by them."""
    t = t.contiguous()
    strides = [1] * t.dim()
    for dim in range(t.dim() - 2, -1, -1):
        strides[dim] = strides[dim + 1] * max(t.shape[dim + 1], 1)
    return t if list(t.stride()) == strides else t.as_strided(t.shape, strides)


def _pair(value: Any) -> list[int]:
    """An integer (NumPy's included), a pair or None (stride: the kernel size) as the list
    aten takes; [] for None."""
    if value is None:
        return []
    try:
        return [operator.index(value)]
    except TypeError:
        return [operator.index(v) for v in value]


Settings = tuple[list[int], list[int], list[int], list[int], bool]


class _ChannelsLastMaxPool(torch.autograd.Function):
    """Forward in channels-last, backward through torch's NCHW kernel with the forward's
    indices (flat positions within each channel's plane, the same in both layouts)."""

    generate_vmap_rule = True  # torch.func transforms (jacrev, vmap) work through it

    @staticmethod
    def forward(x: torch.Tensor, settings: Settings) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, indices = torch.ops.aten.max_pool2d_with_indices(
            x.contiguous(memory_format=torch.channels_last), *settings
        )
        return _nchw(pooled), indices.contiguous()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        x, settings = inputs
        _, indices = output
        ctx.save_for_backward(x, indices)
        ctx.settings = settings
        ctx.mark_non_differentiable(indices)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor, _: Any) -> tuple[torch.Tensor, None]:
        x, indices = ctx.saved_tensors
        return (
            torch.ops.aten.max_pool2d_with_indices_backward(
                grad.contiguous(), x, *ctx.settings, indices
            ),
            None,
        )
