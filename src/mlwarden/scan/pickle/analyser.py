"""Judge what a pickle would do when loaded, and report it as findings.

`analyse_pickle` runs the symbolic machine over every pickle in a stream (several pickles one
after another, joblib array blocks, nested pickles handed to loaders inside the pickle), then
judges each recorded event against the policy:

- calling a dangerous callable, or a callable computed from one: critical;
- calling a callable that is not allowlisted (REDUCE, INST, OBJ): high;
- instantiating a class that is not allowlisted (NEWOBJ + BUILD): medium;
- referencing a global that is not allowlisted without calling it: medium (critical if dangerous);
- mutating a module or class (BUILD or SETITEM on a global): high;
- a malformed stream: high when anything ran before the break, else medium.

Findings with the same rule and global are merged, with a count and the first offsets.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import lzma
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from mlwarden.findings import Severity
from mlwarden.scan.blob import Blob, BytesBlob
from mlwarden.scan.context import LimitExceeded, ScanContext
from mlwarden.scan.pickle.machine import (
    _STACK_GLOBAL_DYNAMIC,
    Event,
    PickleMachine,
    RunResult,
)
from mlwarden.scan.pickle.values import Call, Const, Global, Opaque, Seq, Value, render, walk
from mlwarden.scan.policy import CYTHON_UNPICKLE_PREFIX, Classification, Verdict

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
"""First pickle of PyTorch's legacy (non-zip) format."""
TORCH_LEGACY_PICKLES = 5
"""magic number, protocol version, sys info, the object, storage keys; raw storages follow."""

MAX_OFFSETS_SHOWN = 10

CODE_EXECUTION_FIX = (
    "Do not load this file: loading it runs the code shown. Delete it, find out how it reached "
    "you, and obtain the model from its publisher in a safe format (safetensors, ONNX, skops). "
    "A policy file cannot allow dangerous callables."
)
MAX_FOLD_DEPTH = 8

# Allowlisted functions that call or instantiate one of their arguments: the argument is judged
# as if the pickle had called it (`call`) or instantiated it (`new`).
_ARGUMENT_ROLES: dict[str, tuple[tuple[int, str], ...]] = {
    "copyreg._reconstructor": ((0, "new"), (1, "base")),
    "copyreg.__newobj__": ((0, "new"),),
    "copyreg.__newobj_ex__": ((0, "new"),),
    "torch._tensor._rebuild_from_type": ((0, "call"), (1, "new")),
    "torch._tensor._rebuild_from_type_v2": ((0, "call"), (1, "new")),
    "torch._utils._rebuild_wrapper_subclass": ((0, "new"),),
    "numpy.core.multiarray._reconstruct": ((0, "new"),),
    "numpy._core.multiarray._reconstruct": ((0, "new"),),
    "numpy.ma.core._mareconstruct": ((0, "new"), (1, "new")),
}

# Functions that load a pickle (or a whole model file) from an argument: the argument, when it
# can be computed statically, is scanned as a nested file.
NESTED_LOADERS: dict[str, int] = {
    "pickle.loads": 0,
    "pickle._loads": 0,
    "_pickle.loads": 0,
    "pickle.load": 0,
    "pickle._load": 0,
    "_pickle.load": 0,
    "dill.loads": 0,
    "dill._dill.loads": 0,
    "cloudpickle.loads": 0,
    "joblib.load": 0,
    "torch.load": 0,
    "torch.serialization.load": 0,
    "torch.storage._load_from_bytes": 0,
    "numpy.load": 0,
    "pandas.read_pickle": 0,
}

_BYTES_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "base64.b64decode": base64.b64decode,
    "base64.standard_b64decode": base64.standard_b64decode,
    "base64.urlsafe_b64decode": base64.urlsafe_b64decode,
    "base64.decodebytes": base64.decodebytes,
    "base64.b32decode": base64.b32decode,
    "base64.b16decode": base64.b16decode,
    "base64.a85decode": base64.a85decode,
    "base64.b85decode": base64.b85decode,
    "binascii.a2b_base64": binascii.a2b_base64,
    "binascii.unhexlify": binascii.unhexlify,
    "binascii.a2b_hex": binascii.a2b_hex,
    "builtins.bytes.fromhex": lambda b: bytes.fromhex(b.decode("latin-1")),
}
_DECOMPRESSORS: dict[str, Callable[[], Any]] = {
    "zlib.decompress": zlib.decompressobj,
    "gzip.decompress": lambda: zlib.decompressobj(wbits=47),
    "bz2.decompress": bz2.BZ2Decompressor,
    "lzma.decompress": lzma.LZMADecompressor,
}
_PASS_THROUGH = frozenset(
    {"io.BytesIO", "_io.BytesIO", "builtins.bytes", "builtins.bytearray", "builtins.memoryview"}
)
_TEXT_ENCODERS = frozenset({"_codecs.encode", "codecs.encode"})

