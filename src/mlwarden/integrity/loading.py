"""Verified loading: `mlwarden.load` checks the signature, scans, then loads with a safe loader.

The order matters and every step refuses on failure: (1) the whole model verifies against its
signature; (2) the file to load is read into memory once and those exact bytes are hashed again
against the signed digest, so a file swapped after step 1 is refused; (3) the scanner examines the
same bytes; (4) the bytes are handed to the safest loader for their format: safetensors, PyTorch
checkpoints through ``torch.load(weights_only=True)``, skops (scikit-learn, NumPy and SciPy types
only) and ONNX. Formats that run code when loaded (pickle, joblib, TorchScript, Keras Lambda) are
refused here even when signed: a signature proves who made a file, not that it is harmless. Not
for: building attack targets (`mlwarden.targets.loading`).
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlwarden.errors import UsageError, VerificationError
from mlwarden.integrity.manifest import HASH_TYPES, Manifest
from mlwarden.integrity.signing import verify

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

PathLike = str | os.PathLike[str]

LOADABLE = ("safetensors", "torch-checkpoint", "skops", "onnx")
"""Formats `load` hands to a loader; everything else is refused."""


def load(
    path: PathLike,
    *,
    signature: PathLike | None = None,
    key: PathLike | ec.EllipticCurvePublicKey | None = None,
    certificate_chain: Sequence[PathLike] = (),
    file: str | None = None,
    framework: str = "numpy",
    policy: Any = None,
) -> Any:
    """Verify, scan and load a signed model; raise instead of loading anything unverified.

    `path`: the signed model file or folder. `signature`: default ``model.sig`` in the folder
    (``<file>.sig`` beside a file). `key`: the signer's public key (PEM path or key object), or
    `certificate_chain`: trusted root certificates. `file`: which file of a folder to load
    (default: the only loadable one). `framework`: ``numpy`` or ``pt`` for safetensors tensors.
    `policy`: scan policy (see `mlwarden.scan`). Returns a dict of tensors (safetensors), a state
    dict (PyTorch), an estimator (skops) or an ``onnx.ModelProto``. Raises `VerificationError`
    when the signature or any file does not verify, `UsageError` when the file is flagged by the
    scanner or is not in a safe format.
    """
    if framework not in ("numpy", "pt"):
        raise UsageError(f"framework must be 'numpy' or 'pt', got {framework!r}")
    root = Path(path)
    result = verify(root, signature=signature, public_key=key, certificate_chain=certificate_chain)
    result.raise_for_failure()
    assert result.manifest is not None
    name = _choose_file(root, result.manifest, file)
    disk = root if name == "." else root.joinpath(*name.split("/"))
    data = _read_verified(disk, name, result.manifest)
    kind = _format_of(data, disk)
    _vet_bytes(data, disk, policy)
    return _LOADERS[kind](data, disk, framework)


def _choose_file(root: Path, manifest: Manifest, file: str | None) -> str:
    files = sorted(manifest.by_file())
    if not root.is_dir():
        return "."
    if file is not None:
        name = Path(file).as_posix()
        if name not in files:
            raise UsageError(f"{file} is not a signed file of {root}; signed files: {_few(files)}")
        return name
    candidates = [
        name for name in files if _sniff_head(root.joinpath(*name.split("/"))) in LOADABLE
    ]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise UsageError(
            f"{root} holds no file mlwarden loads safely (safetensors, torch.save checkpoint, "
            f"skops, ONNX); signed files: {_few(files)}"
        )
    raise UsageError(
        f"{root} holds several loadable files; choose one with file=: {_few(candidates)}"
    )


def _few(names: list[str]) -> str:
    return ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")


def _read_verified(disk: Path, name: str, manifest: Manifest) -> bytes:
    """The file's bytes, read once and checked against the signed digests."""
    try:
        data = disk.read_bytes()
    except OSError as exc:
        raise VerificationError(f"cannot read {disk}: {exc.strerror or exc}") from None
    factory = HASH_TYPES[manifest.serialization.hash_type][1]
    covered = 0
    for resource_name, _algorithm, digest in manifest.by_file()[name]:
        start, end = 0, len(data)
        if resource_name != name:  # a shard: name:start:end
            start, end = (int(v) for v in resource_name.rsplit(":", 2)[1:])
        hasher = factory()
        hasher.update(memoryview(data)[start:end])
        if start != covered or end > len(data) or hasher.hexdigest() != digest:
            raise VerificationError(f"{disk} changed after it was verified; refusing to load it")
        covered = end
    if covered != len(data):
        raise VerificationError(f"{disk} changed after it was verified; refusing to load it")
    return data


_SAFETENSORS_HEADER_BYTES = 8


