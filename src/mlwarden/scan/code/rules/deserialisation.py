"""Rules for loaders that run code from the file they load: pickle and its relatives, torch.load,
numpy.load with pickles allowed, unsafe YAML loaders, Keras loading with safe mode off.

Each call is matched by its fully qualified name (aliases and ``from`` imports resolved), and the
arguments that make it safe (``weights_only=True``, ``Loader=yaml.SafeLoader``) are read as
literals: a value computed at run time cannot be verified and is reported as such.
Not for: the files themselves (the model-file scanner reads those).
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from mlwarden.findings import Severity
from mlwarden.scan.code.context import (
    FileContext,
    argument,
    is_false,
    is_true,
    keyword,
    keyword_node,
    last_name,
)
from mlwarden.scan.code.rules import register_rule

PICKLE_RULE = "code.pickle-load"
TORCH_RULE = "code.torch-load"
NUMPY_RULE = "code.numpy-allow-pickle"
YAML_RULE = "code.yaml-unsafe-load"
KERAS_RULE = "code.keras-unsafe-mode"
RULES = (PICKLE_RULE, TORCH_RULE, NUMPY_RULE, YAML_RULE, KERAS_RULE)

_PICKLE_MODULES = ("pickle", "cPickle", "_pickle", "dill", "cloudpickle")
PICKLE_LOADERS = frozenset(
    {f"{m}.{f}" for m in _PICKLE_MODULES for f in ("load", "loads", "Unpickler", "_load", "_loads")}
    | {
        "joblib.load",
        "sklearn.externals.joblib.load",
        "pandas.read_pickle",
        "shelve.open",
        "jsonpickle.decode",
    }
)
"""Calls that unpickle (run) whatever their input holds."""

TORCH_LOADERS = frozenset({"torch.load", "torch.serialization.load"})
YAML_UNSAFE = frozenset({"yaml.unsafe_load", "yaml.unsafe_load_all"})
YAML_FULL = frozenset({"yaml.full_load", "yaml.full_load_all"})
YAML_LOADERS = frozenset({"yaml.load", "yaml.load_all"})
YAML_SAFE_LOADERS = frozenset({"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"})
YAML_UNSAFE_LOADERS = frozenset({"Loader", "CLoader", "UnsafeLoader", "CUnsafeLoader"})
KERAS_ROOTS = frozenset({"keras", "tensorflow", "tf_keras"})

_WHY_PICKLE = (
    "Unpickling runs whatever code the data names (any importable function, with any "
    "arguments); a model or data file from anyone else can take over the machine that loads it."
)


def _pickle_load(node: ast.Call, name: str, ctx: FileContext) -> None:
    ctx.report(
        PICKLE_RULE,
        Severity.HIGH,
        node,
        title=f"{name}() deserialises with pickle and can run arbitrary code",
        detail=f"{name}() unpickles its input. {_WHY_PICKLE}",
        remediation="Store models and data in a format without code (safetensors, ONNX, JSON, "
        "npy without pickles; skops for scikit-learn), or scan the file with `mlwarden scan` "
        "and load only files you produced yourself.",
        evidence={"call": name},
    )


def _torch_load(node: ast.Call, name: str, ctx: FileContext) -> None:
    weights_only = keyword(node, "weights_only")
    if is_true(weights_only):
        return
    fix = "Pass weights_only=True (and load only tensors and plain containers), or store the "
    fix += "weights as safetensors."
    if is_false(weights_only):
        ctx.report(
            TORCH_RULE,
            Severity.HIGH,
            keyword_node(node, "weights_only") or node,
            title="torch.load(weights_only=False) unpickles the file and can run arbitrary code",
            detail=f"weights_only=False turns off PyTorch's restricted unpickler. {_WHY_PICKLE}",
            remediation=fix,
            evidence={"call": name, "weights_only": False},
        )
    elif weights_only is None:
        ctx.report(
            TORCH_RULE,
            Severity.MEDIUM,
            node,
            title="torch.load() without weights_only=True",
            detail="torch>=2.6 defaults to weights_only=True, but older versions run any pickle "
            f"in the file: the same line is unsafe wherever an older torch is installed. "
            f"{_WHY_PICKLE}",
            remediation=fix,
            evidence={"call": name, "weights_only": None},
        )
    else:
        ctx.report(
            TORCH_RULE,
            Severity.MEDIUM,
            keyword_node(node, "weights_only") or node,
            title="torch.load() with a weights_only value that is not the literal True",
            detail="weights_only is computed at run time, so it cannot be verified that the "
            f"restricted unpickler is used. {_WHY_PICKLE}",
            remediation=fix,
            evidence={"call": name, "weights_only": ctx.text_of(weights_only)},
        )


def _numpy_load(node: ast.Call, name: str, ctx: FileContext) -> None:
    allow = argument(node, 2, "allow_pickle")
    if allow is None or is_false(allow):
        return
    literal = is_true(allow)
    ctx.report(
        NUMPY_RULE,
        Severity.HIGH if literal else Severity.LOW,
        keyword_node(node, "allow_pickle") or node,
        title="numpy.load(allow_pickle=True) unpickles object arrays"
        if literal
        else "numpy.load() with allow_pickle computed at run time",
        detail="With allow_pickle=True, numpy.load unpickles object arrays inside .npy/.npz "
        f"files. {_WHY_PICKLE}",
        remediation="Drop allow_pickle=True (the default is False) and save only numeric "
        "arrays; keep objects in JSON or another format without code.",
        evidence={"call": name, "allow_pickle": ctx.text_of(allow)},
    )


def _yaml_load(node: ast.Call, name: str, ctx: FileContext) -> None:
    fix = "Use yaml.safe_load(...) (or Loader=yaml.SafeLoader)."
    why = (
        "PyYAML's full and unsafe loaders build arbitrary Python objects from tags such as "
        "!!python/object/apply, which call functions while the document is read."
    )
    evidence: dict[str, object] = {"call": name}
    if name in YAML_UNSAFE:
        severity, title = Severity.HIGH, f"{name}() builds arbitrary Python objects"
    elif name in YAML_FULL:
        severity, title = Severity.MEDIUM, f"{name}() uses the FullLoader"
    else:
        loader = argument(node, 1, "Loader")
        loader_name = last_name(ctx.qualname(loader)) if loader is not None else ""
        evidence["Loader"] = ctx.text_of(loader) if loader is not None else None
        if loader_name in YAML_SAFE_LOADERS:
            return
        if loader_name in YAML_UNSAFE_LOADERS:
            severity, title = Severity.HIGH, f"{name}() with the unsafe {loader_name}"
        elif loader is None:
            severity, title = Severity.MEDIUM, f"{name}() without a safe Loader"
            why += " Without Loader=, PyYAML before 5.1 uses the unsafe Loader and 5.1-5.4 the "
            why += "FullLoader (6.0 refuses the call)."
        else:
            severity, title = Severity.MEDIUM, f"{name}() with a Loader that is not a safe one"
    ctx.report(
        YAML_RULE,
        severity,
        node,
        title=title,
        detail=why,
        remediation=fix,
        evidence=evidence,
    )


def _keras_load(node: ast.Call, name: str, ctx: FileContext) -> None:
    safe_mode = keyword(node, "safe_mode")
    if not is_false(safe_mode):
        return
    ctx.report(
        KERAS_RULE,
        Severity.HIGH,
        keyword_node(node, "safe_mode") or node,
        title="Keras load_model(safe_mode=False) runs the model's Lambda-layer code",
        detail="safe_mode=False lets Keras deserialise Python lambdas and arbitrary objects "
        "stored in the model's config, so loading the file runs code chosen by its author.",
        remediation="Remove safe_mode=False. Rebuild Lambda layers as registered custom layers "
        "defined in your own code.",
        evidence={"call": name},
    )


def _keras_unsafe_switch(node: ast.Call, name: str, ctx: FileContext) -> None:
    ctx.report(
        KERAS_RULE,
        Severity.HIGH,
        node,
        title="Keras unsafe deserialisation enabled for the whole process",
        detail=f"{name}() turns safe mode off for every later load_model call, so loading any "
        "model file runs Python lambdas stored in it.",
        remediation="Remove the call; rebuild Lambda layers as registered custom layers defined "
        "in your own code.",
        evidence={"call": name},
    )


_Checker = Callable[[ast.Call, str, FileContext], None]

_BY_NAME: dict[str, _Checker] = {
    **dict.fromkeys(PICKLE_LOADERS, _pickle_load),
    **dict.fromkeys(TORCH_LOADERS, _torch_load),
    "numpy.load": _numpy_load,
    **dict.fromkeys(YAML_UNSAFE | YAML_FULL | YAML_LOADERS, _yaml_load),
}
_BY_LAST_NAME: dict[str, _Checker] = {
    "load_model": _keras_load,
    "enable_unsafe_deserialization": _keras_unsafe_switch,
}


@register_rule(ast.Call)
def unsafe_deserialisation(node: ast.Call, ctx: FileContext) -> None:
    """Report calls that deserialise with pickle or build arbitrary objects."""
    name = ctx.qualname(node.func)
    if name is None:
        return
    checker = _BY_NAME.get(name)
    if checker is None:
        checker = _BY_LAST_NAME.get(last_name(name))
        if checker is _keras_unsafe_switch and name.partition(".")[0] not in KERAS_ROOTS:
            return
    if checker is not None:
        checker(node, name, ctx)
