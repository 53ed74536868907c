"""ONNX models: external-data paths that leave the model folder, and non-standard operators.

An ONNX file is a protobuf ``ModelProto``. It runs no Python, but two things in it reach outside
the file: tensors stored as external data name a path that the loader opens (an absolute or
``..`` path reads any file on the machine: CVE-2022-25882, CVE-2024-27318), and nodes in a
non-standard operator domain need a native custom-operator library that the user must load.
The protobuf is walked here with a small wire-format reader of our own, over a memory map or a
window of the file, so tensor data is skipped by its length and never read. The ``onnx``
package is never imported.

Not for: checking that the graph is well-formed or runs (that is ``onnx.checker``'s job).
"""

from __future__ import annotations

import mmap
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlwarden.findings import Severity
from mlwarden.scan.blob import Blob, FileBlob, RegionBlob
from mlwarden.scan.context import ScanContext
from mlwarden.scan.formats import FormatHandler, register

STANDARD_DOMAINS = frozenset(
    {
        "",
        "ai.onnx",
        "ai.onnx.ml",
        "ai.onnx.training",
        "ai.onnx.preview.training",
        "ai.onnx.preview",
        "com.microsoft",
        "com.microsoft.nchwc",
        "com.microsoft.experimental",
        "com.ms.internal.nhwc",
        # ATen fallback operators are implemented inside onnxruntime and PyTorch, not by a
        # library the model brings along.
        "org.pytorch.aten",
    }
)
"""Operator domains served by ONNX and onnxruntime themselves."""

TRAVERSAL_CVES = ("CVE-2022-25882", "CVE-2024-27318")
MAX_IR_VERSION = 20
MAX_NESTING = 100
"""protobuf's own recursion limit: deeper messages are refused by every ONNX loader."""
MAX_STRING_BYTES = 4096
"""Names, domains and paths are read up to this length."""
MAX_SNIFF_FIELDS = 4096
"""Top-level fields walked while deciding whether a file is ONNX at all."""
WINDOW_BYTES = 1024 * 1024
"""Bytes read at a time from sources that cannot be memory-mapped."""
SNIFF_WINDOW_BYTES = 16 * 1024
TIME_CHECK_EVERY = 4096
MAX_LOCATIONS_REPORTED = 50

_EXTERNAL = 1
"""TensorProto.DataLocation.EXTERNAL"""

# ModelProto field number -> wire type, for the fields a loader reads.
_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_GRAPH_FIELD = 7
_LENGTH_DELIMITED_TAGS = frozenset(
    (number << 3) | 2 for number, wire in _MODEL_FIELDS.items() if wire == 2
)
_GRAPH_PROTO_TAGS = frozenset((n << 3) | 2 for n in (1, 2, 5, 10, 11, 12, 13, 14, 15))
"""GraphProto's fields, all length-delimited: node, name, initializer, doc_string, input,
output, value_info, quantization_annotation, sparse_initializer."""
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


class _Malformed(Exception):
    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


class _Source(Protocol):
    size: int

    def byte(self, pos: int) -> int: ...

    def take(self, pos: int, n: int) -> bytes: ...

    def close(self) -> None: ...


class _MappedSource:
    """A file region through a read-only memory map: pages not touched are never read."""

    def __init__(self, path: str, offset: int, size: int) -> None:
        aligned = offset - offset % mmap.ALLOCATIONGRANULARITY
        with open(path, "rb") as f:
            self._map = mmap.mmap(
                f.fileno(), size + offset - aligned, access=mmap.ACCESS_READ, offset=aligned
            )
        self._delta = offset - aligned
        self.size = size

    def byte(self, pos: int) -> int:
        return self._map[self._delta + pos]

    def take(self, pos: int, n: int) -> bytes:
        start = self._delta + pos
        return self._map[start : start + n]

    def close(self) -> None:
        self._map.close()


