"""Regenerate the framework allowlists in src/mlwarden/scan/policy_data/ (a maintainer tool).

It imports PyTorch, NumPy, SciPy and scikit-learn in the development environment to enumerate
the exact names their legitimate pickles reference: tensor rebuild functions, storages, dtypes,
layer, optimizer and scheduler classes, estimator classes. The scanner itself never imports
them; it reads the generated text files. Run: ``.venv/bin/python tools/gen_allowlists.py``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "mlwarden" / "scan" / "policy_data"

# Module name fragments whose classes are never allowlisted: they download, test, or run code.
EXCLUDED_FRAGMENTS = (
    "test",
    "datasets",
    "externals",
    "_show_versions",
    "parallel",
    "_build_utils",
    "hub",
    "serialization",
    "jit",
    "cpp_extension",
    "_dynamo",
    "_inductor",
    "distributed",
    "multiprocessing",
    "package",
    "onnx",
    "backends",
    "utils.data",
    "utils.bottleneck",
    "utils.collect_env",
    "_export",
    "export",
    "fx",
    "compiler",
    "profiler",
    "benchmark",
)


def _importable(names: Iterable[str]) -> Iterable[object]:
    for name in names:
        if any(fragment in name for fragment in EXCLUDED_FRAGMENTS):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield importlib.import_module(name)
        except Exception:
            continue


def _walk(package: str) -> list[str]:
    module = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        names.append(info.name)
    return names


def _classes(modules: Iterable[object], root: str) -> set[str]:
    found = set()
    for module in modules:
        for _, obj in inspect.getmembers(module, inspect.isclass):
            owner = getattr(obj, "__module__", "") or ""
            if owner.startswith(root) and not any(f in owner for f in EXCLUDED_FRAGMENTS):
                found.add(f"{owner}.{obj.__qualname__}")
    return found


def torch_names() -> set[str]:
    import torch
    import torch.nn.modules as nn_modules

    names = {f"torch._utils.{n}" for n in dir(torch._utils) if n.startswith("_rebuild")}
    names |= {f"torch._tensor.{n}" for n in dir(torch._tensor) if n.startswith("_rebuild")}
    names |= {
        "torch.storage._load_from_bytes",
        "torch.storage.UntypedStorage",
        "torch.storage.TypedStorage",
        "torch.Size",
        "torch.device",
        "torch.Tensor",
        "torch._tensor.Tensor",
        "torch.nn.parameter.Parameter",
        "torch.nn.parameter.Buffer",
        "torch.nn.parameter.UninitializedParameter",
        "torch.nn.parameter.UninitializedBuffer",
        "torch.serialization._get_layout",
        "torch._utils._element_size",
        "torch.nn.modules.module._WrappedHook",
        "torch.utils.hooks.RemovableHandle",
        "torch.utils.hooks.BackwardHook",
        "torch.return_types.max",
        "torch.return_types.min",
        "torch.return_types.topk",
        "torch.return_types.sort",
    }
    for attr in dir(torch):
        value = getattr(torch, attr, None)
        if attr.endswith("Storage") and inspect.isclass(value):
            names.add(f"torch.{attr}")
        if isinstance(value, (torch.dtype, torch.layout, torch.memory_format, torch.qscheme)):
            names.add(f"torch.{attr}")
    modules = list(_importable(_walk("torch.nn.modules")))
    names |= _classes(modules, "torch.nn.modules")
    names |= _classes(
        _importable(["torch.optim", "torch.optim.lr_scheduler", *_walk("torch.optim")]),
        "torch.optim",
    )
    names |= _classes(
        _importable(["torch.nn.utils.parametrizations", "torch.nn.utils.parametrize"]),
        "torch.nn.utils",
    )
    del nn_modules
    return {n for n in names if "<locals>" not in n}


def numpy_names() -> set[str]:
    import numpy as np

    names = {
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.core.numeric._frombuffer",
        "numpy._core.numeric._frombuffer",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.ma.core.MaskedArray",
        "numpy.ma.core._mareconstruct",
        "numpy.ma.core.MaskedConstant",
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._pickle.__generator_ctor",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random.mtrand.RandomState",
        "numpy.random._generator.Generator",
        "numpy.random.bit_generator.SeedSequence",
        "numpy.random._mt19937.MT19937",
        "numpy.random._pcg64.PCG64",
        "numpy.random._pcg64.PCG64DXSM",
        "numpy.random._philox.Philox",
        "numpy.random._sfc64.SFC64",
        "numpy.matrix",
        "numpy.matrixlib.defmatrix.matrix",
        "numpy.core.records.recarray",
        "numpy._core.records.recarray",
        "numpy.core.records.record",
        "numpy._core.records.record",
    }
    for attr in dir(np):
        value = getattr(np, attr, None)
        if inspect.isclass(value) and issubclass(value, np.generic):
            names.add(f"numpy.{attr}")
    if hasattr(np, "dtypes"):
        names |= {f"numpy.dtypes.{n}" for n in dir(np.dtypes) if n.endswith("DType")}
    return names


def sklearn_names() -> set[str]:
    names = _classes(_importable(_walk("sklearn")), "sklearn")
    names |= {
        "sklearn.neighbors._kd_tree.newObj",
        "sklearn.neighbors._ball_tree.newObj",
        "sklearn.metrics._dist_metrics.newObj",
    }
    return names


def scipy_names() -> set[str]:
    from scipy import sparse

    names = set()
    for attr in dir(sparse):
        value = getattr(sparse, attr)
        if inspect.isclass(value) and attr.endswith(("_matrix", "_array")):
            names.add(f"{value.__module__}.{value.__qualname__}")
    return names


def write(name: str, names: set[str], why: str) -> None:
    path = OUT / f"allow-{name}.txt"
    lines = [
        "# Generated by tools/gen_allowlists.py with the versions in the dev environment.",
        f"# {why}",
        "",
    ]
    lines += sorted(f"{n}  # {why}" for n in names)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{path.name}: {len(names)} names", file=sys.stderr)


def main() -> None:
    write("torch", torch_names(), "PyTorch tensors, storages, dtypes, layers, optimizers")
    write("numpy", numpy_names(), "NumPy arrays, dtypes, scalars, random generators")
    write("sklearn", sklearn_names(), "scikit-learn estimators and their internal state")
    write("scipy", scipy_names(), "SciPy sparse matrices held by fitted estimators")


if __name__ == "__main__":
    main()