_PICKLE_START = re.compile(
    rb"\x80[\x02-\x05]|(?<![\w.])c[A-Za-z_][\w.]{0,200}\n[A-Za-z_][\w.]{0,200}\n"
)


@dataclass
class PickleAnalysis:
    """What `analyse_pickle` found in one stream."""

    pickles: int = 0
    """Pickles parsed one after another."""
    end: int = 0
    """Offset (in the analysed data) after the last byte parsed."""
    malformed: bool = False
    protocol: int = 0
    opcodes: int = 0
    legacy_torch: bool = False
    events: int = 0


@dataclass
class _Merged:
    rule: str
    severity: Severity
    title: str
    detail: str
    evidence: dict[str, Any]
    offsets: list[int] = field(default_factory=list)
    count: int = 0


class _Judge:
    """Turns events into merged findings for one stream."""

    def __init__(self, ctx: ScanContext, base_offset: int, origin: str) -> None:
        self.ctx = ctx
        self.base = base_offset
        self.origin = origin
        self.merged: dict[tuple[str, str], _Merged] = {}
        self._cache: dict[tuple[str, str], Classification] = {}

    def classify(self, value: Global) -> Classification:
        key = (value.module, value.name)
        found = self._cache.get(key)
        if found is None:
            if _STACK_GLOBAL_DYNAMIC in key:
                found = Classification(Verdict.DANGEROUS, "name computed while loading")
            else:
                found = self.ctx.policy.classify(value.module, value.name)
            self._cache[key] = found
        return found

    def note(
        self,
        rule: str,
        key: str,
        severity: Severity,
        title: str,
        detail: str,
        offset: int,
        evidence: dict[str, Any],
    ) -> None:
        entry = self.merged.get((rule, key))
        if entry is None:
            entry = _Merged(rule, severity, title, detail, evidence)
            self.merged[(rule, key)] = entry
        entry.count += 1
        if len(entry.offsets) < MAX_OFFSETS_SHOWN:
            entry.offsets.append(self.base + offset)

    def flush(self) -> None:
        for entry in self.merged.values():
            evidence = dict(entry.evidence)
            evidence["count"] = entry.count
            evidence["offsets"] = entry.offsets
            if self.origin != "pickle":
                evidence["origin"] = self.origin
            self.ctx.add(
                entry.rule,
                entry.severity,
                entry.title,
                entry.detail,
                offset=entry.offsets[0] if entry.offsets else None,
                evidence=evidence,
                remediation=CODE_EXECUTION_FIX if entry.severity is Severity.CRITICAL else "",
            )
        self.merged.clear()