class _WindowSource:
    """Any blob, read a window at a time."""

    def __init__(self, blob: Blob, window_bytes: int = WINDOW_BYTES) -> None:
        self._blob = blob
        self._window_bytes = window_bytes
        self.size = blob.size
        self._window = b""
        self._start = 0

    def byte(self, pos: int) -> int:
        index = pos - self._start
        if not 0 <= index < len(self._window):
            self._fill(pos)
            index = 0
        return self._window[index]

    def take(self, pos: int, n: int) -> bytes:
        index = pos - self._start
        if index >= 0 and index + n <= len(self._window):
            return self._window[index : index + n]
        if n > self._window_bytes:
            return self._blob.read_at(pos, n)
        self._fill(pos)
        return self._window[:n]

    def _fill(self, pos: int) -> None:
        self._window = self._blob.read_at(pos, self._window_bytes)
        self._start = pos
        if not self._window:
            raise _Malformed(pos, "read past the end of the data")

    def close(self) -> None:
        self._window = b""


def _open_source(blob: Blob) -> _Source:
    offset = 0
    current = blob
    while isinstance(current, RegionBlob):
        offset += current.offset
        current = current.parent
    if isinstance(current, FileBlob) and blob.size > 0:
        try:
            return _MappedSource(current.path, offset, blob.size)
        except (OSError, ValueError):
            pass
    return _WindowSource(blob)


_Value = int | tuple[int, int] | None
"""A varint, an (offset, length) for length-delimited fields, None for fixed-width ones."""


class _Wire:
    """Protobuf wire-format reading over a source."""

    def __init__(self, source: _Source, ctx: ScanContext | None = None) -> None:
        self.source = source
        self.ctx = ctx
        self.fields_read = 0

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        if pos < end:
            first = self.source.byte(pos)
            if first < 0x80:
                # Tags and short lengths, the vast majority, fit in one byte.
                return first, pos + 1
        value = 0
        for shift in range(0, 70, 7):
            if pos >= end:
                raise _Malformed(pos, "message ends inside a varint")
            b = self.source.byte(pos)
            pos += 1
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                if value >= 1 << 64:
                    raise _Malformed(pos, "varint larger than 64 bits")
                return value, pos
        raise _Malformed(pos, "varint longer than 10 bytes")

    def fields(self, start: int, end: int, depth: int) -> Iterator[tuple[int, int, _Value]]:
        """(field number, wire type, value) of each field in ``[start, end)``."""
        pos = start
        while pos < end:
            self.fields_read += 1
            if self.ctx is not None and self.fields_read % TIME_CHECK_EVERY == 0:
                self.ctx.check_time()
            at = pos
            tag, pos = self.varint(pos, end)
            number, wire = tag >> 3, tag & 7
            if number == 0:
                raise _Malformed(at, "field number 0")
            value: _Value = None
            if wire == 0:
                value, pos = self.varint(pos, end)
            elif wire == 2:
                length, pos = self.varint(pos, end)
                if length > end - pos:
                    raise _Malformed(
                        at,
                        f"field {number} declares {length} bytes but only "
                        f"{end - pos} remain in its message",
                    )
                value = (pos, length)
                pos += length
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
                if pos > end:
                    raise _Malformed(at, f"fixed-width field {number} runs past its message")
            elif wire == 3:
                pos = self._skip_group(number, pos, end, depth + 1)
            else:
                raise _Malformed(at, f"field {number} has invalid wire type {wire}")
            yield number, wire, value

    def _skip_group(self, number: int, pos: int, end: int, depth: int) -> int:
        if depth > MAX_NESTING:
            raise _Malformed(pos, f"groups nested deeper than {MAX_NESTING}")
        while pos < end:
            at = pos
            tag, pos = self.varint(pos, end)
            inner, wire = tag >> 3, tag & 7
            if wire == 4:
                if inner != number:
                    raise _Malformed(at, f"group {number} closed by end-group {inner}")
                return pos
            if wire == 0:
                _, pos = self.varint(pos, end)
            elif wire == 2:
                length, pos = self.varint(pos, end)
                pos += length
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
            elif wire == 3:
                pos = self._skip_group(inner, pos, end, depth + 1)
            else:
                raise _Malformed(at, f"invalid wire type {wire} in group {number}")
            if pos > end:
                raise _Malformed(at, f"group {number} runs past its message")
        raise _Malformed(pos, f"group {number} is never closed")

    def string(self, span: tuple[int, int]) -> str:
        start, length = span
        return self.source.take(start, min(length, MAX_STRING_BYTES)).decode("utf-8", "replace")


