"""The model under test: `mlwarden.target(obj)` wraps any supported model as a `Target`.

Adapters are found through `ADAPTERS`, a table of (module, test) pairs checked in order; the
tests look only at the object's type names, so no framework is imported until its adapter is
chosen. Adding an adapter means adding one module and one row here.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlwarden.errors import InputError
from mlwarden.targets.base import Target, WhiteBoxTarget, validate_batch, validate_labels

__all__ = ["ADAPTERS", "Target", "WhiteBoxTarget", "target", "validate_batch", "validate_labels"]


def _type_names(obj: Any) -> set[str]:
    return {f"{t.__module__}.{t.__qualname__}" for t in type(obj).__mro__}


def _is_torch_module(obj: Any) -> bool:
    return "torch.nn.modules.module.Module" in _type_names(obj)


def _is_sklearn_estimator(obj: Any) -> bool:
    return hasattr(obj, "get_params") and (
        hasattr(obj, "predict_proba") or hasattr(obj, "decision_function")
    )


def _is_onnx(obj: Any) -> bool:
    if isinstance(obj, (str, Path)) and str(obj).lower().endswith(".onnx"):
        return True
    return any(name.startswith("onnxruntime.") for name in _type_names(obj))


def _is_url(obj: Any) -> bool:
    return isinstance(obj, str) and obj.startswith(("http://", "https://"))


ADAPTERS: tuple[tuple[str, Callable[[Any], bool]], ...] = (
    ("mlwarden.targets.torch:TorchTarget", _is_torch_module),
    ("mlwarden.targets.sklearn:SklearnTarget", _is_sklearn_estimator),
    ("mlwarden.targets.onnx:OnnxTarget", _is_onnx),
    ("mlwarden.targets.http:HttpTarget", _is_url),
    ("mlwarden.targets.callable:CallableTarget", callable),
)
"""``module:Class`` of each adapter and the test that picks it, first match wins."""


def target(obj: Any, **options: Any) -> Target:
    """Wrap `obj` as a `Target`: an nn.Module, a scikit-learn estimator, an ONNX file or
    onnxruntime session, an ``http(s)://`` endpoint, or any callable returning probabilities.

    `options` go to the adapter (``input_shape``, ``n_classes``, ``input_range``,
    ``query_budget``, ...). A `Target` is returned unchanged.
    """
    if isinstance(obj, Target):
        if options:
            raise InputError("options cannot be applied to an existing Target; build a new one")
        return obj
    for spec, accepts in ADAPTERS:
        if accepts(obj):
            module_name, class_name = spec.split(":")
            adapter: Callable[..., Target] = getattr(
                importlib.import_module(module_name), class_name
            )
            _check_options(adapter, obj, options)
            return adapter(obj, **options)
    raise InputError(
        f"cannot use a {type(obj).__name__} as a target; give a torch.nn.Module, a scikit-learn "
        "estimator, an .onnx path, an http(s):// URL or a callable returning probabilities"
    )


def _check_options(adapter: Callable[..., Target], obj: Any, options: dict[str, Any]) -> None:
    """A missing or unknown option is the caller's mistake: say which, not a raw TypeError."""
    try:
        inspect.signature(adapter).bind(obj, **options)
    except TypeError as exc:
        raise InputError(
            f"cannot wrap a {type(obj).__name__} as a target: {exc}. A torch.nn.Module needs "
            "input_shape=(...) (the shape of one sample, e.g. (1, 28, 28)); see "
            "mlwarden.targets.target for each kind's options"
        ) from None