def analyse_pickle(
    ctx: ScanContext,
    data: bytes,
    *,
    base_offset: int = 0,
    origin: str = "pickle",
    trailing: bool = True,
) -> PickleAnalysis:
    """Analyse every pickle in `data` and report findings into `ctx`.

    `data` are the bytes of ``ctx.blob`` starting at `base_offset` (offsets in findings are
    offsets in ``ctx.blob``). `origin` says where the stream came from (``numpy object array``).
    When `trailing` is true, bytes after the last pickle are scanned as nested content.
    """
    analysis = PickleAnalysis()
    judge = _Judge(ctx, base_offset, origin)
    extensions: dict[int, tuple[str, str]] = {}
    pos = 0
    first_value_is_magic = False
    limits = ctx.limits
    try:
        while pos < len(data):
            if analysis.pickles >= limits.max_pickles_per_stream:
                raise LimitExceeded(
                    "max_pickles_per_stream",
                    f"more than {limits.max_pickles_per_stream} pickles in one stream",
                )
            machine = PickleMachine(
                data,
                pos,
                max_opcodes=limits.max_opcodes,
                max_memo=limits.max_memo,
                check_time=ctx.check_time,
                extensions=extensions,
            )
            result = machine.run()
            if analysis.pickles > 0 and not _is_pickle(result):
                break
            analysis.pickles += 1
            analysis.protocol = max(analysis.protocol, result.protocol)
            analysis.opcodes += result.opcodes
            analysis.events += len(result.events)
            if analysis.pickles == 1:
                first_value_is_magic = _is_torch_legacy_magic(machine)
            _judge_events(judge, result.events, ctx, base_offset)
            pos = result.end
            if result.limit is not None:
                judge.flush()
                ctx.limit_hit(
                    LimitExceeded(
                        result.limit.limit,
                        f"pickle too large to analyse (limit {result.limit.limit})",
                    ),
                    offset=base_offset + result.limit.offset,
                )
                break
            if result.error is not None:
                analysis.malformed = True
                _report_malformed(ctx, result, base_offset, origin)
                break
            if first_value_is_magic and analysis.pickles >= TORCH_LEGACY_PICKLES:
                analysis.legacy_torch = True
                break
    finally:
        judge.flush()
    analysis.end = pos
    if (
        trailing
        and not analysis.malformed
        and not analysis.legacy_torch
        and analysis.pickles
        and pos < len(data)
    ):
        ctx.scan_child(ctx.blob.region(base_offset + pos, len(data) - pos), f"<after@{pos}>")
    return analysis


def _is_pickle(result: RunResult) -> bool:
    """Whether a stream that follows a complete pickle is itself a pickle a loader would run."""
    return bool(result.events) or (result.stopped and result.opcodes >= 2)


def _is_torch_legacy_magic(machine: PickleMachine) -> bool:
    """Whether the pickle just run is PyTorch's legacy magic number (LONG1 then STOP)."""
    chunk = machine.data[machine.start : machine.pos]
    return (
        not machine.events
        and chunk.startswith(b"\x80\x02\x8a\x0a")
        and int.from_bytes(chunk[4:14], "little", signed=True) == TORCH_LEGACY_MAGIC
    )


def _report_malformed(ctx: ScanContext, result: RunResult, base: int, origin: str) -> None:
    error = result.error
    assert error is not None
    ran = [e for e in result.events if e.kind in ("import", "call", "build", "method")]
    severity = Severity.HIGH if ran else Severity.MEDIUM
    ctx.add(
        "pickle.malformed",
        severity,
        f"Malformed pickle: the stream breaks at offset {base + error.offset}",
        f"{error.message}. A loader runs everything before this point "
        f"({len(ran)} import/call event{'s' if len(ran) != 1 else ''} here) and then fails; "
        "breaking a pickle right after its payload is a known way to slip past scanners "
        "(nullifAI).",
        offset=base + error.offset,
        evidence={
            "error": error.message,
            "opcodes_before_break": result.opcodes,
            "events_before_break": len(ran),
            "origin": origin,
        },
    )


def _judge_events(judge: _Judge, events: list[Event], ctx: ScanContext, base: int) -> None:
    consumed: set[int] = set()
    for event in events:
        if event.kind == "call":
            _judge_call(judge, event, consumed, ctx, base)
        elif event.kind == "method":
            _judge_mutation(judge, event, f"calls {event.detail} on it")
        elif event.kind == "build":
            _judge_build(judge, event)
        elif event.kind == "extension":
            judge.note(
                "pickle.extension-code",
                event.detail,
                Severity.HIGH,
                f"Pickle uses extension code {event.detail} (EXT opcode)",
                "The object comes from copyreg's extension registry, which this scan cannot "
                "see; a loader with a registered code imports whatever it names.",
                event.offset,
                {"opcode": event.opcode, "code": event.detail},
            )
    for event in events:
        value = event.value
        if event.kind == "import" and isinstance(value, Global) and id(value) not in consumed:
            _judge_reference(judge, event, value)


def _judge_call(
    judge: _Judge, event: Event, consumed: set[int], ctx: ScanContext, base: int
) -> None:
    call = event.value
    assert isinstance(call, Call)
    func = _persistent_class(call.func) or call.func
    if not isinstance(func, Global):
        _judge_computed_call(judge, event, call)
        return
    consumed.add(id(func))
    creates = call.opcode in ("NEWOBJ", "NEWOBJ_EX")
    _judge_callable(judge, func, "new" if creates else "call", event, call)
    if judge.classify(func).verdict is Verdict.SAFE:
        for index, role in _argument_roles(func):
            argument = _argument(call, index)
            if isinstance(argument, Global):
                consumed.add(id(argument))
                if role == "base" and argument.qualname == "builtins.object":
                    continue
                _judge_callable(judge, argument, "new" if role == "new" else "call", event, call)
    loader_arg = NESTED_LOADERS.get(func.qualname)
    if loader_arg is not None:
        _scan_nested(ctx, judge, event, call, loader_arg, base)


