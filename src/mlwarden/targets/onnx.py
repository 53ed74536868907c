"""ONNX models as black-box targets, run by onnxruntime on the CPU.

The model must have one floating-point input (the batch of samples) and give class scores: the
probabilities output when it has one (scikit-learn converters emit a label output plus
probabilities, often as a ZipMap sequence of ``{class: probability}`` dictionaries, which is read
in sorted class order, the order of ``classes_``), else its first floating-point output. Models
exported with a fixed batch size are fed in chunks of that size. Not for: gradients (export the
PyTorch model itself for a white-box attack) or reading untrusted files (scan them first:
`mlwarden.targets.loading` does).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mlwarden.errors import InputError, TargetError, UsageError
from mlwarden.targets.base import DEFAULT_BATCH_SIZE, Target

try:
    import onnxruntime as ort  # type: ignore[import-untyped, unused-ignore]
except ImportError as exc:
    raise UsageError("ONNX models need onnxruntime: pip install mlwarden[onnx]") from exc

ModelOutput = Literal["auto", "logits", "probabilities"]
"""What the chosen output holds; ``auto`` decides from its name and one probe run."""

_FLOAT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
}
_ZIPMAP_PREFIX = "seq(map("
_PROBABILITY_TOLERANCE = 1e-3


class OnnxTarget(Target):
    """An ONNX classifier. ``mlwarden.target("model.onnx")`` builds one."""

    def __init__(
        self,
        model: str | os.PathLike[str] | Any,
        *,
        input_shape: Sequence[int] | None = None,
        n_classes: int | None = None,
        input_range: tuple[float, float] = (0.0, 1.0),
        model_output: ModelOutput = "auto",
        output_name: str | None = None,
        query_budget: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        name: str | None = None,
    ) -> None:
        """Wrap an ``.onnx`` file or an existing ``onnxruntime.InferenceSession``.

        Args:
            model: path of an ``.onnx`` file (loaded with the CPU provider) or a session.
            input_shape: shape of one sample; read from the model when its dimensions after the
                batch are fixed, required otherwise.
            n_classes: optional check against what the model answers.
            input_range: valid inputs in input units, e.g. (0, 1) for pixels.
            model_output: ``logits`` (softmax applied), ``probabilities``, or ``auto``: a
                probabilities output (by name or ZipMap) is probabilities, any other output is
                probabilities when one probe run gives rows in [0, 1] summing to 1.
            output_name: the output to read; chosen as described above when None.
            query_budget: maximum samples answered, None for unlimited.
            batch_size: samples per run.
            name: shown in reports; the file name by default.
        """
        if model_output not in ("auto", "logits", "probabilities"):
            raise InputError(
                f"model_output must be auto, logits or probabilities, got {model_output!r}"
            )
        if isinstance(model, (str, os.PathLike)):
            self.inference_session = _open_session(Path(model))
            default_name = Path(model).name
        elif hasattr(model, "get_inputs") and hasattr(model, "run"):
            self.inference_session = model
            default_name = "onnx model"
        else:
            raise InputError(
                f"expected an .onnx path or an onnxruntime.InferenceSession, got "
                f"{type(model).__name__}"
            )
        self._input_name, self._dtype, dims = _single_float_input(self.inference_session)
        self._fixed_batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
        shape = _sample_shape(dims[1:], input_shape)
        self._output_name, self._zipmap, named_probabilities = _pick_output(
            self.inference_session, output_name
        )
        self.model_output: ModelOutput = model_output
        if model_output == "auto" and named_probabilities:
            self.model_output = "probabilities"
        probe = np.full((1, *shape), float(np.mean(input_range)), dtype=np.float32)
        scores = self._scores(probe, default_name)
        if self.model_output == "auto":
            self.model_output = "probabilities" if _looks_like_probabilities(scores) else "logits"
        found = _to_probabilities(scores, self.model_output).shape[1]
        if n_classes is not None and n_classes != found:
            raise InputError(
                f"n_classes={n_classes} but the model's {self._output_name!r} output has "
                f"{found} classes; leave n_classes out or pick the output with output_name="
            )
        super().__init__(
            n_classes=found,
            input_shape=shape,
            input_range=input_range,
            query_budget=query_budget,
            batch_size=batch_size,
            name=name or default_name,
        )

    def _predict_batch(self, x: np.ndarray) -> np.ndarray:
        return _to_probabilities(self._scores(x, self.name), self.model_output)

    def _scores(self, x: np.ndarray, name: str) -> np.ndarray:
        if self._fixed_batch is None:
            return self._run(x, name)
        size = self._fixed_batch
        parts = []
        for start in range(0, len(x), size):
            chunk = x[start : start + size]
            rows = len(chunk)
            if rows < size:
                # The model only takes full batches: pad with copies of a real row, drop after.
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], size - rows, axis=0)])
            parts.append(self._run(chunk, name)[:rows])
        return np.concatenate(parts)

    def _run(self, x: np.ndarray, name: str) -> np.ndarray:
        try:
            feed = {self._input_name: x.astype(self._dtype)}
            (out,) = self.inference_session.run([self._output_name], feed)
        except Exception as exc:  # onnxruntime's errors have no common public base class
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise TargetError(f"{name} failed to run: {type(exc).__name__}: {message}") from exc
        if self._zipmap:
            return _zipmap_rows(out, name)
        return np.asarray(out, dtype=np.float64)


def _open_session(path: Path) -> Any:
    if not path.is_file():
        raise InputError(f"no ONNX model at {path}")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: warnings would repeat on every batch
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime's errors have no common public base class
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"onnxruntime cannot load {path}: {message}") from None


def _single_float_input(session: Any) -> tuple[str, Any, list[int | str | None]]:
    inputs = list(session.get_inputs())
    if len(inputs) != 1 or inputs[0].type not in _FLOAT_TYPES:
        listed = ", ".join(f"{i.name} ({i.type})" for i in inputs) or "none"
        raise InputError(
            f"the ONNX model must take one floating-point input (a batch of samples); its "
            f"inputs are: {listed}"
        )
    dims = list(inputs[0].shape)
    if len(dims) < 2:
        raise InputError(
            f"the ONNX model's input {inputs[0].name!r} has shape {dims}; expected "
            "(batch, *sample_shape)"
        )
    return inputs[0].name, _FLOAT_TYPES[inputs[0].type], dims


def _sample_shape(dims: list[int | str | None], given: Sequence[int] | None) -> tuple[int, ...]:
    static = all(isinstance(d, int) and d > 0 for d in dims)
    if given is None:
        if not static:
            raise InputError(
                f"the ONNX model's sample shape {dims} is not fixed; pass input_shape="
            )
        return tuple(int(d) for d in dims)  # type: ignore[arg-type]
    shape = tuple(int(d) for d in given)
    fixed_match = len(shape) == len(dims) and all(
        not isinstance(d, int) or d <= 0 or d == s for d, s in zip(dims, shape, strict=True)
    )
    if not fixed_match:
        raise InputError(f"input_shape {shape} does not fit the ONNX model's sample shape {dims}")
    return shape


def _pick_output(session: Any, wanted: str | None) -> tuple[str, bool, bool]:
    """(name, is a ZipMap, is named as probabilities) of the output to read."""
    outputs = list(session.get_outputs())
    if wanted is not None:
        chosen = [o for o in outputs if o.name == wanted]
        if not chosen:
            listed = ", ".join(o.name for o in outputs)
            raise InputError(f"the ONNX model has no output {wanted!r}; its outputs: {listed}")
        out = chosen[0]
        if not (out.type in _FLOAT_TYPES or out.type.startswith(_ZIPMAP_PREFIX)):
            raise InputError(f"output {wanted!r} holds {out.type}, not class scores")
        return out.name, out.type.startswith(_ZIPMAP_PREFIX), False
    for out in outputs:
        zipmap = out.type.startswith(_ZIPMAP_PREFIX)
        if zipmap or (out.type in _FLOAT_TYPES and "prob" in out.name.lower()):
            return out.name, zipmap, True
    for out in outputs:
        if out.type in _FLOAT_TYPES:
            return out.name, False, False
    listed = ", ".join(f"{o.name} ({o.type})" for o in outputs)
    raise InputError(f"the ONNX model has no floating-point output to read scores from: {listed}")


def _zipmap_rows(rows: Any, name: str) -> np.ndarray:
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise TargetError(f"{name} answered {type(rows).__name__}, not a ZipMap of class scores")
    classes = sorted(rows[0])
    if any(sorted(r) != classes for r in rows):
        raise TargetError(f"{name} answered ZipMap rows with different classes")
    return np.array([[r[c] for c in classes] for r in rows], dtype=np.float64)


def _looks_like_probabilities(scores: np.ndarray) -> bool:
    if scores.ndim == 2 and scores.shape[1] > 1:
        sums_to_one = np.allclose(scores.sum(axis=1), 1.0, atol=_PROBABILITY_TOLERANCE)
    else:
        sums_to_one = True
    return bool(sums_to_one and scores.min() >= 0.0 and scores.max() <= 1.0)


def _to_probabilities(scores: np.ndarray, model_output: ModelOutput) -> np.ndarray:
    """Scores ``(n, C)``, or one column / a vector for binary models, as ``(n, C >= 2)``."""
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if scores.ndim == 1:
        # One score per sample: the positive class of a binary model.
        positive = 0.5 * (1.0 + np.tanh(0.5 * scores)) if model_output == "logits" else scores
        return np.stack([1.0 - positive, positive], axis=1)
    if scores.ndim != 2:
        raise TargetError(f"the model answered shape {scores.shape}; expected (n, n_classes)")
    if model_output == "logits":
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))
    return scores
