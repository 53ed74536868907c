"""Pickle streams (protocols 0-5), including joblib files and PyTorch's legacy format.

Recognised by content: a PROTO opcode, or a protocol 0/1 stream that imports something or runs
to STOP. Not for: the analysis itself (`mlwarden.scan.pickle`).
"""

from __future__ import annotations

from mlwarden.scan.blob import Blob
from mlwarden.scan.context import LimitExceeded, ScanContext
from mlwarden.scan.formats import FormatHandler, register
from mlwarden.scan.pickle.analyser import analyse_pickle, looks_like_pickle


class PickleHandler(FormatHandler):
    name = "pickle"
    priority = 60

    def sniff(self, head: bytes, blob: Blob) -> bool:
        return looks_like_pickle(head)

    def sniff_raw(self, head: bytes, blob: Blob) -> bool:
        return looks_like_pickle(head, require_code=True)

    def scan(self, ctx: ScanContext) -> None:
        limit = ctx.limits.max_pickle_bytes
        data = ctx.blob.read_all(limit)
        analysis = analyse_pickle(ctx, data, trailing=ctx.blob.size <= limit)
        if analysis.legacy_torch:
            ctx.format = "pytorch-legacy"
        elif _JOBLIB_MARKER in data[: 1 << 20]:
            ctx.format = "joblib"
        if ctx.blob.size > limit and not analysis.malformed and analysis.end >= len(data):
            ctx.limit_hit(
                LimitExceeded(
                    "max_pickle_bytes",
                    f"pickle stream larger than {limit} bytes; the rest was not read",
                ),
                offset=limit,
            )


_JOBLIB_MARKER = b"NumpyArrayWrapper"

register(PickleHandler())
