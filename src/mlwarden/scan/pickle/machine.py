"""A symbolic pickle machine: runs the opcodes of one pickle over symbolic values.

It mirrors CPython's unpickler opcode by opcode (protocols 0-5) but never imports or calls
anything: GLOBAL and friends produce `Global` values, REDUCE and friends produce `Call` values, and
every import, call and state change a real loader would perform is recorded as an `Event`, in
order. When the stream breaks, the events before the break are kept, exactly as a loader would
have run them. joblib's raw array blocks, which sit between opcodes, are skipped the way joblib's
unpickler reads them. Not for: judging events (see `analyser`).
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from mlwarden.scan.pickle.values import (
    Call,
    Const,
    Global,
    Mapping,
    Opaque,
    Seq,
    Value,
    _MarkType,
)

TIME_CHECK_EVERY_OPCODES = 65_536
"""How often (in opcodes) the machine asks whether the per-file time is up."""

HIGHEST_PROTOCOL = 5

JOBLIB_ARRAY_WRAPPERS = frozenset(
    {
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
    }
)

_STACK_GLOBAL_DYNAMIC = "<computed>"


class PickleBreak(Exception):
    """The stream is malformed at `offset`; a loader would stop here."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


class OpcodeLimit(Exception):
    """The opcode or memo cap was reached."""

    def __init__(self, limit: str, offset: int) -> None:
        super().__init__(limit)
        self.limit = limit
        self.offset = offset


@dataclass(slots=True)
class Event:
    """Something a loader does while reading: import a global, call, set state, ..."""

    kind: str
    """``import``, ``call``, ``build``, ``method``, ``extension`` or ``persistent``."""
    opcode: str
    offset: int
    value: Value
    """The Global imported, the Call made, or the object acted upon."""
    detail: str = ""


@dataclass
class RunResult:
    """What one pickle did."""

    start: int
    end: int
    """Offset just after the last byte consumed (after STOP, or where it broke)."""
    protocol: int
    opcodes: int
    events: list[Event] = field(default_factory=list)
    error: PickleBreak | None = None
    limit: OpcodeLimit | None = None
    stopped: bool = False
    """True when a STOP opcode ended the pickle."""


_OPCODE_NAMES: dict[int, str] = {}


