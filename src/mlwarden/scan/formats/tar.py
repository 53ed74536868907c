"""Tar archives (POSIX, GNU, ustar, v7), including PyTorch's legacy tar checkpoint format.

Recognised by a header whose checksum `tarfile` would accept; the reading lives in
`_tar_reader`, imported only when a tar is found, so that `tarfile` is not imported by every
scan. Compression is a separate layer (`compressed.py` unwraps a .tar.gz first).
Not for: extracting anything to disk.
"""

from __future__ import annotations

from mlwarden.scan.blob import Blob
from mlwarden.scan.context import ScanContext
from mlwarden.scan.formats import FormatHandler, register

BLOCK_BYTES = 512
"""A tar header block (`tarfile.BLOCKSIZE`)."""
_CHECKSUM = slice(148, 156)
_BASE256 = (0o200, 0o377)
_HIGH_BYTES_ONLY = bytes(range(128))
"""Deleting these from a block leaves its bytes >= 0x80 (negative as signed chars)."""


def _stated_checksum(field: bytes) -> int | None:
    """The checksum field read as `tarfile.nti` reads it; None where tarfile rejects it.

    Base-256 (GNU) when the first byte is 0o200 or 0o377, else octal text up to the first NUL.
    """
    if field[0] in _BASE256:
        value = int.from_bytes(field[1:], "big")
        return value - 256 ** (len(field) - 1) if field[0] == 0o377 else value
    try:
        return int(field.split(b"\0", 1)[0].decode("ascii").strip() or "0", 8)
    except ValueError:
        return None


def _checksum_matches(block: bytes) -> bool:
    """The header checksum test of `TarInfo.frombuf`, done with two C-level sums.

    `frombuf` unpacks the 512 bytes into Python integers twice (14 us a block, most of the time
    spent recognising a small file); most blocks asked are not tar headers and fail right here.
    """
    stated = _stated_checksum(block[_CHECKSUM])
    if stated is None:
        return False
    rest = block[: _CHECKSUM.start] + block[_CHECKSUM.stop : BLOCK_BYTES]
    unsigned = 256 + sum(rest)
    signed = unsigned - 256 * len(rest.translate(None, _HIGH_BYTES_ONLY))
    return stated in (unsigned, signed)


class TarHandler(FormatHandler):
    name = "tar"
    priority = 20

    def sniff_raw(self, head: bytes, blob: Blob) -> bool:
        return self.sniff(head, blob)

    def sniff(self, head: bytes, blob: Blob) -> bool:
        if len(head) < BLOCK_BYTES or not _checksum_matches(head):
            return False
        import tarfile  # only for blocks whose checksum holds: nearly always a real tar

        try:
            tarfile.TarInfo.frombuf(head[:BLOCK_BYTES], "utf-8", "surrogateescape")
        except tarfile.HeaderError:
            return False
        return True

    def scan(self, ctx: ScanContext) -> None:
        from mlwarden.scan.formats._tar_reader import scan_tar

        scan_tar(ctx)


register(TarHandler())
