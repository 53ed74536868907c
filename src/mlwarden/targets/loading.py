"""Load the model under test from a file or a URL, safely: `load_target` for the CLI.

Formats are recognised by content, never by extension: TorchScript and ``torch.export``
archives, weights (safetensors, or a ``torch.save`` state dict read with ``weights_only=True``)
plus a ``package.module:function`` factory that builds the module, ONNX, scikit-learn models in
skops files, and pickle / joblib files. mlwarden refuses to load a file its own scanner flags:
every file is scanned first (`mlwarden.scan`) and refused when a finding is at or above medium,
and pickle / joblib files are loaded only then. Skops files load only when every
type skops does not trust by default comes from scikit-learn, NumPy or SciPy. Not for: the
adapters themselves (`mlwarden.targets`) or scanning (`mlwarden.scan`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from mlwarden.errors import UsageError
from mlwarden.findings import Severity

if TYPE_CHECKING:
    import torch

    from mlwarden.report.model import Report
    from mlwarden.scan.policy import Policy
    from mlwarden.targets.base import Target
    from mlwarden.targets.onnx import ModelOutput as OnnxOutput
    from mlwarden.targets.torch import ModelOutput as TorchOutput

ModelFormat = Literal[
    "torchscript", "torch-export", "torch-checkpoint", "safetensors", "onnx", "skops", "pickle"
]

REFUSE_AT = Severity.MEDIUM
"""Scanner findings at or above this severity make `load_target` refuse the file."""

SAFE_SKOPS_PACKAGES = ("sklearn", "numpy", "scipy")
"""Top-level packages whose types a skops file may hold beyond skops' own trusted set."""

_WEIGHT_FORMATS: tuple[ModelFormat, ...] = ("safetensors", "torch-checkpoint")
_SAFETENSORS_HEADER_BYTES = 8
_SHAPE_HINT = "pass --input-shape (input_shape= in Python), the shape of one sample, e.g. 1,28,28"


def load_target(
    model: Path | str,
    *,
    factory: str | None = None,
    input_shape: Sequence[int] | None = None,
    n_classes: int | None = None,
    input_range: tuple[float, float] = (0.0, 1.0),
    mean: Sequence[float] | float | None = None,
    std: Sequence[float] | float | None = None,
    model_output: str | None = None,
    query_budget: int | None = None,
    policy: Policy | str | os.PathLike[str] | None = None,
    **http_options: Any,
) -> Target:
    """The `Target` for a model file or an ``http(s)://`` endpoint.

    Args:
        model: a model file, or the URL of a prediction endpoint (`HttpTarget`).
        factory: ``package.module:function`` returning the ``nn.Module`` whose weights `model`
            holds (safetensors or a ``torch.save`` state dict); called with no arguments. The
            current folder is importable.
        input_shape: shape of one sample. Required for TorchScript, factory models and URLs;
            read from ``torch.export`` archives and ONNX models with fixed shapes; optional for
            scikit-learn (``(n_features_in_,)``).
        n_classes: number of classes; found from the model when None (required for label-only
            endpoints).
        input_range: (low, high) valid inputs in input units.
        mean, std: per-channel normalisation inside the target, torch models only.
        model_output: torch ``logits`` (default), ``probabilities`` or ``log_probabilities``;
            ONNX ``auto`` (default), ``logits`` or ``probabilities``.
        query_budget: maximum samples the target answers, None for unlimited.
        policy: scanner policy (a `Policy` or a policy file) used to vet the file first.
        http_options: `HttpTarget` options (``protocol``, ``model_name``, ``headers``,
            ``timeout_s``, ``batch_size``, ...), URLs only.

    Raises:
        UsageError: the file is missing, not a loadable model, flagged by the scanner, or an
            option does not apply to it.
    """
    common: dict[str, Any] = {
        "n_classes": n_classes,
        "input_range": input_range,
        "query_budget": query_budget,
    }
    if isinstance(model, str) and model.startswith(("http://", "https://")):
        _reject_options(
            "an http(s) endpoint", factory=factory, mean=mean, std=std, model_output=model_output
        )
        if input_shape is None:
            raise UsageError(f"the shape of an endpoint's inputs is unknown; {_SHAPE_HINT}")
        from mlwarden.targets.http import HttpTarget

        return HttpTarget(model, input_shape=input_shape, **common, **http_options)
    if http_options:
        raise UsageError(f"{', '.join(sorted(http_options))}: only for http(s):// endpoints")
    path = Path(model)
    if not path.exists():
        raise UsageError(f"no model file at {path}")
    if not path.is_file():
        raise UsageError(f"{path} is not a file; give the model file itself")
    kind = _sniff(path)
    report = _vet(path, policy)
    if kind is None:
        kind = _pickle_or_refuse(report, path)
    if factory is not None and kind not in _WEIGHT_FORMATS:
        raise UsageError(
            f"--factory goes with a weights file (safetensors or a torch state dict); {path} is "
            f"{_describe(kind)}: load it without --factory"
        )
    name = path.name
    if kind in ("skops", "pickle"):
        _reject_options(_describe(kind), mean=mean, std=std, model_output=model_output)
        from mlwarden.targets.sklearn import SklearnTarget

        estimator = load_skops(path, str(path)) if kind == "skops" else _load_pickle(path)
        return SklearnTarget(
            _checked_estimator(estimator, path), input_shape=input_shape, name=name, **common
        )
    if kind == "onnx":
        _reject_options("an ONNX model", mean=mean, std=std)
        from mlwarden.targets.onnx import OnnxTarget

        return OnnxTarget(
            path,
            input_shape=input_shape,
            model_output=cast("OnnxOutput", model_output or "auto"),
            name=name,
            **common,
        )
    module, inferred_shape = _load_torch(path, kind, factory)
    shape = tuple(input_shape) if input_shape is not None else inferred_shape
    if inferred_shape is not None and shape != inferred_shape:
        raise UsageError(
            f"{path} was exported for samples of shape {inferred_shape}, not {shape}; "
            "leave --input-shape out"
        )
    if shape is None:
        raise UsageError(
            f"{path} is {_describe(kind)}, which does not record its input shape; {_SHAPE_HINT}"
        )
    from mlwarden.targets.torch import TorchTarget

    return TorchTarget(
        module,
        input_shape=shape,
        model_output=cast("TorchOutput", model_output or "logits"),
        mean=mean,
        std=std,
        name=name,
        **common,
    )