def _persistent_class(value: Value) -> Global | None:
    """The class of PyTorch's legacy ``('module', cls, source_file, source)`` persistent id."""
    if isinstance(value, Opaque) and value.parts:
        pid = value.parts[0]
        if (
            isinstance(pid, Seq)
            and len(pid.items) >= 2
            and isinstance(pid.items[0], Const)
            and pid.items[0].value == "module"
            and isinstance(pid.items[1], Global)
        ):
            return pid.items[1]
    return None


def _argument_roles(func: Global) -> tuple[tuple[int, str], ...]:
    if func.name.startswith(CYTHON_UNPICKLE_PREFIX):
        return ((0, "new"),)
    return _ARGUMENT_ROLES.get(func.qualname, ())


def _judge_callable(judge: _Judge, func: Global, role: str, event: Event, call: Call) -> None:
    verdict = judge.classify(func)
    if verdict.verdict is Verdict.SAFE:
        return
    chain = render(call)
    evidence = {
        "global": func.qualname,
        "opcode": event.opcode,
        "call": chain,
        "reason": verdict.reason,
    }
    if verdict.verdict is Verdict.DANGEROUS:
        judge.note(
            "pickle.dangerous-call",
            func.qualname,
            Severity.CRITICAL,
            f"Pickle calls {func.qualname} when loaded",
            f"Loading runs `{chain}`. {func.qualname} is dangerous: {verdict.reason}.",
            event.offset,
            evidence,
        )
    elif verdict.verdict is Verdict.UNKNOWN:
        if role == "new":
            judge.note(
                "pickle.unknown-class",
                func.qualname,
                Severity.MEDIUM,
                f"Pickle instantiates {func.qualname}, which is not on the allowlist",
                f"Loading imports {func.qualname} and creates an instance without calling "
                "its constructor; its __setstate__ (if any) runs. Review the class, then "
                "allow it in a policy file.",
                event.offset,
                evidence,
            )
        else:
            judge.note(
                "pickle.unknown-call",
                func.qualname,
                Severity.HIGH,
                f"Pickle calls {func.qualname}, which is not on the allowlist",
                f"Loading runs `{chain}`. Calling an unreviewed callable can execute "
                "arbitrary code; allow it in a policy file only after reviewing it.",
                event.offset,
                evidence,
            )


def _judge_computed_call(judge: _Judge, event: Event, call: Call) -> None:
    chain = render(call)
    dangerous = [
        g
        for g in walk(call.func)
        if isinstance(g, Global) and judge.classify(g).verdict is Verdict.DANGEROUS
    ]
    if dangerous:
        name = dangerous[0].qualname
        judge.note(
            "pickle.dangerous-call",
            f"computed:{chain}",
            Severity.CRITICAL,
            f"Pickle calls a callable obtained through {name} when loaded",
            f"Loading runs `{chain}`: the callable is computed at load time from {name}, a "
            "classic way to reach code execution through names no denylist lists.",
            event.offset,
            {"global": name, "opcode": event.opcode, "call": chain},
        )
    else:
        judge.note(
            "pickle.indirect-call",
            chain[:80],
            Severity.HIGH,
            "Pickle calls a callable computed while loading",
            f"Loading runs `{chain}`; the callable is the result of another call, which "
            "legitimate model files do not do.",
            event.offset,
            {"opcode": event.opcode, "call": chain},
        )


