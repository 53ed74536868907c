"""A file object over any `Blob` for libraries that want one (tarfile, py7zr).

`Blob.open()` is tuned for sequential reading (a region is a 1 MiB buffered reader and a
spooled blob hands out its shared temporary file). Archive readers seek from header to header,
so they get an unbuffered `BlobReader` that asks the blob for exactly the bytes they read.
Not for: reading member data in bulk (hand members to the engine as regions instead).
"""

from __future__ import annotations

from typing import BinaryIO, cast

from mlwarden.scan.blob import Blob, BlobReader, FileBlob


def open_random_access(blob: Blob) -> BinaryIO:
    """A file object for seek-heavy readers: the real file for a file, else a `BlobReader`."""
    if isinstance(blob, FileBlob):
        return blob.open()
    return cast(BinaryIO, BlobReader(blob))
