"""Single-stream compressed files: gzip, bzip2, xz, raw LZMA ("alone"), zlib and zstd.

joblib writes pickles through each of these, and model files travel gzipped or xz'd. Each is a
layer: the stream is decompressed under the scan's caps and what comes out is handed back to
the engine, which recognises it by content. Concatenated streams (multi-member gzip, pbzip2,
xz) are read as one, the way the standard readers do. Not for: archives of several named files
(zip, 7z, tar have their own handlers).
"""

from __future__ import annotations

import lzma
import struct
import zlib
from collections.abc import Callable
from typing import NamedTuple

from mlwarden.findings import Severity
from mlwarden.scan.blob import Blob
from mlwarden.scan.context import ScanContext
from mlwarden.scan.formats import FormatHandler, register
from mlwarden.scan.formats._decompress import (
    BZIP2,
    BZIP2_MAGIC,
    GZIP,
    GZIP_MAGIC,
    LZMA_ALONE,
    XZ,
    XZ_MAGIC,
    ZLIB,
    ZSTD,
    Codec,
    Decompressed,
    Outcome,
    decompress,
    is_zstd_frame,
)
from mlwarden.scan.limits import KIB

DECOMPRESSED_MEMBER = "<decompressed>"
TRAILING_MEMBER = "<trailing>"
PRIORITY = 15
"""Right after the archives: every check below is a magic number or a header that validates."""

_BZIP2_BLOCK_MAGIC = b"\x31\x41\x59\x26\x53\x59"
_BZIP2_END_MAGIC = b"\x17\x72\x45\x38\x50\x90"
_LZMA_ALONE_HEADER_BYTES = 13
_LZMA_MAX_PROPERTIES = 9 * 5 * 5
_LZMA_MAX_KNOWN_SIZE = 1 << 48
_LZMA_MIN_DICT_BYTES = 4 * KIB
_LZMA_MAX_DICT_BYTES = 1 << 30 | 1 << 29
TRIAL_OUTPUT_BYTES = 64 * KIB
"""Output allowed when test-decompressing the head of a candidate zlib or LZMA stream."""


def _is_gzip(head: bytes) -> bool:
    # Method 8 (deflate) and no reserved flag bits, as RFC 1952 requires.
    return head[:2] == GZIP_MAGIC and len(head) >= 4 and head[2] == 8 and head[3] & 0xE0 == 0


def _is_bzip2(head: bytes) -> bool:
    return (
        len(head) >= 10
        and head[:3] == BZIP2_MAGIC
        and ord("1") <= head[3] <= ord("9")
        and head[4:10] in (_BZIP2_BLOCK_MAGIC, _BZIP2_END_MAGIC)
    )


def _is_xz(head: bytes) -> bool:
    return head.startswith(XZ_MAGIC)


def _is_zstd(head: bytes) -> bool:
    # Bit 3 of the frame header descriptor is reserved and must be zero.
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return len(head) > 4 and head[4] & 0x08 == 0
    return is_zstd_frame(head)


def _is_lzma_alone(head: bytes) -> bool:
    """LZMA_Alone (joblib's ``lzma`` compression): properties, dictionary size, size, data.
    No magic number, so every field must be plausible and the head must decode."""
    if len(head) <= _LZMA_ALONE_HEADER_BYTES:
        return False
    properties, dict_size, known_size = struct.unpack_from("<BIQ", head)
    plausible = (
        properties < _LZMA_MAX_PROPERTIES
        and _LZMA_MIN_DICT_BYTES <= dict_size <= _LZMA_MAX_DICT_BYTES
        and (known_size == 2**64 - 1 or known_size < _LZMA_MAX_KNOWN_SIZE)
        and head[_LZMA_ALONE_HEADER_BYTES] == 0  # the range coder's first byte is always 0
    )
    if not plausible:
        return False
    try:
        lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(head, TRIAL_OUTPUT_BYTES)
    except lzma.LZMAError:
        return False
    return True


def _is_zlib(head: bytes) -> bool:
    """A zlib stream (joblib's ``zlib`` compression): deflate with a 32 KiB window, no preset
    dictionary, a header checksum, and a head that decodes."""
    if len(head) < 3 or head[0] != 0x78 or head[1] & 0x20:
        return False
    if (head[0] * 256 + head[1]) % 31:
        return False
    try:
        zlib.decompressobj().decompress(head, TRIAL_OUTPUT_BYTES)
    except zlib.error:
        return False
    return True


