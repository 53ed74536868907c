"""Streaming decompression shared by the container handlers (zip members, gzip, bzip2, xz ...).

Decompresses chunk by chunk into a `SpooledBlob` under the scan's caps: total decompressed bytes
(`ctx.count_decompressed`), the per-stream ratio past a grace size (decompression bombs) and
the per-file time limit. Corrupt, truncated and oversized input never raises: the outcome says
how far decompression got, so the caller scans what came out and reports the rest.
Not for: recognising formats or reporting findings (the handlers do both).
"""

from __future__ import annotations

import bz2
import enum
import functools
import importlib
import importlib.util
import lzma
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from mlwarden.scan.blob import Blob, SpooledBlob
from mlwarden.scan.context import LimitExceeded, ScanContext
from mlwarden.scan.limits import KIB, MIB

INPUT_CHUNK_BYTES = 64 * KIB
"""Compressed bytes read per step."""
FEED_BYTES = 8 * KIB
"""Compressed bytes given to the decompressor at a time, so that the ratio check sees the input
that produced the output (a bomb stops after about `max_ratio` times this much output)."""
OUTPUT_CHUNK_BYTES = 1 * MIB
"""Most decompressed bytes produced per step, whatever the compressed input says."""
PEEK_BYTES = 16
"""Bytes looked at after a finished stream to tell another stream from trailing data."""


class Outcome(enum.Enum):
    """How a decompression ended."""

    COMPLETE = "complete"
    """Every stream ended properly."""
    TRUNCATED = "truncated"
    """The input ended inside a stream."""
    CORRUPT = "corrupt"
    """The decompressor rejected the input."""
    BOMB = "bomb"
    """The ratio cap was hit; the rest was not decompressed."""
    TOTAL_LIMIT = "total-limit"
    """The per-file decompressed-bytes cap was hit; the rest was not decompressed."""


class Inflater(Protocol):
    """One compressed stream being decompressed."""

    @property
    def eof(self) -> bool:
        """True once the end of the stream was reached."""

    @property
    def unused_data(self) -> bytes:
        """Input after the end of the stream."""

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Decompress `data`, yielding output in chunks of at most `OUTPUT_CHUNK_BYTES`."""


class Codec(NamedTuple):
    """A compression format as a factory of per-stream inflaters."""

    name: str
    new: Callable[[], Inflater]
    errors: tuple[type[Exception], ...]
    """What the decompressor raises on corrupt input."""
    next_stream: Callable[[bytes], bool] | None = None
    """Whether the bytes after a finished stream start another one (multi-member gzip ...)."""


@dataclass
class Decompressed:
    """What came out of one decompression."""

    blob: SpooledBlob
    outcome: Outcome
    compressed_bytes: int
    """Compressed bytes read (up to the end of the last stream when it ended)."""
    trailing_offset: int | None = None
    """Offset in the source of data after the last stream that starts no other stream."""
    error: str = ""
    limit: LimitExceeded | None = None
    """The limit hit when `outcome` is TOTAL_LIMIT."""


def decompress(ctx: ScanContext, source: Blob, codec: Codec) -> Decompressed:
    """Decompress all of `source` under the scan's caps. The caller closes the returned blob."""
    run = _Run(ctx, source, codec)
    with source.open() as reader:
        run.execute(reader.read)
    return run.result


