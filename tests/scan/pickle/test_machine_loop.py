"""The opcodes the machine's loop runs inline behave exactly as their handlers (differential)."""

from __future__ import annotations

import pickle
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlwarden.scan.pickle import machine
from mlwarden.scan.pickle.machine import PickleBreak, PickleMachine


class DispatchOnly(PickleMachine):
    """The reference: every opcode through its registered handler, none inline."""

    def _loop(self) -> None:
        data, size = self.data, len(self.data)
        while not self.stopped:
            if self.pos >= size:
                raise PickleBreak(self.pos, "pickle data was truncated (no STOP opcode)")
            self.op_offset = self.pos
            handler = machine._DISPATCH[data[self.pos]]
            self.pos += 1
            if handler is None:
                raise PickleBreak(self.op_offset, f"invalid opcode 0x{data[self.op_offset]:02x}")
            self.opcodes += 1  # these inputs stay far below every opcode limit
            handler(self)


def outcome(m: PickleMachine) -> tuple[Any, ...]:
    result = m.run()
    error = (result.error.offset, result.error.message) if result.error else None
    limit = (result.limit.limit, result.limit.offset) if result.limit else None
    events = [(e.kind, e.opcode, e.offset, repr(e.value), e.detail) for e in result.events]
    return (
        result.end,
        result.opcodes,
        result.protocol,
        result.stopped,
        error,
        limit,
        events,
        repr(m.stack),
        sorted((k, repr(v)) for k, v in m.memo.items()),
    )


SEEDS = [
    pickle.dumps({"w": [1, 2, 300, (4, "x")], "b": [[1], [1]]}, protocol=p) for p in range(6)
] + [b"\x80\x02(K\x05q\x00h\x00h\x07q\x01\x94\x94t.", b"K\x01q", b"h\x00.", b"\x94."]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    cut=st.integers(0, 200),
    edits=st.lists(st.tuples(st.integers(0, 199), st.sampled_from(b"qhK\x94(.0t\x85")), max_size=4),
    max_memo=st.sampled_from([1, 2, 5_000_000]),
)
def test_inline_opcodes_match_their_handlers(
    seed: bytes, cut: int, edits: list[tuple[int, int]], max_memo: int
) -> None:
    data = bytearray(seed[: max(1, len(seed) - cut % max(1, len(seed)))])
    for index, code in edits:
        data[index % len(data)] = code
    raw = bytes(data)
    fast = PickleMachine(raw, max_memo=max_memo)
    reference = DispatchOnly(raw, max_memo=max_memo)
    assert outcome(fast) == outcome(reference)