class _StreamFormat(NamedTuple):
    name: str
    matches: Callable[[bytes], bool]
    codec: Codec | None
    """None when the decompressor is not installed (zstd without bindings)."""
    strong_magic: bool = True
    """False for raw lzma and zlib, whose few header bytes occur by chance in tensor data."""


class CompressedStreamHandler(FormatHandler):
    """One compression format, recognised by its header and decompressed as a layer."""

    priority = PRIORITY

    def __init__(self, stream_format: _StreamFormat) -> None:
        self.name = stream_format.name
        self._format = stream_format

    def sniff(self, head: bytes, blob: Blob) -> bool:
        return self._format.matches(head)

    def sniff_raw(self, head: bytes, blob: Blob) -> bool:
        return self._format.strong_magic and self._format.matches(head)

    def scan(self, ctx: ScanContext) -> None:
        codec = self._format.codec
        if codec is None:
            _report_unsupported(ctx, self.name)
            return
        result = decompress(ctx, ctx.blob, codec)
        try:
            _report_outcome(ctx, self.name, result)
            ctx.scan_child(result.blob, DECOMPRESSED_MEMBER)
        finally:
            result.blob.close()
        if result.trailing_offset is not None:
            _scan_trailing(ctx, self.name, result.trailing_offset)
        if result.limit is not None:
            ctx.limit_hit(result.limit)


_FORMATS = (
    _StreamFormat("gzip", _is_gzip, GZIP),
    _StreamFormat("bzip2", _is_bzip2, BZIP2),
    _StreamFormat("xz", _is_xz, XZ),
    _StreamFormat("zstd", _is_zstd, ZSTD),
    _StreamFormat("lzma", _is_lzma_alone, LZMA_ALONE, strong_magic=False),
    _StreamFormat("zlib", _is_zlib, ZLIB, strong_magic=False),
)
for _stream_format in _FORMATS:
    register(CompressedStreamHandler(_stream_format))


def _report_outcome(ctx: ScanContext, name: str, result: Decompressed) -> None:
    produced = result.blob.size
    evidence = {"decompressed_bytes": produced, "compressed_bytes": result.compressed_bytes}
    if result.outcome is Outcome.BOMB:
        ctx.add(
            "compressed.bomb",
            Severity.HIGH,
            f"The {name} stream decompresses beyond the ratio limit",
            f"Decompression stopped after {produced} bytes (more than "
            f"{ctx.limits.max_ratio:g} times the compressed size read): a decompression bomb, "
            "or content too large to verify. What decompressed before the stop was scanned; "
            "the rest was not verified.",
            evidence=evidence,
            remediation="Do not load this file. If it is legitimately this compressible, "
            "raise max_ratio in a policy file.",
        )
    elif result.outcome is Outcome.TRUNCATED:
        ctx.add(
            "compressed.truncated",
            Severity.MEDIUM,
            f"The {name} stream is truncated",
            f"The file ends inside the compressed stream. The {produced} bytes that "
            "decompressed were scanned; a loader reading it would execute the same bytes "
            "before failing.",
            evidence=evidence,
            remediation="Obtain a complete copy of the file from a trusted source.",
        )
    elif result.outcome is Outcome.CORRUPT:
        ctx.add(
            "compressed.corrupt",
            Severity.MEDIUM,
            f"The {name} stream is corrupt",
            f"Decompression failed after {produced} bytes ({result.error}). Those bytes were "
            "scanned; nothing past the error can be decompressed by any reader.",
            evidence={**evidence, "error": result.error},
            remediation="Obtain an intact copy of the file from a trusted source.",
        )


def _scan_trailing(ctx: ScanContext, name: str, offset: int) -> None:
    size = ctx.blob.size - offset
    ctx.add(
        "compressed.trailing-data",
        Severity.MEDIUM,
        f"{size} bytes follow the end of the {name} stream",
        "Decompressing readers ignore them, other readers may not: they were scanned on their own.",
        offset=offset,
        evidence={"bytes": size},
        remediation="Find out what the extra bytes are; a clean compressor does not write them.",
    )
    ctx.scan_child(ctx.blob.region(offset, size), TRAILING_MEMBER)


def _report_unsupported(ctx: ScanContext, name: str) -> None:
    ctx.add(
        "compressed.unsupported",
        Severity.HIGH,
        f"The {name} stream could not be decompressed, so its content was not verified",
        f"No {name} decompressor is installed in the scanner's environment.",
        evidence={"format": name},
        remediation=f"Install {name} support (for zstd: Python 3.14, or the backports.zstd "
        "package) and scan again.",
    )
