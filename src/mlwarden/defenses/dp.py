"""DP-SGD training through Opacus: a PyTorch model with a differential-privacy guarantee.

DP-SGD (Abadi et al. 2016) clips each record's gradient to `max_grad_norm` and adds Gaussian
noise to every step, on batches drawn by Poisson sampling (each record joins a batch with
probability ``batch_size / n``), so the trained model is (epsilon, delta)-differentially private
with respect to any one training record: the defence the membership audit measures against
(ML04, ML03). Given a target epsilon, the noise that spends it over the requested epochs is
found with Opacus' PRV accountant as ``PrivacyEngine.make_private_with_epsilon`` finds it (once
per process and setting); given a noise multiplier, the epsilon spent is reported. Needs the
``[dp]`` extra.
Not for: output hardening (`mlwarden.defenses.output`) or measuring leakage
(`mlwarden.attacks.membership`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mlwarden.errors import InputError, MlwardenError, UsageError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["DPResult", "DPSettings", "calibrated_noise", "train_dp"]

ACCOUNTANT = "prv"
"""Opacus' privacy accountant: PRV (Gopi et al. 2021), the tightest Opacus has."""


@dataclass(frozen=True)
class DPSettings:
    """The privacy budget of DP-SGD training: give `epsilon` (a target) or `noise_multiplier`."""

    epsilon: float | None = None
    """Target epsilon, > 0 (smaller is more private: 1 strong, 8 weak)."""
    delta: float = 1e-5
    """Probability the epsilon guarantee fails, in (0, 1); keep it below 1 / training records."""
    max_grad_norm: float = 1.0
    """Each record's gradient is clipped to this L2 norm, > 0."""
    noise_multiplier: float | None = None
    """Noise std over `max_grad_norm`, > 0; instead of `epsilon`."""
    replace_batchnorm: bool = True
    """BatchNorm mixes records in a batch, which DP-SGD cannot allow: replace it by GroupNorm
    (True, noted in the result) or refuse such models (False)."""

    def __post_init__(self) -> None:
        if (self.epsilon is None) == (self.noise_multiplier is None):
            raise UsageError(
                "DPSettings needs exactly one of epsilon (the privacy budget to spend) or "
                "noise_multiplier (the noise to add), e.g. DPSettings(epsilon=1.0)"
            )
        if self.epsilon is not None and not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise UsageError(f"DP epsilon must be > 0, got {self.epsilon}")
        if self.noise_multiplier is not None and not (
            math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0
        ):
            raise UsageError(f"DP noise_multiplier must be > 0, got {self.noise_multiplier}")
        if not 0.0 < self.delta < 1.0:
            raise UsageError(f"DP delta must be in (0, 1), got {self.delta}")
        if not (math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0):
            raise UsageError(f"DP max_grad_norm must be > 0, got {self.max_grad_norm}")


@dataclass
class DPResult:
    """A model trained with DP-SGD and the privacy it spent."""

    module: nn.Module
    """The trained model, a plain ``nn.Module`` (no Opacus wrapper) in eval mode."""
    epsilon_spent: float
    """Epsilon spent over the whole training at `delta` (the accountant's value)."""
    delta: float
    noise_multiplier: float
    """Noise std over the clipping norm that was used."""
    accuracy_history: list[float] = field(default_factory=list)
    """Training accuracy of each epoch, on the (noisy-step) batches it trained on."""
    loss_history: list[float] = field(default_factory=list)
    """Mean cross-entropy of each epoch's batches."""
    notes: list[str] = field(default_factory=list)
    """What was changed or is worth knowing (layers replaced, delta too large for n)."""


