"""The Target protocol: the model under test, as every attack and evaluation sees it.

A target turns a float32 batch ``x`` of shape ``(n, *input_shape)`` into class probabilities
``(n, n_classes)``. It counts every sample it is asked about (``queries``), refuses to go past its
``query_budget``, and checks what it is given and what its model answers, so that attacks never
have to. White-box targets (`WhiteBoxTarget`) also give torch logits with gradients.

Adapters for PyTorch, scikit-learn, ONNX, plain callables and HTTP endpoints live in their own
modules; `mlwarden.target(obj)` picks one. Not for: loading models from files
(`mlwarden.targets.loading`) or attacking them (`mlwarden.attacks`).
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from mlwarden.errors import InputError, QueryBudgetExceeded, TargetError

if TYPE_CHECKING:
    import torch

Output = Literal["probabilities", "labels"]
"""What a target reveals: a full probability vector, or only the predicted class."""

DEFAULT_BATCH_SIZE = 256


class Target(ABC):
    """A classifier under test, black-box unless it is a `WhiteBoxTarget`.

    Subclasses implement `_predict_batch`; everything else (batching, counting, budget,
    validation of inputs and answers) is done here once.
    """

    white_box: ClassVar[bool] = False

    def __init__(
        self,
        *,
        n_classes: int,
        input_shape: tuple[int, ...],
        input_range: tuple[float, float] = (0.0, 1.0),
        output: Output = "probabilities",
        query_budget: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        name: str = "target",
    ) -> None:
        """Describe the model.

        Args:
            n_classes: number of classes, >= 2.
            input_shape: shape of one sample, without the batch dimension.
            input_range: (low, high) bounds of valid inputs in input units, low < high;
                attacks never leave it.
            output: ``probabilities`` or ``labels`` (decision-only targets return one-hot rows).
            query_budget: maximum number of samples the target answers, None for unlimited.
            batch_size: samples per call to the underlying model, >= 1.
            name: shown in reports.
        """
        if n_classes < 2:
            raise InputError(f"a classifier needs at least 2 classes, got n_classes={n_classes}")
        low, high = (float(v) for v in input_range)
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise InputError(
                f"input_range must be finite (low, high) with low < high, got {input_range}"
            )
        if query_budget is not None and query_budget < 1:
            raise InputError(
                f"query_budget must be a positive number of samples, got {query_budget}"
            )
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.n_classes = int(n_classes)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.input_range = (low, high)
        self.output: Output = output
        self.query_budget = query_budget
        self.batch_size = int(batch_size)
        self.name = name
        self.queries = 0
        """Samples answered so far (every row of every batch, gradient passes included)."""
        self._metered = True

    # -- what subclasses implement ---------------------------------------------------------

    @abstractmethod
    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (or one-hot labels) for one batch of at most `batch_size` rows."""

    # -- the public protocol ---------------------------------------------------------------

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, float32 ``(n, n_classes)``, for inputs ``(n, *input_shape)``."""
        x = self.check_inputs(x)
        self.charge(len(x))
        parts = [
            self._checked_answer(
                self._predict_batch(x[i : i + self.batch_size]), min(self.batch_size, len(x) - i)
            )
            for i in range(0, len(x), self.batch_size)
        ]
        if not parts:
            return np.zeros((0, self.n_classes), dtype=np.float32)
        return np.concatenate(parts)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted class indices, int64 ``(n,)``."""
        return np.asarray(self.predict_proba(x).argmax(axis=1), dtype=np.int64)

    def charge(self, n: int) -> None:
        """Count `n` samples against the budget; raise `QueryBudgetExceeded` past it."""
        if not self._metered:
            return
        if self.query_budget is not None and self.queries + n > self.query_budget:
            raise QueryBudgetExceeded(
                f"query budget of {self.query_budget} samples spent on {self.name} "
                f"({self.queries} used, {n} more asked)"
            )
        self.queries += n

    @contextlib.contextmanager
    def unmetered(self) -> Iterator[None]:
        """Queries inside this block are not counted: the runner's own verification uses it."""
        previous, self._metered = self._metered, False
        try:
            yield
        finally:
            self._metered = previous

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Hold the model in attack mode (eval mode, frozen weights) for a whole attack run."""
        yield

    def check_inputs(self, x: np.ndarray) -> np.ndarray:
        """`x` as a float32 C-contiguous batch of the right shape, or an `InputError`."""
        try:
            array = np.ascontiguousarray(x, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InputError(f"inputs must be a numeric array: {exc}") from None
        if array.shape[1:] != self.input_shape:
            raise InputError(
                f"inputs have shape {array.shape}; {self.name} expects (n, "
                f"{', '.join(map(str, self.input_shape))})"
            )
        return array

    def _checked_answer(self, answer: np.ndarray, rows: int) -> np.ndarray:
        try:
            probs = np.asarray(answer, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise TargetError(
                f"{self.name} answered something that is not numbers: {exc}"
            ) from None
        if probs.shape != (rows, self.n_classes):
            raise TargetError(
                f"{self.name} answered shape {probs.shape} for {rows} inputs; expected "
                f"({rows}, {self.n_classes}) class scores"
            )
        if not np.isfinite(probs).all():
            raise TargetError(f"{self.name} answered NaN or infinite scores")
        return probs


class WhiteBoxTarget(Target):
    """A target whose gradients attacks may use: it exposes torch logits."""

    white_box: ClassVar[bool] = True

    @property
    @abstractmethod
    def device(self) -> torch.device:
        """Where `logits` wants its inputs."""

    @abstractmethod
    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, n_classes)`` for a batch already on `device`, differentiable in `x`."""

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch ``(n, *input_shape)`` on `device`; counts ``n`` queries.

        Differentiable in `x`; the model's own parameters never receive gradients.
        """
        self.charge(int(x.shape[0]))
        return self._logits(x)


def validate_labels(y: np.ndarray, n: int, n_classes: int, what: str = "labels") -> np.ndarray:
    """`y` as int64 ``(n,)`` in ``[0, n_classes)``, or an `InputError` saying what is wrong."""
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == n_classes and labels.shape[0] == n:
        labels = labels.argmax(axis=1)  # one-hot
    if labels.shape != (n,):
        raise InputError(f"{what} have shape {labels.shape}; expected ({n},) class indices")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all() or not np.all(labels == np.round(labels)):
            raise InputError(f"{what} must be whole class indices, got non-integer values")
    elif labels.dtype.kind not in "iub":
        raise InputError(f"{what} must be class indices, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if n and (labels.min() < 0 or labels.max() >= n_classes):
        raise InputError(
            f"{what} must lie in [0, {n_classes - 1}], "
            f"got values from {labels.min()} to {labels.max()}"
        )
    return labels


def validate_batch(target: Target, x: np.ndarray, *, what: str = "inputs") -> np.ndarray:
    """`x` checked for shape, emptiness, NaN / inf and the target's input range."""
    array = target.check_inputs(x)
    if len(array) == 0:
        raise InputError(f"{what} are empty: give at least one sample")
    # min and max are NaN when any value is, and infinite when any value is: two passes
    # over the batch answer both the finiteness and the range question
    smallest, largest = float(array.min()), float(array.max())
    if not (math.isfinite(smallest) and math.isfinite(largest)):
        bad = int((~np.isfinite(array)).reshape(len(array), -1).any(axis=1).sum())
        raise InputError(f"{what} contain NaN or infinite values ({bad} samples); clean them first")
    low, high = target.input_range
    tolerance = 1e-5 * max(1.0, high - low)
    if smallest < low - tolerance or largest > high + tolerance:
        raise InputError(
            f"{what} range from {smallest:.4g} to {largest:.4g}, outside the target's "
            f"input_range ({low:g}, {high:g}); scale the data or pass input_range="
        )
    if smallest >= low and largest <= high:
        # already inside: a copy, so that nothing the attack does reaches the caller's array
        return array.copy() if np.may_share_memory(array, x) else array
    return np.asarray(np.clip(array, low, high), dtype=np.float32)