# -- recognising and vetting files -----------------------------------------------------------


def _sniff(path: Path) -> ModelFormat | None:
    """The format of `path` from its content; None when only the scanner can tell (pickles)."""
    if zipfile.is_zipfile(path):
        return _sniff_zip(path)
    with path.open("rb") as handle:
        head = handle.read(4096)
    size = path.stat().st_size
    if len(head) > _SAFETENSORS_HEADER_BYTES and head[_SAFETENSORS_HEADER_BYTES] == ord("{"):
        header_bytes = int.from_bytes(head[:_SAFETENSORS_HEADER_BYTES], "little")
        if _SAFETENSORS_HEADER_BYTES + header_bytes <= size:
            return "safetensors"
    from mlwarden.scan.blob import FileBlob
    from mlwarden.scan.formats.onnx import looks_like_onnx

    blob = FileBlob(path=str(path), size=size)
    try:
        if looks_like_onnx(head, blob):
            return "onnx"
    finally:
        blob.close()
    return None


def _sniff_zip(path: Path) -> ModelFormat:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise UsageError(f"{path} looks like a zip archive but cannot be read: {exc}") from None
    inner = {name.split("/", 1)[1] if "/" in name else name for name in names}
    if "constants.pkl" in inner or any(name.startswith("code/") for name in inner):
        return "torchscript"
    if "archive_format" in inner or "serialized_exported_program.json" in inner:
        return "torch-export"
    if "schema.json" in names:
        return "skops"
    if "data.pkl" in inner:
        return "torch-checkpoint"
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    raise UsageError(
        f"{path} is a zip archive ({shown}) but not a TorchScript, torch.export, torch.save or "
        "skops file; mlwarden cannot load it as a model"
    )


def _vet(path: Path, policy: Policy | str | os.PathLike[str] | None) -> Report:
    """Scan `path` and refuse it when the scan flags it or could not finish."""
    import mlwarden

    report = mlwarden.scan([path], policy=policy, kinds=["models"])
    flagged = [f for f in report.sorted_findings() if f.severity >= REFUSE_AT]
    if flagged:
        top = flagged[0]
        where = f" at {top.location}" if top.location else ""
        more = f" (and {len(flagged) - 1} more)" if len(flagged) > 1 else ""
        raise UsageError(
            f"mlwarden refuses to load a file its own scanner flags: {path} has a "
            f"{top.severity.value} finding{more}: {top.title}{where}; run `mlwarden scan "
            f"{path}` for details, and re-save the model in a safe format (skops, safetensors, "
            "ONNX) from a source you trust"
        )
    if report.errors:
        raise UsageError(
            f"mlwarden refuses to load {path}: it could not be scanned completely "
            f"({report.errors[0].message})"
        )
    return report


