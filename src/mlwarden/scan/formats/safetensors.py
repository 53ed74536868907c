"""safetensors files: the JSON header is validated the way the reference loader validates it.

A safetensors file cannot run code, which is why it is the safe choice; what it can do is lie.
A header whose offsets overlap, leave gaps, or disagree with dtype and shape is rejected by the
reference implementation but may be misread by others, and bytes after the last tensor can hide
a second file (a pickle, a zip that a zip reader finds from the end). This handler checks every
rule of the reference loader and hands trailing bytes back to the engine.

Not for: tensor values, which are never read.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from mlwarden.findings import Severity
from mlwarden.scan.blob import Blob
from mlwarden.scan.context import LimitExceeded, ScanContext
from mlwarden.scan.formats import FormatHandler, register

REFERENCE_MAX_HEADER_BYTES = 100_000_000
"""The reference loader refuses larger headers; larger is not safetensors."""
METADATA_KEY = "__metadata__"
MAX_PROBLEMS_SHOWN = 20
"""Problems listed in one finding's evidence; the rest are counted."""

DTYPE_BITS = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}
"""Bits per element of every dtype the reference implementation knows."""

_USIZE_MAX = 2**64 - 1
_JSON_WHITESPACE = b" \t\n\r"


class _DuplicateKey(ValueError):
    pass


class Tensor(NamedTuple):
    """One header entry that passed the per-entry checks."""

    name: str
    begin: int
    end: int


@dataclass
class HeaderCheck:
    """Problems found in one header, by finding rule."""

    invalid: list[dict[str, str]] = field(default_factory=list)
    overlaps: list[dict[str, str]] = field(default_factory=list)
    tensors: list[Tensor] = field(default_factory=list)
    data_end: int = 0
    """End of the last tensor, relative to the start of the data region."""


class SafetensorsHandler(FormatHandler):
    name = "safetensors"
    priority = 20

    def sniff(self, head: bytes, blob: Blob) -> bool:
        if len(head) < 9 or head[8:9] != b"{":
            return False
        length: int = struct.unpack("<Q", head[:8])[0]
        return 2 <= length <= min(blob.size - 8, REFERENCE_MAX_HEADER_BYTES)

    def scan(self, ctx: ScanContext) -> None:
        length: int = struct.unpack("<Q", ctx.blob.head(8))[0]
        if length > ctx.limits.max_metadata_bytes:
            raise LimitExceeded("max_metadata_bytes", f"safetensors header of {length} bytes")
        raw = ctx.blob.read_at(8, length)
        data_start = 8 + length
        data_size = ctx.blob.size - data_start
        header = _parse_header(ctx, raw)
        if header is None:
            return
        _check_padding(ctx, raw)
        check = check_header(header, data_size)
        _report(ctx, check, data_start, data_size)


def _parse_header(ctx: ScanContext, raw: bytes) -> dict[str, Any] | None:
    problem = None
    try:
        text = raw.decode("utf-8")
        header = json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except UnicodeDecodeError as exc:
        problem = f"header is not valid UTF-8 ({exc.reason} at byte {exc.start})"
    except _DuplicateKey as exc:
        problem = str(exc)
    except RecursionError:
        problem = "header JSON is nested too deeply to parse"
    except ValueError as exc:
        problem = f"header is not valid JSON ({exc})"
    if problem is None and not isinstance(header, dict):
        problem = f"header is a JSON {type(header).__name__}, not an object"
    if problem is not None:
        _add_invalid(ctx, [{"tensor": "", "problem": problem}], offset=8)
        return None
    return header  # type: ignore[no-any-return]


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(
                f"key {key!r} appears twice in the header; readers disagree on which one counts"
            )
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_header(header: dict[str, Any], data_size: int) -> HeaderCheck:
    """Apply every rule of the reference loader to a parsed header."""
    check = HeaderCheck()
    for name, info in header.items():
        if name == METADATA_KEY:
            _check_metadata(check, info)
            continue
        tensor = _check_entry(check, name, info)
        if tensor is not None:
            check.tensors.append(tensor)
    _check_layout(check, data_size)
    return check


def _check_metadata(check: HeaderCheck, info: Any) -> None:
    if not isinstance(info, dict):
        check.invalid.append(
            {"tensor": METADATA_KEY, "problem": f"is a JSON {type(info).__name__}, not an object"}
        )
        return
    bad = [k for k, v in info.items() if not isinstance(v, str)]
    if bad:
        check.invalid.append(
            {"tensor": METADATA_KEY, "problem": f"values of {bad[:5]} are not strings"}
        )


