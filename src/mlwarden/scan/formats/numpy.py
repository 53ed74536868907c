"""NumPy ``.npy`` arrays: the header is checked, and object arrays have their pickle analysed.

An ``.npy`` file is a magic string, a Python-literal header naming the dtype, then the array
body. For dtypes that hold Python objects the body is a pickle, which
``numpy.load(allow_pickle=True)`` runs; that pickle goes to the pickle analyser. Any other body
is raw numbers and is never read. ``.npz`` files are zips (their ``.npy`` members come back here
through the engine).

Not for: validating array contents or shapes beyond what decides whether a pickle runs.
"""

from __future__ import annotations

import ast
import io
import struct
import tokenize
from typing import Any, NamedTuple

from mlwarden.findings import Severity
from mlwarden.scan.blob import Blob
from mlwarden.scan.context import LimitExceeded, ScanContext
from mlwarden.scan.formats import FormatHandler, register
from mlwarden.scan.pickle.analyser import analyse_pickle, find_hidden_pickles

NPY_MAGIC = b"\x93NUMPY"
SUPPORTED_VERSIONS = ((1, 0), (2, 0), (3, 0))
HEADER_KEYS = frozenset({"descr", "fortran_order", "shape"})
MAX_HEADER_BYTES = 1024 * 1024
"""Headers longer than this are not parsed (NumPy itself refuses more than 10,000 bytes unless
``allow_pickle`` is set; real headers are under 200 bytes)."""
MAX_DESCR_DEPTH = 64
"""Nested structured dtypes deeper than this are treated as unverifiable."""


class _BadHeader(Exception):
    """The header is not one NumPy accepts; `reason` says why."""

    def __init__(self, reason: str, *, verifiable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.verifiable = verifiable


class NpyHeader(NamedTuple):
    """The parts of an ``.npy`` header that decide how it loads."""

    version: tuple[int, int]
    descr: Any
    shape: tuple[int, ...]
    fortran_order: bool
    body_offset: int
    """Offset of the array body (the pickle, for object arrays)."""


class NumpyHandler(FormatHandler):
    name = "numpy"
    priority = 10

    def sniff_raw(self, head: bytes, blob: Blob) -> bool:
        return self.sniff(head, blob)

    def sniff(self, head: bytes, blob: Blob) -> bool:
        return head[:6] == NPY_MAGIC

    def scan(self, ctx: ScanContext) -> None:
        try:
            header = read_header(ctx.blob)
        except _BadHeader as exc:
            _report_bad_header(ctx, exc)
            return
        if not has_objects(header.descr):
            return
        _scan_object_body(ctx, header)


def read_header(blob: Blob) -> NpyHeader:
    """Parse the header the way ``numpy.lib.format`` does, without NumPy and without eval."""
    prefix = blob.read_at(0, 12)
    if len(prefix) < 10:
        raise _BadHeader("file ends inside the magic string and version")
    version = (prefix[6], prefix[7])
    if version not in SUPPORTED_VERSIONS:
        raise _BadHeader(f"unknown format version {version[0]}.{version[1]}")
    if version == (1, 0):
        length, start = struct.unpack("<H", prefix[8:10])[0], 10
    else:
        if len(prefix) < 12:
            raise _BadHeader("file ends inside the header length")
        length, start = struct.unpack("<I", prefix[8:12])[0], 12
    if length > MAX_HEADER_BYTES:
        raise _BadHeader(
            f"header declares {length} bytes, more than the {MAX_HEADER_BYTES} analysed",
            verifiable=False,
        )
    raw = blob.read_at(start, length)
    if len(raw) < length:
        raise _BadHeader(f"header declares {length} bytes but the file ends after {len(raw)}")
    text = _decode(raw, version)
    fields = _literal_header(text, version)
    shape = fields["shape"]
    return NpyHeader(version, fields["descr"], shape, fields["fortran_order"], start + length)


def _decode(raw: bytes, version: tuple[int, int]) -> str:
    try:
        return raw.decode("utf-8" if version >= (3, 0) else "latin1")
    except UnicodeDecodeError as exc:
        raise _BadHeader(f"header is not valid UTF-8 ({exc.reason})") from None


def _literal_header(text: str, version: tuple[int, int]) -> dict[str, Any]:
    try:
        fields = _safe_literal(text)
    except SyntaxError:
        if version > (2, 0):
            raise _BadHeader("header is not a Python literal") from None
        # NumPy retries version 1/2 headers written by Python 2 after dropping "L" suffixes.
        try:
            fields = _safe_literal(_drop_long_suffixes(text))
        except SyntaxError:
            raise _BadHeader("header is not a Python literal") from None
    if not isinstance(fields, dict):
        raise _BadHeader(f"header is a {type(fields).__name__}, not a dict")
    if set(fields) != HEADER_KEYS:
        raise _BadHeader(
            f"header keys are {sorted(map(str, fields))}, expected {sorted(HEADER_KEYS)}"
        )
    shape = fields["shape"]
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) for n in shape
    ):
        raise _BadHeader(f"shape {shape!r} is not a tuple of integers")
    if not isinstance(fields["fortran_order"], bool):
        raise _BadHeader("fortran_order is not a boolean")
    return fields