def _pickle_or_refuse(report: Report, path: Path) -> ModelFormat:
    from mlwarden.scan.formats.compressed import DECOMPRESSED_MEMBER

    formats = {item.format for item in report.scanned if item.member in (None, DECOMPRESSED_MEMBER)}
    if formats & {"pickle", "joblib"}:
        return "pickle"
    detected = ", ".join(sorted(formats)) or "nothing mlwarden recognises"
    raise UsageError(
        f"{path} is not a model file mlwarden can load (detected: {detected}); give a "
        "TorchScript, torch.export, ONNX, skops, pickle or joblib file, or weights with --factory"
    )


def _describe(kind: ModelFormat | None) -> str:
    return {
        "torchscript": "a TorchScript archive",
        "torch-export": "a torch.export archive",
        "torch-checkpoint": "a torch.save checkpoint",
        "safetensors": "a safetensors file",
        "onnx": "an ONNX model",
        "skops": "a skops file",
        "pickle": "a pickle / joblib file",
    }.get(kind or "", "an unrecognised file")


def _reject_options(what: str, **options: object) -> None:
    given = sorted(name for name, value in options.items() if value is not None)
    if given:
        raise UsageError(f"{', '.join(given)} cannot be used with {what}")


# -- scikit-learn ------------------------------------------------------------------------------


def load_skops(source: Path | bytes, shown: str) -> Any:
    """Load a skops file (its path or its bytes), trusting only scikit-learn, NumPy and SciPy
    types; anything else, or a file skops cannot read, is a `UsageError` naming `shown`."""
    try:
        import skops.io as sio  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        raise UsageError("skops files need skops: pip install mlwarden[sklearn]") from None
    from_bytes = isinstance(source, bytes)
    try:
        found = (
            sio.get_untrusted_types(data=source)
            if from_bytes
            else (sio.get_untrusted_types(file=source))
        )
        untrusted = list(found)
    except Exception as exc:  # skops raises many types on malformed files
        raise UsageError(f"skops cannot read {shown}: {type(exc).__name__}: {exc}") from None
    outside = sorted(t for t in untrusted if t.split(".")[0] not in SAFE_SKOPS_PACKAGES)
    if outside:
        raise UsageError(
            f"mlwarden refuses to load {shown}: it holds types outside scikit-learn, NumPy and "
            f"SciPy that skops does not trust: {', '.join(outside)}"
        )
    try:
        if from_bytes:
            return sio.loads(source, trusted=untrusted)
        return sio.load(source, trusted=untrusted)
    except Exception as exc:  # a file that passed the type check may still be corrupt
        raise UsageError(f"skops cannot load {shown}: {type(exc).__name__}: {exc}") from None


def _load_pickle(path: Path) -> Any:
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:  # e.g. a missing module or an incompatible scikit-learn version
        raise UsageError(f"cannot unpickle {path}: {type(exc).__name__}: {exc}") from None


def _checked_estimator(obj: Any, path: Path) -> Any:
    if not hasattr(obj, "get_params"):
        raise UsageError(f"{path} holds a {type(obj).__name__}, not a scikit-learn estimator")
    return obj


# -- PyTorch -----------------------------------------------------------------------------------


def _require_torch() -> None:
    if importlib.util.find_spec("torch") is None:
        raise UsageError("PyTorch models need torch: pip install mlwarden[torch]")


def _load_torch(
    path: Path, kind: ModelFormat, factory: str | None
) -> tuple[torch.nn.Module, tuple[int, ...] | None]:
    """The module in `path` and the sample shape it records, if any."""
    _require_torch()
    import torch

    if kind == "torchscript":
        try:
            scripted = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
        except Exception as exc:  # TorchScript raises RuntimeError and C++ errors alike
            raise UsageError(f"torch.jit.load cannot read {path}: {_first_line(exc)}") from None
        return scripted, None
    if kind == "torch-export":
        return _load_exported(path)
    if factory is None:
        raise UsageError(
            f"{path} is {_describe(kind)} and holds weights only; pass --factory "
            "package.module:function (factory= in Python) returning the nn.Module to load "
            "them into"
        )
    module = _call_factory(factory)
    _load_weights(module, path, kind, factory)
    return module, None


