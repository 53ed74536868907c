"""A tiny pickle opcode writer for building test payloads byte by byte.

The corpus needs pickles whose exact opcodes matter (INST versus OBJ, names assembled through the
memo, a call whose result is POPped, a stream that breaks after its payload), which
`pickle.dumps` cannot produce. This writer emits opcodes one by one and encodes plain values
(str, bytes, int, bool, None, tuple, list, dict) for the chosen protocol. Not for: serialising
real objects, or reading pickles.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Union

PickleValue = Union[
    str, bytes, int, bool, None, "Sequence[PickleValue]", "Mapping[str, PickleValue]"
]

_MAX_SHORT_LENGTH = 256
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


class PickleWriter:
    """Appends opcodes to a buffer; every method returns the writer so calls chain."""

    def __init__(self, protocol: int = 2, *, header: bool = True) -> None:
        if not 0 <= protocol <= 5:
            raise ValueError(f"pickle protocol must be 0..5, got {protocol}")
        self.protocol = protocol
        self._out = bytearray()
        if header and protocol >= 2:
            self._out += b"\x80" + bytes([protocol])

    def raw(self, data: bytes) -> PickleWriter:
        """Append bytes as they are (opcodes the helpers below do not cover, junk)."""
        self._out += data
        return self

    def getvalue(self) -> bytes:
        """The bytes written so far."""
        return bytes(self._out)

    # -- names ---------------------------------------------------------------------------------

    def global_(self, module: str, name: str) -> PickleWriter:
        """GLOBAL: push ``module.name`` (text opcode, every protocol)."""
        return self.raw(b"c" + _line(module) + _line(name))

    def stack_global(self, module: str, name: str) -> PickleWriter:
        """Push the two strings, then STACK_GLOBAL (protocol 4+)."""
        return self.string(module).string(name).raw(b"\x93")

    def inst(self, module: str, name: str) -> PickleWriter:
        """INST: call ``module.name`` with the items since the last MARK."""
        return self.raw(b"i" + _line(module) + _line(name))

    # -- stack and memo ------------------------------------------------------------------------

    def mark(self) -> PickleWriter:
        return self.raw(b"(")

    def tuple_(self, count: int) -> PickleWriter:
        """Build a tuple of the top `count` items (TUPLE1..3 where the protocol has them).

        For `count` above 3 (or protocol < 2) the caller must have pushed a MARK first.
        """
        if count == 0:
            return self.raw(b")")
        if self.protocol >= 2 and count <= 3:
            return self.raw(bytes([0x84 + count]))
        return self.raw(b"t")

    def reduce(self) -> PickleWriter:
        """REDUCE: call the callable below the argument tuple."""
        return self.raw(b"R")

    def build(self) -> PickleWriter:
        return self.raw(b"b")

    def obj(self) -> PickleWriter:
        """OBJ: call the class just after the MARK with the rest as arguments."""
        return self.raw(b"o")

    def pop(self) -> PickleWriter:
        return self.raw(b"0")

    def memoize(self) -> PickleWriter:
        """Store the top of stack in the next memo slot (MEMOIZE, protocol 4+; else BINPUT)."""
        if self.protocol >= 4:
            return self.raw(b"\x94")
        raise ValueError("MEMOIZE needs protocol 4; use put()")

    def put(self, index: int) -> PickleWriter:
        if self.protocol >= 1:
            return self.raw(b"q" + bytes([index]) if index < 256 else b"r" + _u32(index))
        return self.raw(b"p" + _line(str(index)))

    def get(self, index: int) -> PickleWriter:
        if self.protocol >= 1:
            return self.raw(b"h" + bytes([index]) if index < 256 else b"j" + _u32(index))
        return self.raw(b"g" + _line(str(index)))

    def ext1(self, code: int) -> PickleWriter:
        """EXT1: push the global registered under extension `code` (1..255)."""
        return self.raw(b"\x82" + bytes([code]))

    def stop(self) -> PickleWriter:
        return self.raw(b".")

    # -- values --------------------------------------------------------------------------------

    def string(self, text: str) -> PickleWriter:
        """A str in the shortest encoding the protocol allows."""
        data = text.encode("utf-8")
        if self.protocol >= 4 and len(data) < _MAX_SHORT_LENGTH:
            return self.raw(b"\x8c" + bytes([len(data)]) + data)
        if self.protocol >= 1:
            return self.raw(b"X" + _u32(len(data)) + data)
        if "\n" in text or "\\" in text:
            raise ValueError("protocol 0 strings here cannot hold newlines or backslashes")
        return self.raw(b"V" + text.encode("raw-unicode-escape") + b"\n")

    def bytes_(self, data: bytes) -> PickleWriter:
        """A bytes object (protocol 3+)."""
        if self.protocol < 3:
            raise ValueError("bytes need protocol 3 or above")
        if len(data) < _MAX_SHORT_LENGTH:
            return self.raw(b"C" + bytes([len(data)]) + data)
        return self.raw(b"B" + _u32(len(data)) + data)

    def int_(self, number: int) -> PickleWriter:
        if not _INT32_MIN <= number <= _INT32_MAX:
            raise ValueError("only 32-bit integers are supported")
        if self.protocol == 0:
            return self.raw(b"I" + _line(str(number)))
        if 0 <= number < 256:
            return self.raw(b"K" + bytes([number]))
        return self.raw(b"J" + struct.pack("<i", number))

    def bool_(self, flag: bool) -> PickleWriter:
        if self.protocol >= 2:
            return self.raw(b"\x88" if flag else b"\x89")
        return self.raw(b"I01\n" if flag else b"I00\n")

    def none(self) -> PickleWriter:
        return self.raw(b"N")

    def empty_dict(self) -> PickleWriter:
        return self.raw(b"}")

    def value(self, item: PickleValue) -> PickleWriter:
        """Push a plain value (containers are built recursively)."""
        if item is None:
            return self.none()
        if isinstance(item, bool):
            return self.bool_(item)
        if isinstance(item, int):
            return self.int_(item)
        if isinstance(item, str):
            return self.string(item)
        if isinstance(item, bytes):
            return self.bytes_(item)
        if isinstance(item, tuple):
            return self._tuple_value(item)
        if isinstance(item, Mapping):
            self.mark()
            for key, val in item.items():
                self.string(key).value(val)
            return self.raw(b"d")
        self.mark()
        for element in item:
            self.value(element)
        return self.raw(b"l")

    def args(self, *items: PickleValue) -> PickleWriter:
        """Push an argument tuple made of plain values."""
        return self._tuple_value(items)

    def call(self, *items: PickleValue) -> PickleWriter:
        """Push an argument tuple and REDUCE: calls whatever callable is on the stack."""
        return self.args(*items).reduce()

    def call_global(self, module: str, name: str, *items: PickleValue) -> PickleWriter:
        """GLOBAL ``module.name`` called with plain arguments."""
        return self.global_(module, name).call(*items)

    def _tuple_value(self, items: Sequence[PickleValue]) -> PickleWriter:
        short = self.protocol >= 2 and len(items) <= 3
        if not short and items:
            self.mark()
        for element in items:
            self.value(element)
        return self.tuple_(len(items))


def _line(text: str) -> bytes:
    if "\n" in text:
        raise ValueError(f"a text-opcode argument cannot contain a newline: {text!r}")
    return text.encode("utf-8") + b"\n"


def _u32(number: int) -> bytes:
    return struct.pack("<I", number)
