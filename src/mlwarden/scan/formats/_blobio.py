"""A file object over any `Blob` for libraries that want one (tarfile, py7zr).

`Blob.open()` is tuned for sequential reading (a region opens a 1 MiB buffered reader and a
spooled blob hands out its shared temporary file). Archive readers seek from header to header,
so they get an unbuffered reader here that asks the blob for exactly the bytes they read.
Not for: reading member data in bulk (hand members to the engine as regions instead).
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO, cast

from mlwarden.scan.blob import Blob, FileBlob


class BlobReader(io.RawIOBase):
    """A read-only, seekable, unbuffered file object over a `Blob`."""

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


def open_random_access(blob: Blob) -> BinaryIO:
    """A file object for seek-heavy readers: the real file for a file, else a `BlobReader`."""
    if isinstance(blob, FileBlob):
        return blob.open()
    return cast(BinaryIO, BlobReader(blob))