class _Run:
    """One decompression: the state shared by its reading, inflating and limit checks."""

    def __init__(self, ctx: ScanContext, source: Blob, codec: Codec) -> None:
        self.ctx = ctx
        self.codec = codec
        self.source_size = source.size
        self.read_bytes = 0
        self.fed_bytes = 0
        self.result = Decompressed(SpooledBlob(), Outcome.TRUNCATED, 0)

    def execute(self, read: Callable[[int], bytes]) -> None:
        inflater = self.codec.new()
        pending = b""
        while True:
            if not pending:
                self.ctx.check_time()
                pending = read(INPUT_CHUNK_BYTES)
                self.read_bytes += len(pending)
                if not pending:
                    self.result.compressed_bytes = self.read_bytes
                    return
            data, pending = pending[:FEED_BYTES], pending[FEED_BYTES:]
            self.fed_bytes += len(data)
            try:
                stopped = self._inflate(inflater, data)
            except self.codec.errors as exc:
                self._finish(Outcome.CORRUPT, error=f"{type(exc).__name__}: {exc}")
                return
            if stopped:
                return
            if inflater.eof:
                self.fed_bytes -= len(inflater.unused_data)
                rest = self._rest_after_stream(inflater.unused_data + pending, read)
                if rest is None:
                    self._finish(Outcome.COMPLETE)
                    return
                if self.codec.next_stream is None or not self.codec.next_stream(rest):
                    self._finish(Outcome.COMPLETE, trailing=self.read_bytes - len(rest))
                    return
                inflater = self.codec.new()
                pending = rest

    def _inflate(self, inflater: Inflater, data: bytes) -> bool:
        """Feed one input chunk; True if a cap stopped the decompression."""
        limits = self.ctx.limits
        out = self.result.blob
        for chunk in inflater.feed(data):
            if not chunk:
                continue
            out.write(chunk)
            try:
                self.ctx.count_decompressed(len(chunk))
            except LimitExceeded as exc:
                self._finish(Outcome.TOTAL_LIMIT, limit=exc)
                return True
            if out.size > limits.ratio_grace_bytes and out.size > limits.max_ratio * max(
                self.fed_bytes, 1
            ):
                self._finish(Outcome.BOMB)
                return True
        return False

    def _rest_after_stream(self, unused: bytes, read: Callable[[int], bytes]) -> bytes | None:
        """The input after a finished stream without its zero padding; None if nothing is left."""
        rest = unused
        while True:
            rest = rest.lstrip(b"\x00")
            if len(rest) >= PEEK_BYTES:
                return rest
            self.ctx.check_time()
            more = read(INPUT_CHUNK_BYTES)
            self.read_bytes += len(more)
            if not more:
                return rest or None
            rest += more

    def _finish(
        self,
        outcome: Outcome,
        *,
        error: str = "",
        trailing: int | None = None,
        limit: LimitExceeded | None = None,
    ) -> None:
        self.result.outcome = outcome
        self.result.error = error
        self.result.trailing_offset = trailing
        self.result.limit = limit
        self.result.compressed_bytes = (
            trailing if trailing is not None else min(self.read_bytes, self.source_size)
        )


class _StandardInflater:
    """bz2, lzma and zstd decompressors, which share one incremental API."""

    def __init__(self, decompressor: Any) -> None:
        self._d = decompressor

    @property
    def eof(self) -> bool:
        return bool(self._d.eof)

    @property
    def unused_data(self) -> bytes:
        return bytes(self._d.unused_data)

    def feed(self, data: bytes) -> Iterator[bytes]:
        yield self._d.decompress(data, OUTPUT_CHUNK_BYTES)
        while not self._d.eof and not self._d.needs_input:
            yield self._d.decompress(b"", OUTPUT_CHUNK_BYTES)


class _ZlibInflater:
    """Deflate streams (raw, zlib-wrapped or gzip-wrapped, chosen by `wbits`)."""

    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data

    def feed(self, data: bytes) -> Iterator[bytes]:
        chunk = self._d.decompress(data, OUTPUT_CHUNK_BYTES)
        yield chunk
        # A full chunk may leave output pending inside zlib even when all input was consumed.
        while not self._d.eof and (self._d.unconsumed_tail or len(chunk) == OUTPUT_CHUNK_BYTES):
            chunk = self._d.decompress(self._d.unconsumed_tail, OUTPUT_CHUNK_BYTES)
            if not chunk:
                return
            yield chunk


class _ZipLzmaInflater:
    """LZMA as stored in zip members: a 4-byte version/length prefix, the LZMA1 properties, then
    raw LZMA1 data (APPNOTE 5.8.8)."""

    def __init__(self) -> None:
        self._header = b""
        self._inner: _StandardInflater | None = None

    @property
    def eof(self) -> bool:
        return self._inner is not None and self._inner.eof

    @property
    def unused_data(self) -> bytes:
        return self._inner.unused_data if self._inner is not None else b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._inner is None:
            self._header += data
            if len(self._header) < 4:
                return
            (props_size,) = struct.unpack_from("<H", self._header, 2)
            if len(self._header) < 4 + props_size:
                return
            props = self._header[4 : 4 + props_size]
            data = self._header[4 + props_size :]
            self._inner = _StandardInflater(
                lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[_lzma1_filter(props)])
            )
        yield from self._inner.feed(data)


