"""Byte sources the scanner reads: a file, a region of another source, or bytes in memory.

Handlers never care where the bytes live. A region of a file (an uncompressed zip member, a
tensor block) is read in place, so tensor data is never copied into memory.
"""

from __future__ import annotations

import abc
import io
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import tempfile

HEAD_BYTES = 4096
"""Bytes read from the start of every source to recognise its format."""

SMALL_FILE_BYTES = 64 * 1024
"""Files up to this size are read into memory once instead of in many small reads."""

SPOOL_BYTES = 64 * 1024 * 1024
"""Decompressed content larger than this spills from memory to a temporary file."""


class BlobReader(io.RawIOBase):
    """A read-only, seekable, unbuffered file object over a `Blob`, reading through `read_at`.

    Archive readers (tarfile, py7zr, h5py) seek from header to header and get exactly the bytes
    they ask for; wrapped in a `BufferedReader` it also serves sequential reads of a region.
    """

    def __init__(self, blob: Blob) -> None:
        self._blob = blob
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            target = pos
        elif whence == os.SEEK_CUR:
            target = self._pos + pos
        else:
            target = self._blob.size + pos
        self._pos = max(0, target)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._blob.read_at(self._pos, len(buffer))
        memoryview(buffer)[: len(data)] = data
        self._pos += len(data)
        return len(data)


class Blob(abc.ABC):
    """A source of bytes with a known size. `open()` gives a fresh seekable reader."""

    size: int

    @abc.abstractmethod
    def open(self) -> BinaryIO:
        """A new binary reader positioned at 0 (the caller closes it)."""

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to `n` bytes starting at `offset`."""
        with self.open() as f:
            f.seek(offset)
            return f.read(n)

    def head(self, n: int = HEAD_BYTES) -> bytes:
        """The first `n` bytes (fewer if the source is shorter)."""
        return self.read_at(0, n)

    def read_all(self, limit: int) -> bytes:
        """All bytes, or the first `limit` if the source is longer."""
        return self.read_at(0, limit)

    def region(self, offset: int, length: int) -> Blob:
        """A sub-range of this source, read in place."""
        return RegionBlob(self, offset, max(0, min(length, self.size - offset)))

    def close(self) -> None:  # noqa: B027 - most sources hold nothing to release
        """Release what the source holds open."""


@dataclass
class FileBlob(Blob):
    """A file on disk. Random reads share one handle, opened on first use.

    A file of at most `SMALL_FILE_BYTES` is read whole on first use and served from memory:
    one read instead of the dozen small seeks and reads of sniffing, and every handler sees the
    same bytes even if the file changes during the scan.
    """

    path: str
    size: int
    _handle: BinaryIO | None = field(default=None, repr=False, compare=False)
    _data: bytes | None = field(default=None, repr=False, compare=False)

    def open(self) -> BinaryIO:
        if self.size <= SMALL_FILE_BYTES:
            return io.BytesIO(self._small())
        return open(self.path, "rb")

    def read_at(self, offset: int, n: int) -> bytes:
        if self.size <= SMALL_FILE_BYTES:
            return self._small()[offset : offset + max(0, n)]
        # One handle for the many small reads of sniffing and archive parsing: opening the
        # file for each read cost more than reading it for small files.
        if self._handle is None:
            self._handle = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        self._handle.seek(offset)
        return self._handle.read(max(0, n))

    def _small(self) -> bytes:
        if self._data is None:
            with open(self.path, "rb") as handle:
                # `size` came from stat(); a file that grew since is read up to that size.
                self._data = handle.read(self.size)
        return self._data

    def close(self) -> None:
        self._data = None
        if self._handle is not None:
            self._handle.close()
            self._handle = None


@dataclass
class BytesBlob(Blob):
    """Bytes held in memory."""

    data: bytes

    @property
    def size(self) -> int:  # type: ignore[override]
        return len(self.data)

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)

    def read_at(self, offset: int, n: int) -> bytes:
        return self.data[offset : offset + n]


class RegionBlob(Blob):
    """``[offset, offset + length)`` of a parent source, read in place."""

    def __init__(self, parent: Blob, offset: int, length: int) -> None:
        self.parent = parent
        self.offset = offset
        self.size = length

    def open(self) -> BinaryIO:
        return io.BufferedReader(BlobReader(self), buffer_size=1024 * 1024)

    def read_at(self, offset: int, n: int) -> bytes:
        n = max(0, min(n, self.size - offset))
        return self.parent.read_at(self.offset + offset, n)


class SpooledBlob(Blob):
    """Decompressed content: in memory while small, in a temporary file when large."""

    def __init__(self) -> None:
        import tempfile  # only decompression needs it: kept off the start-up path

        self._file: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=SPOOL_BYTES
        )
        self.size = 0

    def write(self, data: bytes) -> None:
        """Append decompressed bytes."""
        self._file.write(data)
        self.size += len(data)

    def open(self) -> BinaryIO:
        self._file.seek(0)
        return _Unclosable(self._file)  # type: ignore[return-value]

    def read_at(self, offset: int, n: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(n)

    def close(self) -> None:
        """Free the memory or the temporary file."""
        self._file.close()


class _Unclosable:
    """Lets handlers `with blob.open()` a spooled file without closing it for the next reader."""

    def __init__(self, f: tempfile.SpooledTemporaryFile[bytes]) -> None:
        self._f = f

    def __getattr__(self, name: str) -> object:
        return getattr(self._f, name)

    def __enter__(self) -> _Unclosable:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None
