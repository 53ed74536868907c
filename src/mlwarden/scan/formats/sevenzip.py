"""7z archives (the nullifAI packing of PyTorch models), recognised by their signature.

The reading itself lives in `_sevenzip_reader` so that py7zr is imported only when a 7z
archive is actually found. Not for: writing or extracting archives.
"""

from __future__ import annotations

from mlwarden.scan.blob import Blob
from mlwarden.scan.context import ScanContext
from mlwarden.scan.formats import FormatHandler, register

MAGIC = b"7z\xbc\xaf\x27\x1c"


class SevenZipHandler(FormatHandler):
    name = "7z"
    priority = 10

    def sniff_raw(self, head: bytes, blob: Blob) -> bool:
        return self.sniff(head, blob)

    def sniff(self, head: bytes, blob: Blob) -> bool:
        return head.startswith(MAGIC)

    def scan(self, ctx: ScanContext) -> None:
        from mlwarden.scan.formats._sevenzip_reader import scan_sevenzip

        scan_sevenzip(ctx)


register(SevenZipHandler())