def _judge_mutation(judge: _Judge, event: Event, action: str) -> None:
    target = event.value
    if isinstance(target, Global):
        verdict = judge.classify(target)
        severity = Severity.CRITICAL if verdict.verdict is Verdict.DANGEROUS else Severity.HIGH
        judge.note(
            "pickle.global-mutation",
            target.qualname,
            severity,
            f"Pickle modifies {target.qualname} (a module-level object) when loaded",
            f"The pickle {action}: changing a module or class while loading can hijack code "
            "that runs later (modelscan#85).",
            event.offset,
            {"global": target.qualname, "opcode": event.opcode},
        )
    elif (
        isinstance(target, Call)
        and isinstance(target.func, Global)
        and judge.classify(target.func).verdict is not Verdict.SAFE
    ):
        judge.note(
            "pickle.unknown-method",
            target.func.qualname,
            Severity.MEDIUM,
            f"Pickle calls methods of {target.func.qualname} while loading",
            f"The pickle {action}, running code of a class that is not on the allowlist.",
            event.offset,
            {"global": target.func.qualname, "opcode": event.opcode},
        )


def _judge_build(judge: _Judge, event: Event) -> None:
    if isinstance(event.value, Global):
        _judge_mutation(judge, event, "sets attributes on it (BUILD)")


def _judge_reference(judge: _Judge, event: Event, value: Global) -> None:
    verdict = judge.classify(value)
    evidence = {"global": value.qualname, "opcode": event.opcode, "reason": verdict.reason}
    if verdict.verdict is Verdict.DANGEROUS:
        judge.note(
            "pickle.dangerous-global",
            value.qualname,
            Severity.CRITICAL,
            f"Pickle imports {value.qualname}",
            f"{value.qualname} is dangerous ({verdict.reason}); no legitimate model file "
            "references it.",
            event.offset,
            evidence,
        )
    elif verdict.verdict is Verdict.UNKNOWN:
        judge.note(
            "pickle.unknown-global",
            value.qualname,
            Severity.MEDIUM,
            f"Pickle imports {value.qualname}, which is not on the allowlist",
            "Importing a module runs its top-level code; review it, then allow it in a policy "
            "file.",
            event.offset,
            evidence,
        )


def _argument(call: Call, index: int) -> Value | None:
    if isinstance(call.args, Seq) and index < len(call.args.items):
        return call.args.items[index]
    return None


def _scan_nested(
    ctx: ScanContext, judge: _Judge, event: Event, call: Call, index: int, base: int
) -> None:
    argument = _argument(call, index)
    payload = fold_bytes(argument, ctx.limits.max_pickle_bytes) if argument else None
    if payload is None:
        judge.note(
            "pickle.nested-unverified",
            call.func.qualname if isinstance(call.func, Global) else "?",
            Severity.HIGH,
            "Pickle passes data computed at load time to a loader",
            f"Loading runs `{render(call)}`; what it loads cannot be determined statically.",
            event.offset,
            {"call": render(call)},
        )
        return
    judge.flush()
    ctx.scan_child(BytesBlob(payload), f"<nested@{base + event.offset}>")


def fold_bytes(value: Value | None, limit: int, depth: int = 0) -> bytes | None:
    """The bytes a value evaluates to, when only decoding and decompression are involved."""
    if value is None or depth > MAX_FOLD_DEPTH:
        return None
    if isinstance(value, Const):
        return value.value if isinstance(value.value, bytes) else None
    if not (isinstance(value, Call) and isinstance(value.func, Global)):
        return None
    name = value.func.qualname
    args = value.args.items if isinstance(value.args, Seq) else []
    if not args:
        return None
    if name in _TEXT_ENCODERS:
        first = args[0]
        if isinstance(first, Const) and isinstance(first.value, str):
            try:
                return first.value.encode("latin-1")
            except UnicodeEncodeError:
                return first.value.encode("utf-8", "surrogatepass")
        return None
    inner = fold_bytes(args[0], limit, depth + 1)
    if inner is None:
        first = args[0]
        if isinstance(first, Const) and isinstance(first.value, str):
            inner = first.value.encode("latin-1", "replace")
        else:
            return None
    try:
        if name in _PASS_THROUGH:
            return inner
        if name in _BYTES_DECODERS:
            return _BYTES_DECODERS[name](inner)[:limit]
        if name in _DECOMPRESSORS:
            return _bounded_decompress(_DECOMPRESSORS[name](), inner, limit)
    except (ValueError, binascii.Error, zlib.error, lzma.LZMAError, OSError, EOFError):
        return None
    return None


def _bounded_decompress(decompressor: Any, data: bytes, limit: int) -> bytes:
    out = decompressor.decompress(data, limit)
    return bytes(out[:limit])


# -- recognising pickles ---------------------------------------------------------------------