@dataclass
class _ExternalTensor:
    name: str
    location: str


@dataclass
class ModelSummary:
    """What the walk collected from one model."""

    ops: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(domain, op_type) -> number of nodes, over all graphs and functions."""
    functions: set[tuple[str, str]] = field(default_factory=set)
    """(domain, name) of the model-local functions."""
    external: list[_ExternalTensor] = field(default_factory=list)
    ir_version: int | None = None
    has_graph: bool = False


class _ModelWalker:
    """Walks the parts of ModelProto that matter here, collecting into a `ModelSummary`."""

    def __init__(self, wire: _Wire) -> None:
        self.wire = wire
        self.summary = ModelSummary()

    def model(self, end: int) -> None:
        for number, wire, value in self.wire.fields(0, end, 0):
            if number == 1 and wire == 0 and isinstance(value, int):
                self.summary.ir_version = value
            elif number == _GRAPH_FIELD and isinstance(value, tuple):
                self.summary.has_graph = True
                self.graph(value, 1)
            elif number == 25 and isinstance(value, tuple):
                self.function(value, 1)
            elif number == 20 and isinstance(value, tuple):
                self.training_info(value, 1)

    def _children(self, span: tuple[int, int], depth: int) -> Iterator[tuple[int, _Value]]:
        if depth > MAX_NESTING:
            raise _Malformed(
                span[0], f"messages nested deeper than protobuf's limit of {MAX_NESTING}"
            )
        start, length = span
        for number, _wire, value in self.wire.fields(start, start + length, depth):
            yield number, value

    def graph(self, span: tuple[int, int], depth: int) -> None:
        for number, value in self._children(span, depth):
            if not isinstance(value, tuple):
                continue
            if number == 1:
                self.node(value, depth + 1)
            elif number == 5:
                self.tensor(value, depth + 1)
            elif number == 15:
                self.sparse_tensor(value, depth + 1)

    def training_info(self, span: tuple[int, int], depth: int) -> None:
        for number, value in self._children(span, depth):
            if number in (1, 2) and isinstance(value, tuple):
                self.graph(value, depth + 1)

    def function(self, span: tuple[int, int], depth: int) -> None:
        name = domain = ""
        for number, value in self._children(span, depth):
            if not isinstance(value, tuple):
                continue
            if number == 1:
                name = self.wire.string(value)
            elif number == 10:
                domain = self.wire.string(value)
            elif number == 7:
                self.node(value, depth + 1)
            elif number == 11:
                self.attribute(value, depth + 1)
        self.summary.functions.add((domain, name))

    def node(self, span: tuple[int, int], depth: int) -> None:
        op_type = domain = ""
        for number, value in self._children(span, depth):
            if not isinstance(value, tuple):
                continue
            if number == 4:
                op_type = self.wire.string(value)
            elif number == 7:
                domain = self.wire.string(value)
            elif number == 5:
                self.attribute(value, depth + 1)
        self.summary.ops[(domain, op_type)] += 1

    def attribute(self, span: tuple[int, int], depth: int) -> None:
        for number, value in self._children(span, depth):
            if not isinstance(value, tuple):
                continue
            if number in (5, 10):
                self.tensor(value, depth + 1)
            elif number in (6, 11):
                self.graph(value, depth + 1)
            elif number in (22, 23):
                self.sparse_tensor(value, depth + 1)

    def sparse_tensor(self, span: tuple[int, int], depth: int) -> None:
        for number, value in self._children(span, depth):
            if number in (1, 2) and isinstance(value, tuple):
                self.tensor(value, depth + 1)

    def tensor(self, span: tuple[int, int], depth: int) -> None:
        name = ""
        location: int | None = None
        entries: dict[str, str] = {}
        for number, value in self._children(span, depth):
            if number == 8 and isinstance(value, tuple):
                name = self.wire.string(value)
            elif number == 14 and isinstance(value, int):
                location = value
            elif number == 13 and isinstance(value, tuple):
                key, text = self.entry(value, depth + 1)
                entries[key] = text
        if location == _EXTERNAL:
            self.summary.external.append(_ExternalTensor(name, entries.get("location", "")))

    def entry(self, span: tuple[int, int], depth: int) -> tuple[str, str]:
        key = text = ""
        for number, value in self._children(span, depth):
            if number == 1 and isinstance(value, tuple):
                key = self.wire.string(value)
            elif number == 2 and isinstance(value, tuple):
                text = self.wire.string(value)
        return key, text


def looks_like_onnx(head: bytes, blob: Blob) -> bool:
    """ModelProto fields with the right wire types up to a graph, from the first byte on."""
    if len(head) < 2:
        return False
    if head[0] == 0x08:
        if not 1 <= head[1] <= MAX_IR_VERSION:
            return False
    elif head[0] not in _LENGTH_DELIMITED_TAGS:
        return False
    source = _WindowSource(blob, SNIFF_WINDOW_BYTES)
    wire = _Wire(source)
    pos = 0
    try:
        for _ in range(MAX_SNIFF_FIELDS):
            if pos >= blob.size:
                return False
            tag, pos = wire.varint(pos, blob.size)
            number, wire_type = tag >> 3, tag & 7
            if _MODEL_FIELDS.get(number) != wire_type:
                return False
            value, pos = wire.varint(pos, blob.size)
            if number == _GRAPH_FIELD:
                # A truncated model still counts when it starts with ir_version, as every
                # writer emits. Without it, the graph must fit in the file and open with a
                # GraphProto field: about 1 in 250 random files starts with the graph tag and
                # a length that fits, and would be reported as a malformed model.
                if head[0] == 0x08:
                    return True
                return pos + value <= blob.size and _opens_graph(wire, pos, value, blob.size)
            if wire_type == 2:
                pos += value
    except _Malformed:
        return False
    finally:
        source.close()
    return False


def _opens_graph(wire: _Wire, pos: int, length: int, size: int) -> bool:
    """True if the `length` bytes at `pos` start with a GraphProto field that fits in them."""
    if length < 2:
        return False
    end = pos + length
    tag, inner = wire.varint(pos, size)
    if tag not in _GRAPH_PROTO_TAGS:
        return False
    field_length, inner = wire.varint(inner, size)
    return inner + field_length <= end


class OnnxHandler(FormatHandler):
    name = "onnx"
    priority = 30

    def sniff(self, head: bytes, blob: Blob) -> bool:
        return looks_like_onnx(head, blob)

    def scan(self, ctx: ScanContext) -> None:
        source = _open_source(ctx.blob)
        walker = _ModelWalker(_Wire(source, ctx))
        try:
            walker.model(source.size)
        except _Malformed as exc:
            _report_malformed(ctx, exc)
        finally:
            source.close()
        summary = walker.summary
        _report_external(ctx, summary.external)
        _report_custom_domains(ctx, summary)


def _report_malformed(ctx: ScanContext, exc: _Malformed) -> None:
    ctx.add(
        "onnx.malformed",
        Severity.HIGH,
        "ONNX model is truncated or malformed; the rest of it was not verified",
        f"The protobuf breaks at offset {exc.offset}: {exc.reason}.",
        offset=exc.offset,
        evidence={"reason": exc.reason},
        remediation="Do not load this file; obtain the model again from its publisher.",
    )


def _report_external(ctx: ScanContext, tensors: list[_ExternalTensor]) -> None:
    by_location: dict[str, list[str]] = {}
    for tensor in tensors:
        by_location.setdefault(tensor.location, []).append(tensor.name)
    model_dir = os.path.dirname(os.path.abspath(ctx.file_path)) if ctx.file_path else None
    for location, names in list(by_location.items())[:MAX_LOCATIONS_REPORTED]:
        reason = _leaves_folder(location, model_dir)
        evidence: dict[str, Any] = {
            "location": location,
            "tensors": names[:10],
            "tensor_count": len(names),
        }
        if reason is not None:
            _report_outside(ctx, location, reason, evidence)
        elif model_dir is not None and not os.path.isfile(os.path.join(model_dir, location)):
            ctx.add(
                "onnx.external-data-missing",
                Severity.LOW,
                f"ONNX external data file {location!r} is missing",
                f"{len(names)} tensor(s) are stored in {location!r} next to the model, which "
                "was not found; the model cannot load without it.",
                evidence=evidence,
                remediation="Ship the external data file with the model.",
            )


def _report_outside(ctx: ScanContext, location: str, reason: str, evidence: dict[str, Any]) -> None:
    evidence = {**evidence, "reason": reason, "cve": list(TRAVERSAL_CVES)}
    ctx.add(
        "onnx.external-data-outside",
        Severity.HIGH,
        f"ONNX external data path leaves the model folder: {location!r}",
        f"{evidence['tensor_count']} tensor(s) are read from {location!r} ({reason}). Loading "
        "the model reads that file into the tensors, and vulnerable loaders do so without "
        f"question ({', '.join(TRAVERSAL_CVES)}); outputs or error messages can leak it.",
        evidence=evidence,
        remediation="Do not load this model. External data must be a relative path inside the "
        "model's folder; re-export the model or rewrite the locations.",
    )


def _leaves_folder(location: str, model_dir: str | None) -> str | None:
    """Why `location` points outside the model's folder, or None if it stays inside."""
    if not location:
        return "empty path (the model's folder itself)"
    if "\x00" in location:
        return "path contains a NUL byte"
    if location.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(location):
        return "absolute path"
    if ".." in re.split(r"[\\/]", location):
        return "path climbs out with '..'"
    if model_dir is None:
        return None
    real_dir = os.path.realpath(model_dir)
    target = os.path.realpath(os.path.join(model_dir, location))
    if target != real_dir and not target.startswith(real_dir + os.sep):
        return f"resolves to {target} through a symbolic link"
    return None


def _report_custom_domains(ctx: ScanContext, summary: ModelSummary) -> None:
    custom: dict[str, dict[str, int]] = {}
    for (domain, op_type), count in summary.ops.items():
        if domain in STANDARD_DOMAINS or (domain, op_type) in summary.functions:
            continue
        custom.setdefault(domain, {})[op_type] = count
    if not custom:
        return
    total = sum(sum(ops.values()) for ops in custom.values())
    domains = ", ".join(sorted(custom))
    ctx.add(
        "onnx.custom-domain",
        Severity.MEDIUM,
        f"ONNX model uses operators from non-standard domains: {domains}",
        f"{total} node(s) use operators that neither ONNX nor onnxruntime implement and that "
        "no function in the model defines; running the model needs a native custom-operator "
        "library, which is code the model's publisher asks you to load.",
        evidence={
            "domains": {d: dict(sorted(ops.items())) for d, ops in sorted(custom.items())},
            "nodes": total,
        },
        remediation="Load custom-operator libraries only from a source you trust, and review "
        "which library implements these domains.",
    )


register(OnnxHandler())