def _check_entry(check: HeaderCheck, name: str, info: Any) -> Tensor | None:
    def bad(problem: str) -> None:
        check.invalid.append({"tensor": name, "problem": problem})

    if not isinstance(info, dict):
        bad(f"entry is a JSON {type(info).__name__}, not an object")
        return None
    missing = [k for k in ("dtype", "shape", "data_offsets") if k not in info]
    if missing:
        bad(f"missing {', '.join(missing)}")
        return None
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        bad(f"unknown dtype {dtype!r}")
        return None
    if not isinstance(shape, list) or not all(_is_usize(n) for n in shape):
        bad(f"shape {_short(shape)} is not a list of non-negative integers")
        return None
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_usize(n) for n in offsets):
        bad(f"data_offsets {_short(offsets)} is not a pair of non-negative integers")
        return None
    begin, end = offsets
    if end < begin:
        bad(f"data_offsets [{begin}, {end}] end before they begin")
        return None
    elements = _element_count(shape)
    nbits = None if elements is None else elements * DTYPE_BITS[dtype]
    if nbits is None or nbits > _USIZE_MAX:
        bad(f"shape {_short(shape)} overflows the element count")
        return None
    if nbits % 8:
        bad(f"shape {_short(shape)} of {dtype} does not fill whole bytes")
        return None
    if end - begin != nbits // 8:
        bad(f"holds {end - begin} bytes but {dtype} {_short(shape)} needs {nbits // 8}")
        return None
    return Tensor(name, begin, end)


def _check_layout(check: HeaderCheck, data_size: int) -> None:
    position = 0
    previous: Tensor | None = None
    for tensor in sorted(check.tensors, key=lambda t: (t.begin, t.end)):
        if tensor.end > data_size:
            check.invalid.append(
                {
                    "tensor": tensor.name,
                    "problem": f"data_offsets [{tensor.begin}, {tensor.end}] run past the data "
                    f"region ({data_size} bytes): truncated file or lying header",
                }
            )
        if tensor.begin < position and previous is not None:
            check.overlaps.append(
                {
                    "tensor": tensor.name,
                    "problem": f"[{tensor.begin}, {tensor.end}] overlaps {previous.name!r} "
                    f"[{previous.begin}, {previous.end}]",
                }
            )
        elif tensor.begin > position:
            check.invalid.append(
                {
                    "tensor": tensor.name,
                    "problem": f"gap of {tensor.begin - position} unlisted bytes before it "
                    f"(data region offsets {position} to {tensor.begin})",
                }
            )
        if tensor.end >= position:
            position = tensor.end
            previous = tensor
    check.data_end = position


def _element_count(shape: list[int]) -> int | None:
    """The product of `shape`, or None past 2**64 (stops early: shapes can be hostile)."""
    if 0 in shape:
        return 0
    count = 1
    for n in shape:
        count *= n
        if count > _USIZE_MAX:
            return None
    return count


def _is_usize(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _USIZE_MAX


def _short(value: Any) -> str:
    text = json.dumps(value) if _jsonable(value) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def _check_padding(ctx: ScanContext, raw: bytes) -> None:
    closing = raw.rstrip(_JSON_WHITESPACE)
    padding = raw[len(closing) :]
    if padding.strip(b" "):
        ctx.add(
            "safetensors.header-padding",
            Severity.LOW,
            "safetensors header padded with whitespace other than spaces",
            "Writers pad the header with spaces; tabs or line breaks mean the header was edited "
            "by hand or by another tool.",
            offset=8 + len(closing),
            evidence={"padding": padding[:32].decode("ascii", "replace")},
            remediation="Check the file's provenance.",
        )


def _report(ctx: ScanContext, check: HeaderCheck, data_start: int, data_size: int) -> None:
    if check.invalid:
        _add_invalid(ctx, check.invalid, offset=8)
    if check.overlaps:
        ctx.add(
            "safetensors.overlap",
            Severity.HIGH,
            f"safetensors tensors overlap: {_first(check.overlaps)}",
            "Two tensors claim the same bytes. The reference loader rejects the file; other "
            "readers load aliased or corrupted weights.",
            offset=8,
            evidence=_evidence(check.overlaps),
            remediation="Do not load this file; obtain it again from its publisher.",
        )
    trailing = data_size - check.data_end
    if trailing > 0:
        _report_trailing(ctx, data_start + check.data_end, trailing)


def _report_trailing(ctx: ScanContext, offset: int, size: int) -> None:
    ctx.add(
        "safetensors.trailing-data",
        Severity.MEDIUM,
        f"{size} bytes follow the last tensor of this safetensors file",
        "No tensor covers them, so no safetensors reader uses them; they can carry a second "
        "file (a pickle, or a zip that readers locate from the end). They are scanned below.",
        offset=offset,
        evidence={"offset": offset, "bytes": size},
        remediation="Re-save the tensors with the safetensors library, which writes no "
        "trailing bytes.",
    )
    ctx.scan_child(ctx.blob.region(offset, size), f"<trailing@{offset}>")


def _add_invalid(ctx: ScanContext, problems: list[dict[str, str]], *, offset: int) -> None:
    ctx.add(
        "safetensors.invalid-header",
        Severity.HIGH,
        f"Invalid safetensors header: {_first(problems)}",
        "The reference loader rejects this header; other readers may misread it, so what the "
        "file holds cannot be verified.",
        offset=offset,
        evidence=_evidence(problems),
        remediation="Do not load this file; obtain it again from its publisher.",
    )


def _first(problems: list[dict[str, str]]) -> str:
    first = problems[0]
    return f"{first['tensor']!r} {first['problem']}" if first["tensor"] else first["problem"]


def _evidence(problems: list[dict[str, str]]) -> dict[str, Any]:
    return {"problems": problems[:MAX_PROBLEMS_SHOWN], "count": len(problems)}


register(SafetensorsHandler())
