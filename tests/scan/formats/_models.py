"""Shared helpers for the model-format tests (numpy, safetensors, ONNX, GGUF, HDF5, JSON)."""

from __future__ import annotations

import struct
from pathlib import Path

from mlwarden.findings import Finding, Severity
from mlwarden.scan.blob import BytesBlob
from mlwarden.scan.context import FileScan
from mlwarden.scan.engine import scan_blob, scan_file, scan_paths
from mlwarden.scan.limits import Limits
from mlwarden.scan.policy import Policy

from ._containers import CountingBlob


def evil_pickle(marker: Path) -> bytes:
    """A protocol 0 pickle that would run ``touch marker`` if it were ever loaded."""
    return f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()


def scan_path(path: Path, limits: Limits | None = None) -> FileScan:
    return scan_file(str(path), str(path), Policy(limits=limits or Limits()))


def scan_bytes(data: bytes, limits: Limits | None = None) -> FileScan:
    return scan_blob(BytesBlob(data), "sample", Policy(limits=limits or Limits()))


def scan_folder(path: Path) -> list[Finding]:
    return scan_paths([str(path)], Policy()).findings


def rules(state: FileScan, at_least: Severity = Severity.INFO) -> set[str]:
    return {f.rule for f in state.findings if f.severity >= at_least}


def by_rule(state: FileScan, rule: str) -> list[Finding]:
    return [f for f in state.findings if f.rule == rule]


def formats(state: FileScan) -> dict[str | None, str]:
    """Member chain -> detected format, for everything scanned."""
    return {s.member: s.format for s in state.scanned}


def nothing_high(state: FileScan) -> bool:
    return not any(f.severity >= Severity.HIGH for f in state.findings)


def npy_bytes(header: str | bytes, body: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    """An ``.npy`` file with a header given verbatim (so tests can make it wrong)."""
    raw = header.encode("latin1") if isinstance(header, str) else header
    if version == (1, 0):
        prefix = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(raw))
    else:
        prefix = b"\x93NUMPY" + bytes(version) + struct.pack("<I", len(raw))
    return prefix + raw + body


TrackingBlob = CountingBlob


def scan_tracking(blob: TrackingBlob) -> FileScan:
    return scan_blob(blob, "sample", Policy())