def train_dp(
    model: Callable[[], nn.Module] | nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    settings: DPSettings,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    optimizer: Literal["adam", "sgd"] = "sgd",
    weight_decay: float = 0.0,
    momentum: float = 0.0,
) -> DPResult:
    """Train a classifier with DP-SGD on ``(x, y)`` on the CPU.

    `model`: a function or class building the untrained module (called under torch's seed
    `seed`), or a module (trained in place; use the returned one, which differs when BatchNorm
    is replaced). It maps ``(n, *input_shape)`` float32 to logits ``(n, n_classes)``. `x`:
    inputs ``(n, *input_shape)``; `y`: class indices ``(n,)``. `epochs` >= 1; `batch_size`:
    expected records per step (Poisson sampling), 1..n; `lr` > 0. `optimizer`: ``sgd`` (with
    `momentum`) or ``adam``. Returns the module in eval mode with the epsilon spent.
    """
    import torch

    opacus = _import_opacus()
    inputs, labels = _checked_data(x, y)
    _check_schedule(epochs, batch_size, lr, len(inputs))
    notes: list[str] = []
    if settings.delta >= 1.0 / len(inputs):
        notes.append(
            f"delta {settings.delta:g} is not below 1 / {len(inputs)} training records; the "
            "guarantee is weak (a mechanism that publishes one record outright meets it)"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        module = _compatible(_built(model), settings, notes, opacus)
        step = _optimizer(module, optimizer, lr, weight_decay, momentum)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(inputs, labels),
            batch_size=batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(int(seed)),
        )
        common: dict[str, Any] = {
            "module": module,
            "optimizer": step,
            "data_loader": loader,
            "max_grad_norm": settings.max_grad_norm,
            "poisson_sampling": True,
            "noise_generator": torch.Generator().manual_seed(int(seed) + 1),
        }
        with _quiet_opacus():
            noise = settings.noise_multiplier
            if noise is None:
                assert settings.epsilon is not None
                noise = calibrated_noise(settings.epsilon, settings.delta, 1 / len(loader), epochs)
            engine = opacus.PrivacyEngine(accountant=ACCOUNTANT)
            private, step, loader = engine.make_private(**common, noise_multiplier=noise)
            try:
                accuracy, losses = _train(private, step, loader, epochs)
            except Exception as exc:  # a model that does not fit the data, named
                raise UsageError(
                    f"DP-SGD training of {type(module).__name__} raised {type(exc).__name__}: "
                    f"{exc}; the model must take inputs of shape (n, "
                    f"{', '.join(map(str, inputs.shape[1:]))}) and return logits "
                    f"(n, n_classes) with n_classes > {int(labels.max())}"
                ) from exc
            epsilon_spent = float(engine.get_epsilon(settings.delta))
        trained: nn.Module = private.to_standard_module()
    return DPResult(
        module=trained.eval(),
        epsilon_spent=epsilon_spent,
        delta=settings.delta,
        noise_multiplier=float(step.noise_multiplier),
        accuracy_history=accuracy,
        loss_history=losses,
        notes=notes,
    )


@contextlib.contextmanager
def _quiet_opacus() -> Iterator[None]:
    """Opacus' and torch's advice that does not apply here, silenced for one training run."""
    with warnings.catch_warnings():
        # The CSPRNG of secure_mode is for deployment; audits want seeded, repeatable runs.
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        # Opacus' hooks fire on module outputs when inputs need no gradient: expected.
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        yield


@functools.lru_cache(maxsize=64)
def calibrated_noise(epsilon: float, delta: float, sample_rate: float, epochs: int) -> float:
    """The noise multiplier that spends `epsilon` at `delta` over `epochs` epochs of Poisson
    batches drawn at `sample_rate`: what ``PrivacyEngine.make_private_with_epsilon`` computes,
    computed once per process for the reference models that share it (a search over the PRV
    accountant takes seconds)."""
    from opacus.accountants.utils import (  # type: ignore[import-untyped, unused-ignore]
        get_noise_multiplier,
    )

    with _quiet_opacus():
        return float(
            get_noise_multiplier(
                target_epsilon=epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                epochs=epochs,
                accountant=ACCOUNTANT,
            )
        )


def _import_opacus() -> Any:
    try:
        import opacus  # type: ignore[import-untyped, unused-ignore]
        import opacus.validators  # type: ignore[import-untyped, unused-ignore]
    except ImportError as exc:
        raise UsageError("DP-SGD training needs Opacus: pip install mlwarden[dp]") from exc
    return opacus


