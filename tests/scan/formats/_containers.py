"""Shared helpers for the container-format tests (zip, 7z, tar, compressed streams)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from mlwarden.findings import Finding, Severity
from mlwarden.scan.blob import Blob, BytesBlob
from mlwarden.scan.context import FileScan
from mlwarden.scan.engine import scan_blob, scan_file
from mlwarden.scan.limits import Limits
from mlwarden.scan.policy import Policy


def evil_pickle(marker: Path) -> bytes:
    """A protocol 0 pickle that would run ``touch marker`` if it were ever loaded."""
    return f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()


def scan_bytes(data: bytes, limits: Limits | None = None) -> FileScan:
    return scan_blob(BytesBlob(data), "sample", Policy(limits=limits or Limits()))


def scan_path(path: Path, limits: Limits | None = None) -> FileScan:
    return scan_file(str(path), str(path), Policy(limits=limits or Limits()))


def inventory(state: FileScan) -> dict[str | None, str]:
    """Member chain -> detected format, for everything scanned."""
    return {s.member: s.format for s in state.scanned}


def rules(state: FileScan, at_least: Severity = Severity.INFO) -> set[str]:
    return {f.rule for f in state.findings if f.severity >= at_least}


def by_rule(state: FileScan, rule: str) -> list[Finding]:
    return [f for f in state.findings if f.rule == rule]


def flags_payload_at(state: FileScan, member: str) -> bool:
    """True if a critical finding is located on `member` (the pickle payload was seen)."""
    return any(
        f.severity is Severity.CRITICAL and f.location is not None and f.location.member == member
        for f in state.findings
    )


class CountingBlob(Blob):
    """Bytes in memory that count how many of them were read, however they were read."""

    def __init__(self, data: bytes) -> None:
        self._inner = BytesBlob(data)
        self.size = len(data)
        self.bytes_read = 0

    def open(self) -> BinaryIO:
        return _CountingReader(self._inner.data, self)

    def read_at(self, offset: int, n: int) -> bytes:
        data = self._inner.read_at(offset, n)
        self.bytes_read += len(data)
        return data


class _CountingReader(io.BytesIO):
    def __init__(self, data: bytes, owner: CountingBlob) -> None:
        super().__init__(data)
        self._owner = owner

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        self._owner.bytes_read += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = super().readinto(buffer)
        self._owner.bytes_read += n
        return n


def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, value) edits: overwrite a byte, delete a few, or insert a few."""
    out = bytearray(data)
    for kind, position, value in edits:
        if not out:
            break
        pos = position % len(out)
        if kind == 0:
            out[pos] = value
        elif kind == 1:
            del out[pos : pos + 1 + value % 32]
        else:
            out[pos:pos] = bytes([value]) * (1 + value % 32)
    return bytes(out)


def unparseable_by(state: FileScan, handler_names: set[str]) -> list[Finding]:
    """Findings where one of `handler_names` failed with an exception (a handler bug)."""
    return [
        f
        for f in state.findings
        if f.rule == "scan.unparseable" and f.evidence.get("format") in handler_names
    ]