def _sniff_head(disk: Path) -> str | None:
    """The format of a file on disk, from its first bytes (and its zip directory)."""
    try:
        with disk.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    return _sniff(head, disk)


def _sniff(data: bytes, source: Path | bytes) -> str | None:
    """The format of `data` (a file's head or all of it); zips are listed from `source`."""
    if data[:4] == b"PK\x03\x04":
        try:
            opened = io.BytesIO(source) if isinstance(source, bytes) else source
            with zipfile.ZipFile(opened) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return None
        inner = {n.split("/", 1)[1] if "/" in n else n for n in names}
        if "schema.json" in names:
            return "skops"
        if "constants.pkl" in inner or any(n.startswith("code/") for n in inner):
            return "torchscript"
        if "data.pkl" in inner:
            return "torch-checkpoint"
        return None
    if len(data) > _SAFETENSORS_HEADER_BYTES and data[_SAFETENSORS_HEADER_BYTES] == ord("{"):
        return "safetensors"
    from mlwarden.scan.blob import BytesBlob
    from mlwarden.scan.formats.onnx import looks_like_onnx

    if looks_like_onnx(data[:4096], BytesBlob(source if isinstance(source, bytes) else data)):
        return "onnx"
    return None


def _format_of(data: bytes, disk: Path) -> str:
    kind = _sniff(data, data)
    if kind in LOADABLE:
        assert kind is not None
        return kind
    what = {"torchscript": "a TorchScript archive (it runs code when loaded)"}.get(
        kind or "", "not a safetensors, torch.save, skops or ONNX file"
    )
    raise UsageError(
        f"mlwarden.load refuses {disk}: {what}. A signature proves who made a file, not that "
        "loading it is harmless; re-save the model as safetensors, skops or ONNX"
    )


def _vet_bytes(data: bytes, disk: Path, policy: Any) -> None:
    from mlwarden.scan.blob import BytesBlob
    from mlwarden.scan.engine import scan_blob
    from mlwarden.scan.policy import Policy
    from mlwarden.targets.loading import REFUSE_AT

    resolved = (
        policy
        if isinstance(policy, Policy)
        else (Policy.from_file(Path(policy)) if policy is not None else Policy())
    )
    scan = scan_blob(BytesBlob(data), str(disk), resolved)
    flagged = sorted(
        (f for f in scan.findings if f.severity >= REFUSE_AT), key=lambda f: -f.severity.rank
    )
    if flagged:
        raise UsageError(
            f"mlwarden refuses to load {disk}: its scanner reports a {flagged[0].severity.value} "
            f"finding: {flagged[0].title}; run `mlwarden scan {disk}` for details"
        )
    if scan.errors:
        raise UsageError(f"mlwarden refuses to load {disk}: {scan.errors[0].message}")


def _load_safetensors(data: bytes, disk: Path, framework: str) -> Any:
    try:
        if framework == "pt":
            from safetensors.torch import load as load_pt

            return load_pt(data)
        from safetensors.numpy import load as load_np

        return load_np(data)
    except ImportError:
        raise UsageError("safetensors files need the safetensors package") from None
    except Exception as exc:  # safetensors raises its own error type on malformed headers
        raise UsageError(f"cannot load {disk}: {type(exc).__name__}: {exc}") from None


def _load_torch(data: bytes, disk: Path, framework: str) -> Any:
    try:
        import torch
    except ImportError:
        raise UsageError("PyTorch checkpoints need torch: pip install mlwarden[torch]") from None
    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:  # weights_only refuses anything but tensors and plain containers
        raise UsageError(
            f"torch.load(weights_only=True) refuses {disk}: {type(exc).__name__}: {exc}"
        ) from None


def _load_skops(data: bytes, disk: Path, framework: str) -> Any:
    from mlwarden.targets.loading import load_skops

    return load_skops(data, str(disk))


def _load_onnx(data: bytes, disk: Path, framework: str) -> Any:
    try:
        import onnx
    except ImportError:
        raise UsageError("ONNX models need onnx: pip install mlwarden[onnx]") from None
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf decode errors
        raise UsageError(f"cannot load {disk}: {type(exc).__name__}: {exc}") from None
    from onnx.external_data_helper import uses_external_data

    if any(uses_external_data(t) for t in model.graph.initializer):
        raise UsageError(
            f"{disk} keeps tensors in external data files, which onnx would read from disk after "
            "verification; save the model with its tensors inside (onnx.save(..., "
            "save_as_external_data=False)) to load it through mlwarden.load"
        )
    return model


_LOADERS = {
    "safetensors": _load_safetensors,
    "torch-checkpoint": _load_torch,
    "skops": _load_skops,
    "onnx": _load_onnx,
}