def _opcode(code: bytes, name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def register(fn: Callable[..., None]) -> Callable[..., None]:
        _OPCODE_NAMES[code[0]] = name
        fn.__opcode__ = code[0]  # type: ignore[attr-defined]
        return fn

    return register


class PickleMachine:
    """Runs one pickle starting at `start` in `data` (see module docstring)."""

    def __init__(
        self,
        data: bytes,
        start: int = 0,
        *,
        max_opcodes: int = 50_000_000,
        max_memo: int = 5_000_000,
        check_time: Callable[[], None] | None = None,
        events: list[Event] | None = None,
        extensions: dict[int, tuple[str, str]] | None = None,
    ) -> None:
        self.data = data
        self.pos = start
        self.start = start
        self.max_opcodes = max_opcodes
        self.max_memo = max_memo
        self.check_time = check_time
        self.events: list[Event] = events if events is not None else []
        self.extensions = extensions if extensions is not None else {}
        self.stack: list[Value | _MarkType] = []
        self.metastack: list[list[Value | _MarkType]] = []
        self.memo: dict[int, Value] = {}
        self.protocol = 0
        self.opcodes = 0
        self.op_offset = start
        self.stopped = False

    # -- running ---------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Run until STOP, a break, or a limit; never raises for malformed input."""
        result = RunResult(self.start, self.start, 0, 0, self.events)
        try:
            self._loop()
        except PickleBreak as exc:
            result.error = exc
        except OpcodeLimit as exc:
            result.limit = exc
        except RecursionError:
            result.error = PickleBreak(self.op_offset, "nesting too deep to analyse")
        result.end = self.pos
        result.protocol = self.protocol
        result.opcodes = self.opcodes
        result.stopped = self.stopped
        return result

    def _loop(self) -> None:
        # Runs once per opcode: the count lives in a local and is written back on every exit.
        # The four opcodes that make up most of real pickles (memo stores, small ints) are
        # handled right here, with exactly the checks of their handlers; the rest dispatch.
        data = self.data
        size = len(data)
        dispatch = _DISPATCH
        opcodes = self.opcodes
        memo = self.memo
        max_memo = self.max_memo
        try:
            while not self.stopped:
                pos = self.pos
                if pos >= size:
                    raise PickleBreak(pos, "pickle data was truncated (no STOP opcode)")
                self.op_offset = pos
                code = data[pos]
                handler = dispatch[code]
                if handler is None:
                    self.pos = pos + 1
                    raise PickleBreak(pos, f"invalid opcode 0x{code:02x}")
                opcodes += 1
                if opcodes % TIME_CHECK_EVERY_OPCODES == 0:
                    if opcodes > self.max_opcodes:
                        raise OpcodeLimit("max_opcodes", pos)
                    if self.check_time is not None:
                        self.check_time()
                stack = self.stack
                if code in _MEMO_STORES:
                    if code == _MEMOIZE:
                        index = len(memo)
                        self.pos = pos + 1
                    elif pos + 1 < size:
                        index = data[pos + 1]
                        self.pos = pos + 2
                    else:
                        self.pos = pos + 1
                        raise PickleBreak(pos, "pickle data was truncated")
                    if stack and not isinstance(stack[-1], _MarkType) and len(memo) < max_memo:
                        memo[index] = stack[-1]
                    else:
                        self._memo_put(index)  # the rare cases, with their precise errors
                    continue
                if code == _BININT1 and pos + 1 < size:
                    stack.append(Const(data[pos + 1]))
                    self.pos = pos + 2
                    continue
                if code == _BINGET and pos + 1 < size:
                    value = memo.get(data[pos + 1])
                    if value is not None:
                        stack.append(value)
                        self.pos = pos + 2
                        continue
                self.pos = pos + 1
                handler(self)
        finally:
            self.opcodes = opcodes

    # -- reading arguments -----------------------------------------------------------------

    def _take(self, n: int) -> bytes:
        if n < 0:
            raise PickleBreak(self.op_offset, "negative length")
        end = self.pos + n
        if end > len(self.data):
            raise PickleBreak(self.op_offset, "pickle data was truncated")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def _line(self) -> bytes:
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise PickleBreak(self.op_offset, "pickle data was truncated (line without newline)")
        line = self.data[self.pos : end]
        self.pos = end + 1
        return line

    def _u1(self) -> int:
        # The most frequent argument read (BINPUT, BININT1, SHORT_BINUNICODE): kept inline.
        pos = self.pos
        if pos >= len(self.data):
            raise PickleBreak(self.op_offset, "pickle data was truncated")
        self.pos = pos + 1
        return self.data[pos]

    def _u2(self) -> int:
        return int(struct.unpack("<H", self._take(2))[0])

    def _u4(self) -> int:
        return int(struct.unpack("<I", self._take(4))[0])

    def _i4(self) -> int:
        return int(struct.unpack("<i", self._take(4))[0])

    def _u8(self) -> int:
        return int(struct.unpack("<Q", self._take(8))[0])

    def _text_line(self) -> str:
        try:
            return self._line().decode("utf-8")
        except UnicodeDecodeError:
            raise PickleBreak(self.op_offset, "name is not valid UTF-8") from None

    # -- stack -----------------------------------------------------------------------------

    def _push(self, value: Value) -> None:
        self.stack.append(value)

    def _pop(self) -> Value:
        if not self.stack:
            raise PickleBreak(self.op_offset, "unpickling stack underflow")
        value = self.stack.pop()
        if isinstance(value, _MarkType):
            raise PickleBreak(self.op_offset, "unexpected MARK on the stack")
        return value

    def _top(self) -> Value:
        if not self.stack:
            raise PickleBreak(self.op_offset, "unpickling stack underflow")
        value = self.stack[-1]
        if isinstance(value, _MarkType):
            raise PickleBreak(self.op_offset, "unexpected MARK on the stack")
        return value

    def _pop_mark(self) -> list[Value]:
        if not self.metastack:
            raise PickleBreak(self.op_offset, "could not find MARK")
        items = self.stack
        self.stack = self.metastack.pop()
        return [v for v in items if not isinstance(v, _MarkType)]

    def _record(self, kind: str, value: Value, detail: str = "") -> None:
        self.events.append(
            Event(kind, _OPCODE_NAMES[self.data[self.op_offset]], self.op_offset, value, detail)
        )

    def _global(self, module: str, name: str) -> Global:
        value = Global(module, name, self.op_offset)
        self._record("import", value)
        return value

    def _call(self, func: Value, args: Value, opcode: str, kwargs: Value | None = None) -> Call:
        call = Call(func, args, opcode, self.op_offset, kwargs)
        self._record("call", call)
        self._note_extension(call)
        return call

    def _note_extension(self, call: Call) -> None:
        """``copyreg.add_extension(module, name, code)`` makes later EXT opcodes resolvable."""
        if not (isinstance(call.func, Global) and call.func.qualname == "copyreg.add_extension"):
            return
        args = call.args.items if isinstance(call.args, Seq) else []
        consts = [a.value for a in args if isinstance(a, Const)]
        if len(args) == 3 and len(consts) == 3:
            module, name, code = consts
            if isinstance(module, str) and isinstance(name, str) and isinstance(code, int):
                self.extensions[code] = (module, name)

    def _memo_put(self, index: int) -> None:
        if index < 0:
            raise PickleBreak(self.op_offset, "negative PUT argument")
        memo = self.memo
        if len(memo) >= self.max_memo and index not in memo:
            raise OpcodeLimit("max_memo", self.op_offset)
        if self.stack:
            value = self.stack[-1]
            if not isinstance(value, _MarkType):
                memo[index] = value
                return
        memo[index] = self._top()  # raises the precise error

    def _memo_get(self, index: int) -> None:
        try:
            self._push(self.memo[index])
        except KeyError:
            raise PickleBreak(self.op_offset, f"memo value not found at index {index}") from None

    def _method(self, target: Value, method: str, items: list[Value]) -> None:
        """APPEND/SETITEM/ADDITEMS on a non-container call the object's own method."""
        detail = f".{method}({len(items)} item{'s' if len(items) != 1 else ''})"
        self._record("method", target, detail)

    # -- opcodes ---------------------------------------------------------------------------

    @_opcode(b"(", "MARK")
    def op_mark(self) -> None:
        self.metastack.append(self.stack)
        self.stack = []

    @_opcode(b".", "STOP")
    def op_stop(self) -> None:
        self._pop()
        self.stopped = True

    @_opcode(b"0", "POP")
    def op_pop(self) -> None:
        if self.stack:
            self.stack.pop()
        else:
            self._pop_mark()

    @_opcode(b"1", "POP_MARK")
    def op_pop_mark(self) -> None:
        self._pop_mark()

    @_opcode(b"2", "DUP")
    def op_dup(self) -> None:
        self._push(self._top())

    @_opcode(b"F", "FLOAT")
    def op_float(self) -> None:
        try:
            self._push(Const(float(self._line())))
        except ValueError:
            raise PickleBreak(self.op_offset, "invalid FLOAT literal") from None

    @_opcode(b"I", "INT")
    def op_int(self) -> None:
        line = self._line()
        if line == b"00":
            self._push(Const(False))
        elif line == b"01":
            self._push(Const(True))
        else:
            self._push(Const(self._parse_int(line)))

    @_opcode(b"L", "LONG")
    def op_long(self) -> None:
        line = self._line()
        self._push(Const(self._parse_int(line[:-1] if line.endswith(b"L") else line)))

    def _parse_int(self, text: bytes) -> int:
        try:
            return int(text, 0) if text.strip().lower().startswith((b"0x", b"-0x")) else int(text)
        except ValueError:
            raise PickleBreak(self.op_offset, "invalid integer literal") from None

    @_opcode(b"J", "BININT")
    def op_binint(self) -> None:
        self._push(Const(self._i4()))

    @_opcode(b"K", "BININT1")
    def op_binint1(self) -> None:
        self._push(Const(self._u1()))  # usually run inline by `_loop`

    @_opcode(b"M", "BININT2")
    def op_binint2(self) -> None:
        self._push(Const(self._u2()))

    @_opcode(b"\x8a", "LONG1")
    def op_long1(self) -> None:
        self._push(Const(int.from_bytes(self._take(self._u1()), "little", signed=True)))

    @_opcode(b"\x8b", "LONG4")
    def op_long4(self) -> None:
        n = self._i4()
        if n < 0:
            raise PickleBreak(self.op_offset, "LONG pickle has negative byte count")
        raw = self._take(n)
        self._push(
            Const(int.from_bytes(raw, "little", signed=True))
            if n <= 4096
            else Opaque(f"{n}-byte integer")
        )

    @_opcode(b"N", "NONE")
    def op_none(self) -> None:
        self._push(Const(None))

    @_opcode(b"\x88", "NEWTRUE")
    def op_newtrue(self) -> None:
        self._push(Const(True))

    @_opcode(b"\x89", "NEWFALSE")
    def op_newfalse(self) -> None:
        self._push(Const(False))

    @_opcode(b"G", "BINFLOAT")
    def op_binfloat(self) -> None:
        self._push(Const(struct.unpack(">d", self._take(8))[0]))

    @_opcode(b"S", "STRING")
    def op_string(self) -> None:
        line = self._line()
        if len(line) >= 2 and line[0] == line[-1] and line[:1] in (b"'", b'"'):
            body = line[1:-1]
        else:
            raise PickleBreak(self.op_offset, "the STRING opcode argument must be quoted")
        try:
            decoded = codecs.escape_decode(body)[0]
        except (ValueError, UnicodeDecodeError):
            raise PickleBreak(self.op_offset, "invalid escape in STRING") from None
        self._push(Const(decoded.decode("latin-1")))

    @_opcode(b"T", "BINSTRING")
    def op_binstring(self) -> None:
        n = self._i4()
        if n < 0:
            raise PickleBreak(self.op_offset, "BINSTRING pickle has negative byte count")
        self._push(Const(self._take(n).decode("latin-1")))

    @_opcode(b"U", "SHORT_BINSTRING")
    def op_short_binstring(self) -> None:
        self._push(Const(self._take(self._u1()).decode("latin-1")))

    @_opcode(b"V", "UNICODE")
    def op_unicode(self) -> None:
        try:
            self._push(Const(self._line().decode("raw-unicode-escape")))
        except UnicodeDecodeError:
            raise PickleBreak(self.op_offset, "invalid UNICODE literal") from None

    def _utf8(self, n: int) -> None:
        end = self.pos + n  # `_take` inline: names and keys are most of a pickle's strings
        if end > len(self.data):
            raise PickleBreak(self.op_offset, "pickle data was truncated")
        try:
            text = self.data[self.pos : end].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise PickleBreak(self.op_offset, "string is not valid UTF-8") from None
        self.pos = end
        self.stack.append(Const(text))

    @_opcode(b"X", "BINUNICODE")
    def op_binunicode(self) -> None:
        self._utf8(self._u4())

    @_opcode(b"\x8c", "SHORT_BINUNICODE")
    def op_short_binunicode(self) -> None:
        self._utf8(self._u1())

    @_opcode(b"\x8d", "BINUNICODE8")
    def op_binunicode8(self) -> None:
        self._utf8(self._u8())

    @_opcode(b"B", "BINBYTES")
    def op_binbytes(self) -> None:
        self._push(Const(self._take(self._u4())))

    @_opcode(b"C", "SHORT_BINBYTES")
    def op_short_binbytes(self) -> None:
        self._push(Const(self._take(self._u1())))

    @_opcode(b"\x8e", "BINBYTES8")
    def op_binbytes8(self) -> None:
        self._push(Const(self._take(self._u8())))

    @_opcode(b"\x96", "BYTEARRAY8")
    def op_bytearray8(self) -> None:
        self._push(Const(self._take(self._u8())))

    @_opcode(b"\x97", "NEXT_BUFFER")
    def op_next_buffer(self) -> None:
        self._push(Opaque("out-of-band buffer"))

    @_opcode(b"\x98", "READONLY_BUFFER")
    def op_readonly_buffer(self) -> None:
        self._top()

    @_opcode(b")", "EMPTY_TUPLE")
    def op_empty_tuple(self) -> None:
        self._push(Seq("tuple", []))

    @_opcode(b"t", "TUPLE")
    def op_tuple(self) -> None:
        self._push(Seq("tuple", self._pop_mark()))

    @_opcode(b"\x85", "TUPLE1")
    def op_tuple1(self) -> None:
        self._push(Seq("tuple", [self._pop()]))

    @_opcode(b"\x86", "TUPLE2")
    def op_tuple2(self) -> None:
        second = self._pop()
        self.stack.append(Seq("tuple", [self._pop(), second]))

    @_opcode(b"\x87", "TUPLE3")
    def op_tuple3(self) -> None:
        third = self._pop()
        second = self._pop()
        self.stack.append(Seq("tuple", [self._pop(), second, third]))

    @_opcode(b"]", "EMPTY_LIST")
    def op_empty_list(self) -> None:
        self._push(Seq("list", []))

    @_opcode(b"l", "LIST")
    def op_list(self) -> None:
        self._push(Seq("list", self._pop_mark()))

    @_opcode(b"}", "EMPTY_DICT")
    def op_empty_dict(self) -> None:
        self._push(Mapping([]))

    @_opcode(b"d", "DICT")
    def op_dict(self) -> None:
        items = self._pop_mark()
        if len(items) % 2:
            raise PickleBreak(self.op_offset, "odd number of items for DICT")
        self._push(Mapping(list(zip(items[::2], items[1::2], strict=True))))

    @_opcode(b"\x8f", "EMPTY_SET")
    def op_empty_set(self) -> None:
        self._push(Seq("set", []))

    @_opcode(b"\x91", "FROZENSET")
    def op_frozenset(self) -> None:
        self._push(Seq("frozenset", self._pop_mark()))

    @_opcode(b"a", "APPEND")
    def op_append(self) -> None:
        value = self._pop()
        self._extend(self._top(), [value], "append")

    @_opcode(b"e", "APPENDS")
    def op_appends(self) -> None:
        items = self._pop_mark()
        self._extend(self._top(), items, "extend")

    def _extend(self, target: Value, items: list[Value], method: str) -> None:
        if isinstance(target, Seq) and target.kind == "list":
            target.items.extend(items)
        else:
            self._method(target, method, items)

    @_opcode(b"\x90", "ADDITEMS")
    def op_additems(self) -> None:
        items = self._pop_mark()
        target = self._top()
        if isinstance(target, Seq) and target.kind == "set":
            target.items.extend(items)
        else:
            self._method(target, "add", items)

    @_opcode(b"s", "SETITEM")
    def op_setitem(self) -> None:
        value = self._pop()
        key = self._pop()
        self._set_items(self._top(), [key, value])

    @_opcode(b"u", "SETITEMS")
    def op_setitems(self) -> None:
        items = self._pop_mark()
        if len(items) % 2:
            raise PickleBreak(self.op_offset, "odd number of items for SETITEMS")
        self._set_items(self._top(), items)

    def _set_items(self, target: Value, items: list[Value]) -> None:
        if isinstance(target, Mapping):
            target.items.extend(zip(items[::2], items[1::2], strict=True))
        else:
            self._method(target, "__setitem__", items)

    @_opcode(b"p", "PUT")
    def op_put(self) -> None:
        self._memo_put(self._parse_int(self._line()))

    @_opcode(b"q", "BINPUT")
    def op_binput(self) -> None:
        self._memo_put(self._u1())  # usually run inline by `_loop`

    @_opcode(b"r", "LONG_BINPUT")
    def op_long_binput(self) -> None:
        self._memo_put(self._u4())

    @_opcode(b"\x94", "MEMOIZE")
    def op_memoize(self) -> None:
        self._memo_put(len(self.memo))  # usually run inline by `_loop`

    @_opcode(b"g", "GET")
    def op_get(self) -> None:
        self._memo_get(self._parse_int(self._line()))

    @_opcode(b"h", "BINGET")
    def op_binget(self) -> None:
        self._memo_get(self._u1())  # usually run inline by `_loop`

    @_opcode(b"j", "LONG_BINGET")
    def op_long_binget(self) -> None:
        self._memo_get(self._u4())

    @_opcode(b"\x80", "PROTO")
    def op_proto(self) -> None:
        proto = self._u1()
        if proto > HIGHEST_PROTOCOL:
            raise PickleBreak(self.op_offset, f"unsupported pickle protocol: {proto}")
        self.protocol = proto

    @_opcode(b"\x95", "FRAME")
    def op_frame(self) -> None:
        self._u8()

    @_opcode(b"c", "GLOBAL")
    def op_global(self) -> None:
        module = self._text_line()
        name = self._text_line()
        self._push(self._global(module, name))

    @_opcode(b"\x93", "STACK_GLOBAL")
    def op_stack_global(self) -> None:
        name = self._pop()
        module = self._pop()
        names = []
        for part in (module, name):
            if isinstance(part, Const):
                if not isinstance(part.value, str):
                    raise PickleBreak(self.op_offset, "STACK_GLOBAL requires str")
                names.append(part.value)
            else:
                names.append(_STACK_GLOBAL_DYNAMIC)
        self._push(self._global(names[0], names[1]))

    @_opcode(b"i", "INST")
    def op_inst(self) -> None:
        module = self._text_line()
        name = self._text_line()
        args = self._pop_mark()
        cls = self._global(module, name)
        self._push(self._call(cls, Seq("tuple", args), "INST"))

    @_opcode(b"o", "OBJ")
    def op_obj(self) -> None:
        items = self._pop_mark()
        if not items:
            raise PickleBreak(self.op_offset, "OBJ without a class")
        self._push(self._call(items[0], Seq("tuple", items[1:]), "OBJ"))

    @_opcode(b"R", "REDUCE")
    def op_reduce(self) -> None:
        args = self._pop()
        func = self._pop()
        self._push(self._call(func, args, "REDUCE"))

    @_opcode(b"\x81", "NEWOBJ")
    def op_newobj(self) -> None:
        args = self._pop()
        cls = self._pop()
        self._push(self._call(cls, args, "NEWOBJ"))

    @_opcode(b"\x92", "NEWOBJ_EX")
    def op_newobj_ex(self) -> None:
        kwargs = self._pop()
        args = self._pop()
        cls = self._pop()
        self._push(self._call(cls, args, "NEWOBJ_EX", kwargs))

    @_opcode(b"b", "BUILD")
    def op_build(self) -> None:
        state = self._pop()
        target = self._top()
        if isinstance(target, Call):
            target.state.append(state)
        self._record("build", target)
        if (
            isinstance(target, Call)
            and isinstance(target.func, Global)
            and target.func.qualname in JOBLIB_ARRAY_WRAPPERS
        ):
            self.stack[-1] = self._joblib_array(state)

    @_opcode(b"P", "PERSID")
    def op_persid(self) -> None:
        try:
            pid = self._line().decode("ascii")
        except UnicodeDecodeError:
            raise PickleBreak(
                self.op_offset, "persistent IDs in protocol 0 must be ASCII"
            ) from None
        value = Opaque(f"persistent_load({pid!r})", (Const(pid),))
        self._record("persistent", value)
        self._push(value)

    @_opcode(b"Q", "BINPERSID")
    def op_binpersid(self) -> None:
        pid = self._pop()
        value = Opaque("persistent_load(...)", (pid,))
        self._record("persistent", value)
        self._push(value)

    def _extension(self, code: int) -> None:
        if code <= 0:
            raise PickleBreak(self.op_offset, "EXT specifies code <= 0")
        registered = self.extensions.get(code)
        if registered is not None:
            self._push(self._global(*registered))
            return
        value = Opaque(f"extension code {code}")
        self._record("extension", value, str(code))
        self._push(value)

    @_opcode(b"\x82", "EXT1")
    def op_ext1(self) -> None:
        self._extension(self._u1())

    @_opcode(b"\x83", "EXT2")
    def op_ext2(self) -> None:
        self._extension(self._u2())

    @_opcode(b"\x84", "EXT4")
    def op_ext4(self) -> None:
        self._extension(self._i4())

    # -- joblib ----------------------------------------------------------------------------

    def _joblib_array(self, state: Value) -> Value:
        """Skip (or, for object arrays, analyse) the array block joblib wrote after BUILD."""
        if not isinstance(state, Mapping):
            raise PickleBreak(self.op_offset, "joblib array wrapper without a state dict")
        shape = state.get("shape")
        dims = shape.items if isinstance(shape, Seq) else None
        sizes = [d.value for d in dims or () if isinstance(d, Const) and isinstance(d.value, int)]
        if dims is None or len(sizes) != len(dims):
            raise PickleBreak(self.op_offset, "joblib array wrapper with an unreadable shape")
        count = 1
        for size in sizes:
            count *= max(0, int(size))
        dtype = _DtypeInfo.of(state.get("dtype"))
        if dtype is None:
            raise PickleBreak(self.op_offset, "joblib array wrapper with an unreadable dtype")
        if dtype.has_object:
            inner = PickleMachine(
                self.data,
                self.pos,
                max_opcodes=self.max_opcodes,
                max_memo=self.max_memo,
                check_time=self.check_time,
                events=self.events,
                extensions=self.extensions,
            )
            result = inner.run()
            self.opcodes += result.opcodes
            self.pos = result.end
            if result.error is not None:
                raise result.error
            if result.limit is not None:
                raise result.limit
            return Opaque("numpy object array (nested pickle)")
        if state.get("numpy_array_alignment_bytes") is not None:
            padding = self._u1()
            self._take(padding)
        nbytes = count * dtype.itemsize
        if self.pos + nbytes > len(self.data):
            raise PickleBreak(self.op_offset, "joblib array data is truncated")
        self.pos += nbytes
        return Opaque(f"numpy array of {count} x {dtype.itemsize} bytes")


class _DtypeInfo(NamedTuple):
    itemsize: int
    has_object: bool

    @classmethod
    def of(cls, value: Value | None) -> _DtypeInfo | None:
        """Item size and object-ness of a pickled ``numpy.dtype(...)`` value."""
        if not (isinstance(value, Call) and isinstance(value.args, Seq) and value.args.items):
            return None
        code = value.args.items[0]
        if not (isinstance(code, Const) and isinstance(code.value, str) and code.value):
            return None
        text = code.value
        state = value.state[-1] if value.state else None
        elsize, flags = -1, 0
        if isinstance(state, Seq) and len(state.items) >= 8:
            size_v, flags_v = state.items[5], state.items[7]
            if isinstance(size_v, Const) and isinstance(size_v.value, int):
                elsize = size_v.value
            if isinstance(flags_v, Const) and isinstance(flags_v.value, int):
                flags = flags_v.value
        has_object = text[0] == "O" or bool(flags & 1)
        if elsize > 0:
            return cls(elsize, has_object)
        digits = "".join(ch for ch in text[1:] if ch.isdigit())
        if not digits:
            return None
        return cls(int(digits), has_object)


def _build_dispatch() -> list[Callable[[PickleMachine], None] | None]:
    table: list[Callable[[PickleMachine], None] | None] = [None] * 256
    for attr in vars(PickleMachine).values():
        code = getattr(attr, "__opcode__", None)
        if code is not None:
            table[code] = attr
    return table


_DISPATCH = _build_dispatch()
_MEMOIZE, _BININT1, _BINGET = b"\x94"[0], b"K"[0], b"h"[0]
_MEMO_STORES = frozenset(b"q\x94")
"""BINPUT and MEMOIZE: with BININT1 and BINGET, the opcodes `PickleMachine._loop` runs inline."""
OPCODE_NAMES = dict(_OPCODE_NAMES)
"""Opcode byte -> name, for every opcode the machine knows (all of protocols 0-5)."""