def _safe_literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, MemoryError, RecursionError) as exc:
        raise SyntaxError(str(exc)) from None


def _drop_long_suffixes(text: str) -> str:
    tokens = []
    last_was_number = False
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if last_was_number and token.type == tokenize.NAME and token.string == "L":
                last_was_number = False
                continue
            tokens.append((token.type, token.string))
            last_was_number = token.type == tokenize.NUMBER
        return tokenize.untokenize(tokens)
    except (tokenize.TokenError, IndentationError, ValueError) as exc:
        raise SyntaxError(str(exc)) from None


def has_objects(descr: Any, depth: int = 0) -> bool:
    """True if a dtype description holds Python objects anywhere (so the body is a pickle).

    Unrecognisable descriptions count as objects: NumPy would either refuse them or read them
    in a way this function cannot predict, and the cost of analysing a pickle that is not
    there is nil.
    """
    if depth > MAX_DESCR_DEPTH:
        return True
    if isinstance(descr, str):
        return "O" in descr or "object" in descr
    if isinstance(descr, tuple):
        return len(descr) == 0 or has_objects(descr[0], depth + 1)
    if isinstance(descr, list):
        return any(_field_has_objects(f, depth + 1) for f in descr)
    return True


def _field_has_objects(field: Any, depth: int) -> bool:
    if not isinstance(field, (tuple, list)) or len(field) not in (2, 3):
        return True
    return has_objects(field[1], depth)


def _scan_object_body(ctx: ScanContext, header: NpyHeader) -> None:
    body_size = max(0, ctx.blob.size - header.body_offset)
    ctx.add(
        "numpy.object-array",
        Severity.MEDIUM,
        "NumPy array of Python objects: loading it runs the pickle stored in its body",
        f"dtype {header.descr!r} holds objects, so numpy.load(allow_pickle=True) unpickles the "
        "array body. The pickle's own findings, if any, are reported with it.",
        offset=header.body_offset,
        evidence={
            "descr": repr(header.descr)[:200],
            "shape": list(header.shape)[:16],
            "version": f"{header.version[0]}.{header.version[1]}",
            "body_bytes": body_size,
        },
        remediation="Load with numpy.load(allow_pickle=False), or store the data with a "
        "numeric or string dtype.",
    )
    limit = ctx.limits.max_pickle_bytes
    data = ctx.blob.read_at(header.body_offset, min(body_size, limit))
    analysis = analyse_pickle(
        ctx,
        data,
        base_offset=header.body_offset,
        origin="numpy object array",
        trailing=body_size <= limit,
    )
    if body_size > limit and not analysis.malformed and analysis.end >= len(data):
        ctx.limit_hit(
            LimitExceeded(
                "max_pickle_bytes",
                f"object array pickle larger than {limit} bytes; the rest was not read",
            ),
            offset=header.body_offset + limit,
        )


def _report_bad_header(ctx: ScanContext, exc: _BadHeader) -> None:
    severity = Severity.MEDIUM if exc.verifiable else Severity.HIGH
    ctx.add(
        "numpy.bad-header",
        severity,
        "NumPy file with a header NumPy does not accept",
        f"{exc.reason}. numpy.load refuses such a file, but another reader may not; its body "
        "is searched for hidden pickles.",
        offset=6,
        evidence={"reason": exc.reason},
        remediation="Do not load this file; obtain the array again from its source.",
    )
    find_hidden_pickles(ctx, ctx.blob)


register(NumpyHandler())
