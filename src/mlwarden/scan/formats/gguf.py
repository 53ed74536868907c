"""GGUF model files (llama.cpp): header and metadata checks, and chat template analysis.

A GGUF file carries its tokenizer's Jinja chat template in the metadata key
``tokenizer.chat_template`` (and named variants ``tokenizer.chat_template.<name>``). Runtimes
render it on every prompt; one rendered outside the sandbox runs code (CVE-2024-34359). This
handler reads the header and the metadata key/value pairs under strict caps, hands every chat
template to `mlwarden.scan.templates`, and reports structure that loaders would misread.

Not for: tensor data, which is never read; quantisation or architecture checks.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from mlwarden.findings import Severity
from mlwarden.scan.blob import Blob
from mlwarden.scan.context import LimitExceeded, ScanContext
from mlwarden.scan.formats import FormatHandler, register

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (1, 2, 3)
CHAT_TEMPLATE_KEY = "tokenizer.chat_template"

WINDOW_BYTES = 1024 * 1024
"""Bytes read at a time while walking the metadata."""
MAX_ARRAY_NESTING = 8
"""Arrays of arrays deeper than this are malformed (real files use none)."""
TIME_CHECK_EVERY = 4096
"""Items parsed between two checks of the per-file time limit."""

_STRING = 8
_ARRAY = 9
_FIXED_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
"""Value type -> byte size for the fixed-size GGUF value types."""
_MIN_KV_BYTES = 8 + 4 + 1
"""Smallest key/value pair: empty key length, value type, one-byte value (v2+)."""


class _Malformed(Exception):
    """The metadata breaks the GGUF layout at `offset`."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


