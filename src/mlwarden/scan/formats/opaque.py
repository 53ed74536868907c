"""Data of no recognised format: searched for hidden pickles, otherwise left as ``unknown``.

Always last in the handler order. A file whose content nothing else claims is not
assessed, unless a pickle hides inside it.
"""

from __future__ import annotations

from mlwarden.scan.blob import Blob
from mlwarden.scan.context import ScanContext
from mlwarden.scan.formats import FormatHandler, register
from mlwarden.scan.pickle.analyser import find_hidden_pickles


class OpaqueHandler(FormatHandler):
    name = "unknown"
    priority = 1000

    def sniff(self, head: bytes, blob: Blob) -> bool:
        return True

    def scan(self, ctx: ScanContext) -> None:
        if find_hidden_pickles(ctx, ctx.blob):
            ctx.format = "data-with-pickle"


register(OpaqueHandler())
