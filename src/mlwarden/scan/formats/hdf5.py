"""HDF5 files, as Keras saves whole models (``.h5``): the model config stored in root attributes.

Keras (tf.keras and Keras 3's legacy format) writes the architecture as JSON in the root
attributes ``model_config`` and ``training_config``; loading rebuilds every layer from it,
Lambda layers included, and ignores ``safe_mode`` (CVE-2025-9905). The attributes are read with
h5py, which reads data and runs nothing, and handed to `mlwarden.scan.keras_config`. Datasets
(the weights) are never read. Bytes before a superblock found past offset 0 (the user block)
are scanned as nested content, since another reader can take the file for what they hold.

Not for: HDF5 files that are not Keras models beyond noting their format.
"""

from __future__ import annotations

import json
from typing import Any

from mlwarden.findings import Severity
from mlwarden.scan.blob import Blob, FileBlob
from mlwarden.scan.context import LimitExceeded, ScanContext
from mlwarden.scan.formats import FormatHandler, register
from mlwarden.scan.formats._blobio import open_random_access

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
FIRST_USERBLOCK_OFFSET = 512
"""The superblock sits at 0 or at 512, 1024, 2048 ... (a user block precedes it)."""
CONFIG_ATTRIBUTES = ("model_config", "training_config")


def find_superblock(head: bytes, blob: Blob) -> int | None:
    """Offset of the HDF5 superblock signature, searched where the HDF5 library searches."""
    if head[:8] == HDF5_SIGNATURE:
        return 0
    offset = FIRST_USERBLOCK_OFFSET
    while offset + 8 <= len(head):
        if head[offset : offset + 8] == HDF5_SIGNATURE:
            return offset
        offset *= 2
    if offset + 8 > blob.size:
        return None
    with open_random_access(blob) as f:
        while offset + 8 <= blob.size:
            f.seek(offset)
            if f.read(8) == HDF5_SIGNATURE:
                return offset
            offset *= 2
    return None


class Hdf5Handler(FormatHandler):
    """Registered twice: the signature at offset 0 is unambiguous and goes before the weak
    magic numbers (raw lzma); one found further in goes after zip and tar, because a container
    whose member happens to start at offset 512 or 1024 is a container first."""

    name = "hdf5"

    def __init__(self, *, with_userblock: bool) -> None:
        self.with_userblock = with_userblock
        self.priority = 25 if with_userblock else 12

    def sniff_raw(self, head: bytes, blob: Blob) -> bool:
        return self.sniff(head, blob)

    def sniff(self, head: bytes, blob: Blob) -> bool:
        if not self.with_userblock:
            return head[:8] == HDF5_SIGNATURE
        return find_superblock(head, blob) is not None

    def scan(self, ctx: ScanContext) -> None:
        superblock = find_superblock(ctx.blob.head(), ctx.blob)
        if superblock:
            ctx.scan_child(ctx.blob.region(0, superblock), "<hdf5-userblock>")
        try:
            attributes = _read_config_attributes(ctx)
        except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
            _report_unreadable(ctx, exc)
            return
        for name, text in attributes.items():
            _analyse_attribute(ctx, name, text)


def _read_config_attributes(ctx: ScanContext) -> dict[str, str]:
    source: Any = ctx.file_path if isinstance(ctx.blob, FileBlob) and ctx.file_path else None
    handle = None
    if source is None:
        handle = open_random_access(ctx.blob)
        source = handle
    import h5py  # only when an HDF5 file is found: it costs 0.1 s to import

    try:
        with h5py.File(source, "r") as f:
            found: dict[str, str] = {}
            for name in CONFIG_ATTRIBUTES:
                if name in f.attrs:
                    _check_size(ctx, f.attrs.get_id(name), name)
                    found[name] = _as_text(f.attrs[name])
            return found
    finally:
        if handle is not None:
            handle.close()


def _check_size(ctx: ScanContext, attribute: Any, name: str) -> None:
    size = int(attribute.get_storage_size())
    if size > ctx.limits.max_metadata_bytes:
        raise LimitExceeded("max_metadata_bytes", f"HDF5 root attribute {name!r} of {size} bytes")


def _as_text(value: Any) -> str:
    import numpy as np

    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"attribute is an array of {value.size} values, not one string")
        value = value.reshape(-1)[0]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    raise ValueError(f"attribute holds {type(value).__name__}, not a string")


def _analyse_attribute(ctx: ScanContext, name: str, text: str) -> None:
    origin = f"HDF5 root attribute {name!r}"
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as exc:
        ctx.add(
            "keras.unparseable-config",
            Severity.MEDIUM,
            f"Keras {name} in this HDF5 file is not valid JSON",
            f"json reports: {exc}. Keras refuses to load it; another reader may not.",
            evidence={"origin": origin, "error": str(exc)[:300]},
            remediation="Obtain the model again from its publisher.",
        )
        return
    if name == "model_config":
        ctx.format = "keras-hdf5"
    from mlwarden.scan.keras_config import analyse_keras_config  # only Keras files need it

    analyse_keras_config(ctx, config, origin=origin, in_hdf5=True)


def _report_unreadable(ctx: ScanContext, exc: Exception) -> None:
    ctx.add(
        "hdf5.malformed",
        Severity.HIGH,
        "HDF5 file could not be read; its model config was not verified",
        f"h5py reports {type(exc).__name__}: {exc}.",
        evidence={"error": f"{type(exc).__name__}: {exc}"[:300]},
        remediation="Do not load this file; obtain it again from its publisher.",
    )


register(Hdf5Handler(with_userblock=False))
register(Hdf5Handler(with_userblock=True))