class _Cursor:
    """Sequential reads over a blob through a bounded window; skips never read."""

    def __init__(self, blob: Blob, endian: str, version: int) -> None:
        self.blob = blob
        self.size = blob.size
        self.pos = 0
        self.endian = endian
        self.count_format = "I" if version == 1 else "Q"
        self._window = b""
        self._window_start = 0

    def read(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise _Malformed(
                self.pos,
                f"needs {n} bytes at offset {self.pos}, past the end "
                f"of the file ({self.size} bytes): truncated or a lying length",
            )
        start = self.pos - self._window_start
        if start < 0 or start + n > len(self._window):
            self._window = self.blob.read_at(self.pos, max(n, WINDOW_BYTES))
            self._window_start = self.pos
            start = 0
        self.pos += n
        return self._window[start : start + n]

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise _Malformed(
                self.pos,
                f"a value of {n} bytes at offset {self.pos} runs past "
                f"the end of the file ({self.size} bytes)",
            )
        self.pos += n

    def unpack(self, fmt: str) -> int:
        raw = self.read(struct.calcsize(fmt))
        value: int = struct.unpack(self.endian + fmt, raw)[0]
        return value

    def count(self) -> int:
        return self.unpack(self.count_format)

    def string(self, cap: int) -> bytes:
        length = self.count()
        if length > self.size - self.pos:
            raise _Malformed(
                self.pos,
                f"string of {length} bytes declared at offset "
                f"{self.pos}, but only {self.size - self.pos} bytes remain",
            )
        if length > cap:
            raise LimitExceeded(
                "max_metadata_bytes",
                f"a GGUF metadata string of {length} bytes at offset {self.pos}",
            )
        return self.read(length)

    def skip_string(self) -> None:
        self.skip(self.count())


@dataclass
class _Metadata:
    version: int
    endian: str
    tensor_count: int = 0
    kv_count: int = 0
    templates: list[tuple[str, bytes, int]] = field(default_factory=list)
    """(key, raw template, offset of the value) for every chat template key."""


class GgufHandler(FormatHandler):
    name = "gguf"
    priority = 10

    def sniff_raw(self, head: bytes, blob: Blob) -> bool:
        return self.sniff(head, blob)

    def sniff(self, head: bytes, blob: Blob) -> bool:
        return head[:4] == GGUF_MAGIC

    def scan(self, ctx: ScanContext) -> None:
        head = ctx.blob.head(8)
        header = _read_version(head)
        if header is None:
            _report_version(ctx, head)
            return
        version, endian = header
        cursor = _Cursor(ctx.blob, endian, version)
        cursor.skip(8)
        meta = _Metadata(version, endian)
        try:
            _read_metadata(ctx, cursor, meta)
        except _Malformed as exc:
            _report_templates(ctx, meta)
            ctx.add(
                "gguf.malformed",
                Severity.HIGH,
                "GGUF metadata is malformed; the rest of the file was not verified",
                exc.reason,
                offset=exc.offset,
                evidence={
                    "version": version,
                    "reason": exc.reason,
                    "declared_kv_count": meta.kv_count,
                },
                remediation="Do not load this file; obtain the model again from its publisher.",
            )
            return
        _report_templates(ctx, meta)


def _read_version(head: bytes) -> tuple[int, str] | None:
    if len(head) < 8:
        return None
    little = struct.unpack("<I", head[4:8])[0]
    if little in SUPPORTED_VERSIONS:
        return little, "<"
    big = struct.unpack(">I", head[4:8])[0]
    if big in SUPPORTED_VERSIONS:
        return big, ">"
    return None


def _report_version(ctx: ScanContext, head: bytes) -> None:
    version = struct.unpack("<I", head[4:8])[0] if len(head) >= 8 else None
    ctx.add(
        "gguf.unsupported-version",
        Severity.MEDIUM,
        "GGUF file with a missing or unknown version; its metadata was not verified",
        f"The header declares version {version}; known versions are 1 to 3.",
        offset=4,
        evidence={"version": version},
        remediation="Obtain the model again, or inspect it with the tool that produced it.",
    )


def _read_metadata(ctx: ScanContext, cursor: _Cursor, meta: _Metadata) -> None:
    meta.tensor_count = cursor.count()
    meta.kv_count = cursor.count()
    room = (cursor.size - cursor.pos) // _MIN_KV_BYTES
    if meta.kv_count > room:
        raise _Malformed(
            cursor.pos,
            f"declares {meta.kv_count} metadata pairs but the file has room for at most {room}",
        )
    budget = ctx.limits.max_metadata_bytes
    for index in range(meta.kv_count):
        if index % TIME_CHECK_EVERY == 0:
            ctx.check_time()
        key = cursor.string(budget).decode("utf-8", "replace")
        value_type = cursor.unpack("I")
        if key.startswith(CHAT_TEMPLATE_KEY) and value_type == _STRING:
            offset = cursor.pos
            meta.templates.append((key, cursor.string(budget), offset))
        else:
            _skip_value(ctx, cursor, value_type, 0)
        if cursor.pos > budget:
            raise LimitExceeded("max_metadata_bytes", f"GGUF metadata larger than {budget} bytes")


def _skip_value(ctx: ScanContext, cursor: _Cursor, value_type: int, nesting: int) -> None:
    if value_type in _FIXED_SIZES:
        cursor.skip(_FIXED_SIZES[value_type])
    elif value_type == _STRING:
        cursor.skip_string()
    elif value_type == _ARRAY:
        _skip_array(ctx, cursor, nesting)
    else:
        raise _Malformed(cursor.pos - 4, f"unknown value type {value_type}")


def _skip_array(ctx: ScanContext, cursor: _Cursor, nesting: int) -> None:
    if nesting >= MAX_ARRAY_NESTING:
        raise _Malformed(cursor.pos, f"arrays nested more than {MAX_ARRAY_NESTING} deep")
    item_type = cursor.unpack("I")
    count = cursor.count()
    if item_type in _FIXED_SIZES:
        cursor.skip(count * _FIXED_SIZES[item_type])
        return
    if item_type not in (_STRING, _ARRAY):
        raise _Malformed(cursor.pos - 12, f"unknown array item type {item_type}")
    min_item_bytes = 4 if cursor.count_format == "I" else 8
    if count * min_item_bytes > cursor.size - cursor.pos:
        raise _Malformed(
            cursor.pos,
            f"array declares {count} items but the file has room for "
            f"at most {(cursor.size - cursor.pos) // min_item_bytes}",
        )
    for index in range(count):
        if index % TIME_CHECK_EVERY == 0:
            ctx.check_time()
        _skip_value(ctx, cursor, item_type, nesting + 1)


def _report_templates(ctx: ScanContext, meta: _Metadata) -> None:
    from mlwarden.scan.templates import analyse_template  # jinja2 only when templates exist

    for key, raw, offset in meta.templates:
        analyse_template(
            ctx, raw.decode("utf-8", "replace"), origin=f"GGUF metadata {key!r}", offset=offset
        )


register(GgufHandler())