def _lzma1_filter(props: bytes) -> dict[str, int]:
    """The LZMA1 filter described by its 5-byte properties (lc/lp/pb byte, dictionary size)."""
    if len(props) < 5:
        raise lzma.LZMAError("LZMA properties shorter than 5 bytes")
    packed = props[0]
    if packed >= 9 * 5 * 5:
        raise lzma.LZMAError(f"invalid LZMA properties byte {packed}")
    (dict_size,) = struct.unpack_from("<I", props, 1)
    return {
        "id": lzma.FILTER_LZMA1,
        "dict_size": dict_size,
        "lc": packed % 9,
        "lp": (packed // 9) % 5,
        "pb": packed // 45,
    }


_ZSTD_MODULES = ("compression.zstd", "backports.zstd")
"""The zstd bindings of the standard library (3.14+), then its backport."""


def _zstd_installed() -> bool:
    """Whether zstd bindings are installed, found without importing them (that costs 3 ms of
    every scan's start-up, and zstd content is rare)."""
    for name in _ZSTD_MODULES:
        try:
            if importlib.util.find_spec(name) is not None:
                return True
        except ImportError:  # the parent package does not exist (``compression`` before 3.14)
            continue
    return False


@functools.cache
def zstd_module() -> Any:
    """The zstd bindings (imported on first use); `ZSTD` is None when there are none."""
    for name in _ZSTD_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError("no zstd bindings installed")


class ZstdError(ValueError):
    """What the zstd decompressor raised (its own ``ZstdError`` is not a ValueError)."""


class _ZstdInflater(_StandardInflater):
    """zstd frames through the bindings' incremental API; their errors become `ZstdError`."""

    def __init__(self) -> None:
        module = zstd_module()
        super().__init__(module.ZstdDecompressor())
        self._error: type[Exception] = module.ZstdError

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            yield from super().feed(data)
        except self._error as exc:
            raise ZstdError(str(exc)) from exc


_ZSTD_FRAME_MAGIC = b"\x28\xb5\x2f\xfd"

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"


def is_zstd_frame(data: bytes) -> bool:
    """True if `data` starts a zstd frame or a skippable frame (magic 0x184D2A50-5F)."""
    if data[:4] == _ZSTD_FRAME_MAGIC:
        return True
    return len(data) >= 4 and (data[0] & 0xF0) == 0x50 and data[1:4] == b"\x2a\x4d\x18"


_LZMA_ERRORS: tuple[type[Exception], ...] = (lzma.LZMAError, EOFError, ValueError)

DEFLATE_RAW = Codec("deflate", lambda: _ZlibInflater(-zlib.MAX_WBITS), (zlib.error,))
ZLIB = Codec("zlib", lambda: _ZlibInflater(zlib.MAX_WBITS), (zlib.error,))
GZIP = Codec(
    "gzip",
    lambda: _ZlibInflater(16 + zlib.MAX_WBITS),
    (zlib.error,),
    next_stream=lambda rest: rest.startswith(GZIP_MAGIC),
)
BZIP2 = Codec(
    "bzip2",
    lambda: _StandardInflater(bz2.BZ2Decompressor()),
    (OSError, EOFError, ValueError),
    next_stream=lambda rest: rest.startswith(BZIP2_MAGIC),
)
XZ = Codec(
    "xz",
    lambda: _StandardInflater(lzma.LZMADecompressor(lzma.FORMAT_XZ)),
    _LZMA_ERRORS,
    next_stream=lambda rest: rest.startswith(XZ_MAGIC),
)
LZMA_ALONE = Codec(
    "lzma", lambda: _StandardInflater(lzma.LZMADecompressor(lzma.FORMAT_ALONE)), _LZMA_ERRORS
)
ZIP_LZMA = Codec("lzma", _ZipLzmaInflater, (*_LZMA_ERRORS, struct.error))


def _zstd_codec() -> Codec | None:
    if not _zstd_installed():
        return None
    return Codec(
        "zstd", _ZstdInflater, (ZstdError, EOFError, ValueError), next_stream=is_zstd_frame
    )


ZSTD = _zstd_codec()
"""None when no zstd bindings are installed."""
