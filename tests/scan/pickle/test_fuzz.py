"""Arbitrary bytes never make the pickle analyser raise or hang (hypothesis)."""

from __future__ import annotations

import os
import pickle

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlwarden.scan.blob import BytesBlob
from mlwarden.scan.context import FileScan, ScanContext
from mlwarden.scan.pickle.analyser import analyse_pickle, looks_like_pickle
from mlwarden.scan.pickle.machine import PickleMachine
from mlwarden.scan.policy import Policy

SEEDS = [pickle.dumps({"a": [1, 2.5, "x", b"y", None, True]}, protocol=p) for p in range(6)] + [
    b"cos\nsystem\n(S'id'\ntR.",
    b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x8c\x02id\x85R.",
]

FUZZ_SETTINGS = settings(
    max_examples=300,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow],
)


def _analyse(data: bytes) -> FileScan:
    state = FileScan("fuzz", Policy(), Policy().limits)
    nested: list[str] = []
    ctx = ScanContext(state, BytesBlob(data), _scan_child=lambda c, b, n, raw: nested.append(n))
    analyse_pickle(ctx, data)
    return state


@FUZZ_SETTINGS
@given(st.binary(max_size=2048))
def test_machine_never_raises_on_arbitrary_bytes(data):
    result = PickleMachine(data).run()
    assert 0 <= result.end <= len(data)


@FUZZ_SETTINGS
@given(st.binary(max_size=2048))
def test_analyser_never_raises_on_arbitrary_bytes(data):
    _analyse(data)
    looks_like_pickle(data)


@FUZZ_SETTINGS
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=8),
    st.integers(0, 4096),
)
def test_analyser_never_raises_on_mutated_pickles(seed, flips, cut):
    data = bytearray(seed)
    for position, value in flips:
        data[position % len(data)] = value
    _analyse(bytes(data[: max(1, cut % (len(data) + 1))]))


def test_deeply_nested_marks_do_not_overflow():
    data = b"\x80\x02" + b"(" * 200_000 + b"t" * 200_000 + b"."
    state = _analyse(data)
    assert state is not None


def test_huge_declared_lengths_do_not_allocate():
    for opcode in (b"\x8e", b"\x8d", b"\x96"):
        data = b"\x80\x04" + opcode + (2**62).to_bytes(8, "little") + os.urandom(16)
        state = _analyse(data)
        assert any(f.rule == "pickle.malformed" for f in state.findings)