def _checked_data(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    try:
        inputs = np.ascontiguousarray(x, dtype=np.float32)
        labels = np.asarray(y)
    except (TypeError, ValueError) as exc:
        raise InputError(f"DP-SGD training data must be numeric arrays: {exc}") from None
    if inputs.ndim < 2 or len(inputs) == 0:
        raise InputError(
            f"DP-SGD training inputs have shape {inputs.shape}; expected (n, *input_shape), n >= 1"
        )
    if not np.isfinite(inputs).all():
        raise InputError("DP-SGD training inputs contain NaN or infinite values; clean them first")
    if labels.shape != (len(inputs),) or labels.dtype.kind not in "iu":
        raise InputError(
            f"DP-SGD training labels have shape {labels.shape} and dtype {labels.dtype}; "
            f"expected ({len(inputs)},) integer class indices"
        )
    if labels.min() < 0:
        raise InputError("DP-SGD training labels must be class indices >= 0")
    return torch.from_numpy(inputs), torch.from_numpy(labels.astype(np.int64))


def _check_schedule(epochs: int, batch_size: int, lr: float, n: int) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise UsageError(f"DP-SGD epochs must be a whole number >= 1, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise UsageError(f"DP-SGD batch_size must be a whole number, got {batch_size!r}")
    if not 1 <= batch_size <= n:
        raise UsageError(
            f"DP-SGD batch_size must be between 1 and the {n} training records, got {batch_size}"
        )
    if not (math.isfinite(lr) and lr > 0):
        raise UsageError(f"DP-SGD lr must be > 0, got {lr}")


def _built(model: Callable[[], nn.Module] | nn.Module) -> nn.Module:
    from torch import nn

    if isinstance(model, nn.Module):
        return model
    if not callable(model):
        raise UsageError(
            f"train_dp needs a torch.nn.Module or a function building one, got a "
            f"{type(model).__name__}"
        )
    name = getattr(model, "__qualname__", type(model).__name__)
    try:
        built = model()
    except MlwardenError:  # already names what failed (a TorchTrainer's factory)
        raise
    except Exception as exc:  # the user's model code failing is named, not a traceback
        raise UsageError(
            f"the model factory {name} raised {type(exc).__name__}: {exc}; it is called with "
            "no arguments and must return an untrained torch.nn.Module"
        ) from exc
    if not isinstance(built, nn.Module):
        raise UsageError(
            f"the model factory returned a {type(built).__name__}; it must return a torch.nn.Module"
        )
    return built


def _compatible(
    module: nn.Module, settings: DPSettings, notes: list[str], opacus: Any
) -> nn.Module:
    """`module` in training mode and fit for per-record gradients, or a `UsageError`."""
    from torch import nn

    validator = opacus.validators.ModuleValidator
    module.train()
    batchnorm = [
        f"{name} ({type(layer).__name__})"
        for name, layer in module.named_modules()
        if isinstance(layer, nn.modules.batchnorm._BatchNorm)
    ]
    if batchnorm and not settings.replace_batchnorm:
        raise UsageError(
            f"the model has BatchNorm layers ({', '.join(batchnorm)}), which mix the records of a "
            "batch and cannot be trained with DP-SGD; use GroupNorm or LayerNorm, or "
            "DPSettings(replace_batchnorm=True) to have them replaced by GroupNorm"
        )
    if batchnorm:
        module = validator.fix(module)
        module.train()
        notes.append(f"replaced BatchNorm by GroupNorm for DP-SGD: {', '.join(batchnorm)}")
    errors = validator.validate(module, strict=False)
    if errors:
        raise UsageError(
            "the model cannot be trained with DP-SGD: "
            + "; ".join(str(e) for e in errors)
            + " (Opacus needs layers whose per-record gradients it can compute)"
        )
    return module


def _optimizer(
    module: nn.Module, name: str, lr: float, weight_decay: float, momentum: float
) -> torch.optim.Optimizer:
    import torch

    if name == "adam":
        return torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            module.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
        )
    raise UsageError(f"DP-SGD optimizer must be adam or sgd, got {name!r}")


def _train(
    private: nn.Module, step: Any, loader: Any, epochs: int
) -> tuple[list[float], list[float]]:
    import torch
    from torch.nn import functional

    accuracy: list[float] = []
    losses: list[float] = []
    private.train()
    for _ in range(epochs):
        correct = seen = 0
        total_loss = 0.0
        batches = 0
        for inputs, labels in loader:
            step.zero_grad(set_to_none=True)
            logits = private(inputs)
            if len(labels) == 0:
                # Poisson sampling drew nobody: the step still adds noise (and is accounted).
                (logits.sum() * 0.0).backward()  # type: ignore[no-untyped-call, unused-ignore]
                step.step()
                continue
            loss = functional.cross_entropy(logits, labels)
            loss.backward()  # type: ignore[no-untyped-call]
            step.step()
            total_loss += float(loss.detach())
            batches += 1
            with torch.no_grad():
                correct += int((logits.argmax(dim=1) == labels).sum())
            seen += len(labels)
        accuracy.append(correct / seen if seen else 0.0)
        losses.append(total_loss / batches if batches else 0.0)
    return accuracy, losses
