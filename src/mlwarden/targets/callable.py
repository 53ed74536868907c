"""Any Python function as a black-box target: ``fn(x) -> probabilities`` or ``-> labels``.

The escape hatch for models no other adapter knows (XGBoost, a JAX function, a model behind a
client library): the function takes a float32 batch ``(n, *input_shape)`` and returns either
probabilities ``(n, n_classes)`` or predicted class indices ``(n,)``. A label-only function makes
a decision-only target (``output="labels"``), which only decision-based attacks can use. Not
for: models with gradients (wrap the torch module itself) or remote endpoints (`HttpTarget`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlwarden.errors import InputError, TargetError
from mlwarden.targets.base import DEFAULT_BATCH_SIZE, Output, Target


class CallableTarget(Target):
    """A function as a target. ``mlwarden.target(fn, input_shape=(30,))`` builds one."""

    def __init__(
        self,
        fn: Callable[[np.ndarray], Any],
        *,
        input_shape: Sequence[int] | None = None,
        n_classes: int | None = None,
        output: Output | None = None,
        input_range: tuple[float, float] = (0.0, 1.0),
        query_budget: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        name: str | None = None,
    ) -> None:
        """Wrap `fn`.

        Args:
            fn: maps a float32 batch ``(n, *input_shape)`` to probabilities ``(n, n_classes)``
                or class indices ``(n,)`` in ``[0, n_classes)``.
            input_shape: shape of one sample, required.
            n_classes: required when `fn` returns labels; found by one probe call otherwise.
            output: ``probabilities`` or ``labels``; found by one probe call when None.
            input_range: valid inputs in input units.
            query_budget: maximum samples answered, None for unlimited.
            batch_size: samples per call to `fn`.
            name: shown in reports; the function's name by default.

        The probe (one sample at the middle of `input_range`) is not counted as a query; give
        both `n_classes` and `output` to avoid it.
        """
        if not callable(fn):
            raise InputError(f"expected a callable, got {type(fn).__name__}")
        if input_shape is None:
            raise InputError("a callable target needs input_shape= (the shape of one sample)")
        if output not in (None, "probabilities", "labels"):
            raise InputError(f"output must be probabilities or labels, got {output!r}")
        if output == "labels" and n_classes is None:
            raise InputError("a callable returning labels needs n_classes=")
        self.fn = fn
        shape = tuple(int(d) for d in input_shape)
        label = name or str(getattr(fn, "__name__", type(fn).__name__))
        if output is None or n_classes is None:
            probe = np.full((1, *shape), float(np.mean(input_range)), dtype=np.float32)
            answer = self._call(probe, label)
            found: Output = "labels" if answer.ndim == 1 else "probabilities"
            if output is not None and output != found:
                raise InputError(
                    f"output={output!r} but {label} returned shape {answer.shape} for one sample"
                )
            output = found
            if n_classes is None:
                if output == "labels":
                    raise InputError(f"{label} returns labels; pass n_classes=")
                if answer.ndim != 2 or answer.shape[0] != 1:
                    raise InputError(
                        f"{label} returned shape {answer.shape} for one sample; expected "
                        "(1, n_classes) probabilities or (1,) labels"
                    )
                n_classes = int(answer.shape[1])
        super().__init__(
            n_classes=n_classes,
            input_shape=shape,
            input_range=input_range,
            output=output,
            query_budget=query_budget,
            batch_size=batch_size,
            name=label,
        )

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        answer = self._call(x, self.name)
        if self.output == "probabilities":
            return answer
        return one_hot_labels(answer, len(x), self.n_classes, self.name)

    def _call(self, x: np.ndarray, name: str) -> np.ndarray:
        try:
            answer = self.fn(x)
        except Exception as exc:  # the user's function raising is a target failure
            raise TargetError(f"{name} raised {type(exc).__name__}: {exc}") from exc
        try:
            return np.asarray(answer)
        except (TypeError, ValueError) as exc:
            raise TargetError(f"{name} returned something that is not an array: {exc}") from None


def one_hot_labels(labels: np.ndarray, rows: int, n_classes: int, name: str) -> np.ndarray:
    """Class indices ``(rows,)`` as one-hot float32 rows, or a `TargetError`."""
    if labels.shape == (rows, 1):
        labels = labels[:, 0]
    if labels.shape != (rows,):
        raise TargetError(
            f"{name} returned shape {labels.shape} for {rows} inputs; expected ({rows},) labels"
        )
    if labels.dtype.kind not in "iuf" or (
        labels.dtype.kind == "f"
        and not (np.isfinite(labels).all() and np.array_equal(labels, np.round(labels)))
    ):
        raise TargetError(f"{name} returned labels that are not class indices ({labels.dtype})")
    indices = labels.astype(np.int64)
    if rows and (indices.min() < 0 or indices.max() >= n_classes):
        raise TargetError(
            f"{name} returned labels from {indices.min()} to {indices.max()}; "
            f"expected class indices in [0, {n_classes - 1}]"
        )
    rows_one_hot = np.zeros((rows, n_classes), dtype=np.float32)
    rows_one_hot[np.arange(rows), indices] = 1.0
    return rows_one_hot