def _load_exported(path: Path) -> tuple[torch.nn.Module, tuple[int, ...] | None]:
    import torch

    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # torch.export raises many types on foreign archives
        raise UsageError(f"torch.export.load cannot read {path}: {_first_line(exc)}") from None
    from torch.export.graph_signature import InputKind

    specs = program.graph_signature.input_specs
    user_inputs = {s.arg.name for s in specs if s.kind == InputKind.USER_INPUT}
    shapes = [
        tuple(node.meta["val"].shape)
        for node in program.graph.nodes
        if node.op == "placeholder" and node.name in user_inputs and "val" in node.meta
    ]
    if len(user_inputs) != 1 or len(shapes) != 1:
        raise UsageError(
            f"{path} takes {len(user_inputs)} inputs; mlwarden attacks models with one input "
            "(a batch of samples)"
        )
    (dims,) = shapes
    sample = dims[1:]
    inferred = tuple(int(d) for d in sample) if all(isinstance(d, int) for d in sample) else None
    fixed_batch = int(dims[0]) if dims and isinstance(dims[0], int) else None
    return _exported_module(program.module(), fixed_batch), inferred


def _exported_module(program: torch.nn.Module, fixed_batch: int | None) -> torch.nn.Module:
    """An exported program as an ordinary module: eval/train are no-ops, any batch size runs."""
    import torch

    class ExportedProgram(torch.nn.Module):
        """Runs as exported (export in eval mode); full batches when the export fixed one."""

        def __init__(self) -> None:
            super().__init__()
            self.program = program

        def train(self, mode: bool = True) -> ExportedProgram:
            # Exported programs refuse train()/eval(): their mode was fixed at export time.
            self.training = mode
            return self

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if fixed_batch is None:
                return self.program(x)  # type: ignore[no-any-return]
            parts = []
            for start in range(0, x.shape[0], fixed_batch):
                chunk = x[start : start + fixed_batch]
                rows = chunk.shape[0]
                if rows < fixed_batch:
                    filler = chunk[:1].expand(fixed_batch - rows, *chunk.shape[1:])
                    parts.append(self.program(torch.cat([chunk, filler]))[:rows])
                else:
                    parts.append(self.program(chunk))
            return torch.cat(parts)

    return ExportedProgram()


@contextlib.contextmanager
def _current_folder_importable() -> Iterator[None]:
    """Like ``python -m``: the user's own modules in the working folder can be imported."""
    folder = os.getcwd()
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


def import_spec(spec: str, flag: str) -> Any:
    """The object ``package.module:name`` names, imported from the current folder as with
    ``python -m``; every failure is a `UsageError` naming `flag` (``--factory``, ``--train-fn``)."""
    module_name, _, attribute = str(spec).partition(":")
    if not module_name or not attribute:
        raise UsageError(f"{flag} must look like package.module:function, got {spec!r}")
    try:
        with _current_folder_importable():
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(
            f"cannot import {module_name} for {flag}: {exc}; run from the folder that holds "
            "it or add that folder to PYTHONPATH"
        ) from None
    except Exception as exc:  # the user's module failing at import time
        raise UsageError(
            f"importing {module_name} for {flag} raised {type(exc).__name__}: {exc}"
        ) from None
    found: Any = module
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise UsageError(f"{module_name} has no {attribute} (from {flag} {spec})")
        found = getattr(found, part)
    return found


def _call_factory(spec: str) -> torch.nn.Module:
    import torch

    function = import_spec(spec, "--factory")
    if not callable(function):
        raise UsageError(f"--factory {spec} is a {type(function).__name__}, not a function")
    try:
        built = function()
    except Exception as exc:  # the user's factory failing
        raise UsageError(
            f"--factory {spec} raised {type(exc).__name__}: {exc}; it is called with no "
            "arguments and must return the nn.Module"
        ) from None
    if not isinstance(built, torch.nn.Module):
        raise UsageError(
            f"--factory {spec} returned a {type(built).__name__}; it must return a torch.nn.Module"
        )
    return built


def _load_weights(module: torch.nn.Module, path: Path, kind: ModelFormat, factory: str) -> None:
    import torch

    if kind == "safetensors":
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise UsageError(f"cannot read safetensors file {path}: {_first_line(exc)}") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # the weights-only unpickler refusing is the common case
            raise UsageError(
                f"{path} is not a plain state dict (torch.load with weights_only=True refused "
                f"it: {_first_line(exc)}); save model.state_dict() or use safetensors"
            ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise UsageError(f"{path} does not hold a state dict (names to tensors)")
    try:
        outcome = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        mismatches = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
        detail = mismatches[0] if mismatches else _first_line(exc)
        raise UsageError(
            f"the weights in {path} do not fit the model --factory {factory} builds: {detail}"
        ) from None
    found = {"missing": outcome.missing_keys, "unexpected": outcome.unexpected_keys}
    problems = [
        f"{label} {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"
        for label, keys in found.items()
        if keys
    ]
    if problems:
        raise UsageError(
            f"the weights in {path} do not fit the model --factory {factory} builds: "
            f"{'; '.join(problems)}"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