_CODE_PICKLE_FIRST_BYTES = frozenset({b"\x80", b"(", b"c", b"i", b"]", b"}", b")", b"N"})
"""Opcodes a pickle that imports code plausibly starts with; anything else is not tried."""


def looks_like_pickle(head: bytes, *, require_code: bool = False) -> bool:
    """Whether `head` (the first bytes of a source) starts a pickle a loader would run.

    With `require_code`, only a pickle that imports or calls something within `head` counts:
    the test for bytes that are not supposed to be a pickle at all (tensor data).
    """
    if not head:
        return False
    if not require_code and len(head) >= 2 and head[0] == 0x80 and head[1] <= 5:
        return True
    if require_code and head[:1] not in _CODE_PICKLE_FIRST_BYTES:
        return False
    result = PickleMachine(head, 0, max_opcodes=100_000).run()
    first_import = next((e.value for e in result.events if e.kind == "import"), None)
    if isinstance(first_import, Global) and not _importable_name(first_import):
        # A real loader fails on this first import and runs nothing after it: text that
        # happens to start with "c" (TorchScript's code/*.py: "class ReLU(Module):") or "i".
        return False
    if require_code:
        return any(e.kind in ("import", "call") for e in result.events)
    if result.stopped:
        return result.opcodes >= 2 and result.end >= len(head.rstrip(b"\n\r\t "))
    return any(e.kind in ("import", "call") for e in result.events)


_IMPORTABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


def _importable_name(value: Global) -> bool:
    """Whether ``module`` and ``name`` are dotted identifiers Python's import could resolve."""
    return bool(_IMPORTABLE.match(value.module) and _IMPORTABLE.match(value.name))


class HiddenPickle(NamedTuple):
    """A pickle found inside data of another or no format."""

    offset: int
    end: int


def find_hidden_pickles(
    ctx: ScanContext, blob: Blob, *, start: int = 0, window_bytes: int = 1 << 20
) -> list[HiddenPickle]:
    """Search `blob` for embedded pickles that import or call something, and analyse them.

    Each candidate (a protocol 2+ header or a protocol 0 GLOBAL) is tried; those that run an
    import or call are analysed in full and reported as ``pickle.hidden``.
    """
    found: list[HiddenPickle] = []
    tried = 0
    covered_until = -1
    chunk_bytes = 16 << 20
    overlap = 512
    offset = start
    while offset < blob.size:
        chunk = blob.read_at(offset, chunk_bytes + overlap)
        for match in _PICKLE_START.finditer(chunk):
            candidate = offset + match.start()
            if candidate <= covered_until or match.start() >= chunk_bytes:
                continue
            tried += 1
            if tried > ctx.limits.max_embedded_candidates:
                raise LimitExceeded(
                    "max_embedded_candidates",
                    f"more than {ctx.limits.max_embedded_candidates} places looked like the "
                    "start of a hidden pickle",
                )
            ctx.check_time()
            hit = _try_hidden(ctx, blob, candidate, window_bytes)
            if hit is not None:
                found.append(hit)
                covered_until = hit.end
        offset += chunk_bytes
    return found


def _try_hidden(
    ctx: ScanContext, blob: Blob, candidate: int, window_bytes: int
) -> HiddenPickle | None:
    window = blob.read_at(candidate, window_bytes)
    probe = PickleMachine(window, 0, max_opcodes=1_000_000).run()
    if not any(e.kind in ("import", "call") for e in probe.events):
        return None
    if probe.error is not None and probe.end >= len(window) - 1 and len(window) == window_bytes:
        window = blob.read_at(candidate, ctx.limits.max_pickle_bytes)
    ctx.add(
        "pickle.hidden",
        Severity.HIGH,
        f"A pickle is hidden inside other data at offset {candidate}",
        "Data that is not itself a pickle contains one that imports or calls code; a loader "
        "pointed at this offset runs it. Its own findings follow.",
        offset=candidate,
        evidence={"offset": candidate},
    )
    analysis = analyse_pickle(
        ctx,
        window,
        base_offset=candidate,
        origin=f"hidden pickle at offset {candidate}",
        trailing=False,
    )
    return HiddenPickle(candidate, candidate + max(analysis.end, 1))


__all__ = [
    "NESTED_LOADERS",
    "HiddenPickle",
    "PickleAnalysis",
    "analyse_pickle",
    "find_hidden_pickles",
    "fold_bytes",
    "looks_like_pickle",
]
