"""PyTorch `nn.Module` targets: white-box, with gradients, in eval mode.

Normalisation belongs inside the target (``mean`` / ``std``), so that attacks work in input units
(pixels in [0, 1]) and eps means what the user thinks it means: the question users of AutoAttack
ask most. During an attack (`session`) the model is in eval mode and its parameters are frozen;
both are restored afterwards. 2-D max pooling runs through torch's faster channels-last CPU
kernel, with the same output bits (`_pooling`). Not for: loading modules from files
(`mlwarden.targets.loading`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import torch

from mlwarden.errors import InputError, TargetError
from mlwarden.targets._pooling import ChannelsLastPooling, may_max_pool, may_pool
from mlwarden.targets.base import DEFAULT_BATCH_SIZE, WhiteBoxTarget

ModelOutput = Literal["logits", "probabilities", "log_probabilities"]


class TorchTarget(WhiteBoxTarget):
    """A PyTorch classifier. ``mlwarden.target(model, input_shape=(1, 28, 28))`` builds one."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        input_shape: Sequence[int],
        n_classes: int | None = None,
        input_range: tuple[float, float] = (0.0, 1.0),
        model_output: ModelOutput = "logits",
        mean: Sequence[float] | float | None = None,
        std: Sequence[float] | float | None = None,
        device: str | torch.device = "cpu",
        query_budget: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        name: str | None = None,
        channels_last_pooling: bool = True,
    ) -> None:
        """Wrap `model`.

        Args:
            model: a module mapping ``(n, *input_shape)`` float32 to ``(n, n_classes)``.
            input_shape: shape of one sample, e.g. ``(1, 28, 28)`` or ``(30,)``.
            n_classes: found with one forward pass when None.
            input_range: valid inputs in input units, e.g. (0, 1) for pixels.
            model_output: what the model returns: logits, probabilities or log-probabilities.
            mean, std: per-channel normalisation applied inside the target, in input units
                (channel is dimension 1 of the batch); None for none.
            device: torch device to run on.
            query_budget: maximum samples answered, None for unlimited.
            batch_size: samples per forward pass.
            name: shown in reports; the module's class name by default.
            channels_last_pooling: run the model's 2-D max pooling on CPU through torch's
                channels-last kernel (models with ``nn.MaxPool2d`` or ``nn.Conv2d`` modules, or
                a torch.export graph that max-pools): outputs and gradients are bit for bit
                torch's own, and a small CNN's passes take up to 40% less time. False leaves
                every operation to torch as is.
        """
        if not isinstance(model, torch.nn.Module):
            raise InputError(f"expected a torch.nn.Module, got {type(model).__name__}")
        if model_output not in ("logits", "probabilities", "log_probabilities"):
            raise InputError(
                "model_output must be logits, probabilities or log_probabilities, "
                f"got {model_output!r}"
            )
        self.model = model
        self.model_output: ModelOutput = model_output
        self._in_session = False
        self._reroute = bool(channels_last_pooling)
        self._pooling = self._reroute and may_max_pool(model)
        """Whether passes run under `ChannelsLastPooling`: found again at each session, and
        dropped for the rest of it after a forward pass that did not max-pool."""
        self._device = torch.device(device)
        shape = tuple(int(d) for d in input_shape)
        self._mean = _channel_tensor(mean, shape, "mean", self._device)
        self._std = _channel_tensor(std, shape, "std", self._device)
        if self._std is not None and bool((self._std <= 0).any()):
            raise InputError("std must be positive")
        if n_classes is None:
            n_classes = self._probe_classes(shape, input_range)
        super().__init__(
            n_classes=n_classes,
            input_shape=shape,
            input_range=input_range,
            query_budget=query_budget,
            batch_size=batch_size,
            name=name or type(model).__name__,
        )

    @property
    def device(self) -> torch.device:
        """Where `logits` wants its inputs."""
        return self._device

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._mean is not None:
            x = x - self._mean
        if self._std is not None:
            x = x / self._std
        try:
            if self._pooling:
                mode = ChannelsLastPooling()
                with mode:
                    out = self.model(x)
                # a convolutional model that never max-pools: every later pass of this run
                # skips the mode, which costs ~10 us an operation (the next session looks again)
                self._pooling = mode.pooled > 0
            else:
                out = self.model(x)
        except Exception as exc:  # the user's model raising is a target failure, not our bug
            raise TargetError(f"{self.name} raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise TargetError(
                f"{self.name} returned {got}; a classifier returns (n, n_classes) scores"
            )
        if self.model_output == "probabilities":
            return torch.log(out.clamp_min(1e-12))
        return out

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        if self._in_session:  # inside an attack run: no context manager to enter per batch
            return self._probabilities(x)
        with self.session():
            return self._probabilities(x)

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = self._forward(torch.from_numpy(x).to(self._device))
            return torch.softmax(logits.float(), dim=1).cpu().numpy()

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Eval mode and frozen parameters for the duration of an attack; restored after.

        Re-entrant: inside a session (an attack run), each prediction batch costs nothing here.
        """
        if self._in_session:
            yield
            return
        self._in_session = True
        try:
            with self._attack_mode():
                yield
        finally:
            self._in_session = False

    @contextlib.contextmanager
    def _attack_mode(self) -> Iterator[None]:
        """Eval mode and frozen parameters, restored on exit even when the body raises.

        One walk over the modules finds the ones in training mode, the parameters that require
        grad and any max pooling (a model may change between runs). Each module's own mode is
        put back as it was: a submodule the user keeps in eval mode (a frozen BatchNorm while
        fine-tuning) stays so.
        """
        modes: list[tuple[torch.nn.Module, bool]] = []
        pooling = False
        frozen: list[torch.nn.Parameter] = []
        for module in self.model.modules():
            modes.append((module, module.training))
            pooling = pooling or (self._reroute and may_pool(module))
            for p in module._parameters.values():
                if p is not None and p.requires_grad:
                    frozen.append(p)  # a shared parameter may appear twice: harmless
        self._pooling = pooling
        with _in_eval(self.model, modes):
            for p in frozen:
                p.requires_grad_(False)
            try:
                yield
            finally:
                for p in frozen:
                    p.requires_grad_(True)

    def _probe_classes(self, shape: tuple[int, ...], input_range: tuple[float, float]) -> int:
        probe = torch.full((1, *shape), float(np.mean(input_range)), device=self._device)
        modes = [(module, module.training) for module in self.model.modules()]
        try:
            with _in_eval(self.model, modes), torch.inference_mode():
                out = self._forward(probe)
        except RuntimeError as exc:
            raise InputError(f"model does not accept inputs of shape {shape}: {exc}") from None
        return int(out.shape[1])


def _custom_mode(module: torch.nn.Module) -> bool:
    """Whether `module` switches modes its own way: it overrides ``train``, or keeps its
    attributes elsewhere (a TorchScript module keeps ``training`` in its C++ object)."""
    kind = type(module)
    return (
        kind.train is not torch.nn.Module.train
        or kind.__setattr__ is not torch.nn.Module.__setattr__
    )


@contextlib.contextmanager
def _in_eval(model: torch.nn.Module, modes: list[tuple[torch.nn.Module, bool]]) -> Iterator[None]:
    """`model` in eval mode inside the block; afterwards every module of `modes` (each module
    with its mode, from one walk) back in the mode it had, even when the block raises.

    A model already in eval mode is not touched. When some module switches its own way
    (`_custom_mode`), through ``model.eval()`` and ``model.train()`` so that it sees both
    switches, with the flags then set as they were; otherwise each flag is set directly:
    ``eval()`` walks the model again through ``nn.Module.__setattr__``, which costs more than a
    small model's forward pass.
    """
    if not any(training for _, training in modes):
        yield
        return
    custom = any(_custom_mode(module) for module, _ in modes)
    if custom:
        model.eval()
    else:
        for module, training in modes:
            if training:
                object.__setattr__(module, "training", False)
    try:
        yield
    finally:
        if custom:
            model.train(modes[0][1])
        for module, training in modes:
            if module.training != training:
                if custom:
                    module.training = training
                else:
                    object.__setattr__(module, "training", training)


def _channel_tensor(
    value: Sequence[float] | float | None, shape: tuple[int, ...], what: str, device: torch.device
) -> torch.Tensor | None:
    if value is None:
        return None
    values = np.atleast_1d(np.asarray(value, dtype=np.float32))
    if values.ndim != 1 or (len(values) != 1 and (not shape or len(values) != shape[0])):
        raise InputError(
            f"{what} must be one number or one per channel ({shape[0] if shape else 1})"
        )
    view = (1, len(values)) + (1,) * max(len(shape) - 1, 0)
    return torch.from_numpy(values).reshape(view).to(device)
