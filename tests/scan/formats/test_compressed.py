"""Compressed streams are unwrapped under caps and their content scanned like any file."""

from __future__ import annotations

import bz2
import functools
import gzip
import lzma
import os
import pickle
import random
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.findings import Severity
from mlwarden.scan.blob import BytesBlob
from mlwarden.scan.context import FileScan, ScanContext
from mlwarden.scan.formats import handlers
from mlwarden.scan.formats._decompress import ZSTD
from mlwarden.scan.formats.compressed import CompressedStreamHandler, _StreamFormat
from mlwarden.scan.limits import Limits
from mlwarden.scan.policy import Policy

from ._containers import (
    by_rule,
    evil_pickle,
    flags_payload_at,
    inventory,
    mutate,
    rules,
    scan_bytes,
    unparseable_by,
)

INNER = "<decompressed>"


def lzma_alone(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_ALONE)


def zstd_compress(data: bytes) -> bytes:
    assert ZSTD is not None
    from mlwarden.scan.formats._decompress import zstd_module

    return bytes(zstd_module().compress(data))


COMPRESSORS = {
    "gzip": functools.partial(gzip.compress, mtime=0),  # the same bytes on every run
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "lzma": lzma_alone,
    "zlib": zlib.compress,
}
if ZSTD is not None:
    COMPRESSORS["zstd"] = zstd_compress


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "a payload was executed"


@pytest.mark.parametrize("name", sorted(COMPRESSORS))
def test_each_compressor_is_unwrapped_and_its_pickle_scanned(marker, name):
    state = scan_bytes(COMPRESSORS[name](evil_pickle(marker)))
    assert inventory(state) == {None: name, INNER: "pickle"}
    assert flags_payload_at(state, INNER)


@pytest.mark.parametrize("name", sorted(COMPRESSORS))
def test_benign_compressed_pickle_is_clean(name):
    state = scan_bytes(COMPRESSORS[name](pickle.dumps({"weights": [1.0, 2.0]}, protocol=4)))
    assert inventory(state) == {None: name, INNER: "pickle"}
    assert not rules(state, Severity.MEDIUM)


@pytest.mark.parametrize("compress", ["zlib", "gzip", "bz2", "lzma", "xz"])
def test_joblib_compressed_files_are_recognised(tmp_path, compress):
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    path = tmp_path / "model.joblib"
    joblib.dump({"coef": np.arange(10.0)}, path, compress=(compress, 3))
    state = scan_bytes(path.read_bytes())
    expected = {"bz2": "bzip2"}.get(compress, compress)
    assert inventory(state)[None] == expected
    assert inventory(state)[INNER] in {"pickle", "joblib"}
    assert not rules(state, Severity.HIGH)


def test_multi_member_gzip_is_read_as_one_stream(marker):
    payload = evil_pickle(marker)
    data = gzip.compress(payload[:10]) + gzip.compress(payload[10:])
    state = scan_bytes(data)
    assert flags_payload_at(state, INNER)
    assert not by_rule(state, "compressed.trailing-data")


def test_concatenated_bzip2_and_xz_streams_are_read_as_one(marker):
    payload = evil_pickle(marker)
    for compress in (bz2.compress, lzma.compress):
        state = scan_bytes(compress(payload[:10]) + compress(payload[10:]))
        assert flags_payload_at(state, INNER)


def test_truncated_stream_scans_what_decompressed(marker):
    data = gzip.compress(evil_pickle(marker) + os.urandom(8192))
    state = scan_bytes(data[: len(data) // 2])
    finding = by_rule(state, "compressed.truncated")[0]
    assert finding.severity is Severity.MEDIUM
    assert flags_payload_at(state, INNER)


def test_corrupt_stream_scans_what_decompressed(marker):
    data = zlib.compress(evil_pickle(marker) + os.urandom(100_000))
    state = scan_bytes(data[:-4] + b"\x00\x00\x00\x00")
    finding = by_rule(state, "compressed.corrupt")[0]
    assert finding.severity is Severity.MEDIUM
    assert "incorrect data check" in finding.evidence["error"]
    assert flags_payload_at(state, INNER)


@pytest.mark.skipif(ZSTD is None, reason="no zstd bindings installed")
def test_corrupt_zstd_stream_is_reported_with_the_decompressors_error(marker):
    data = zstd_compress(evil_pickle(marker) + b"weights " * 20_000)
    state = scan_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))
    finding = by_rule(state, "compressed.corrupt")[0]
    assert finding.evidence["error"].startswith("ZstdError: ")
    assert not marker.exists()


def test_data_after_the_stream_is_scanned_on_its_own(marker):
    data = gzip.compress(b"harmless text") + evil_pickle(marker)
    state = scan_bytes(data)
    assert by_rule(state, "compressed.trailing-data")[0].severity is Severity.MEDIUM
    assert inventory(state)["<trailing>"] == "pickle"
    assert flags_payload_at(state, "<trailing>")


def test_zero_padding_after_the_stream_is_not_trailing_data():
    state = scan_bytes(lzma.compress(b"hello") + bytes(4096))
    assert not state.findings


def gzip_bomb(uncompressed_mib: int) -> bytes:
    """gzip of zeros from one fully flushed deflate block repeated: instant to build."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + block * uncompressed_mib + b"\x03\x00" + bytes(8)


def test_gzip_bomb_is_stopped_with_bounded_memory():
    tracemalloc.start()
    try:
        state = scan_bytes(gzip_bomb(200), Limits(max_ratio=250, ratio_grace_bytes=1 << 20))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert by_rule(state, "compressed.bomb")[0].severity is Severity.HIGH
    assert state.decompressed_bytes < 8 << 20
    assert peak < 32 << 20


def test_bzip2_bomb_trips_the_default_ratio_limit():
    data = bz2.compress(bytes(100 << 20))
    state = scan_bytes(data)
    assert by_rule(state, "compressed.bomb")[0].severity is Severity.HIGH
    assert state.decompressed_bytes <= 80 << 20


def test_zero_filled_deflate_under_the_default_limits_is_not_a_bomb():
    state = scan_bytes(zlib.compress(bytes(8 << 20), 9))
    assert not by_rule(state, "compressed.bomb")


def test_total_decompression_cap_is_a_limit_finding():
    data = zlib.compress(os.urandom(300_000))
    state = scan_bytes(data, Limits(max_decompressed_bytes=100_000))
    finding = by_rule(state, "scan.limit-exceeded")[0]
    assert finding.evidence["limit"] == "max_decompressed_bytes"


def test_nesting_is_followed_to_the_innermost_stream(marker):
    data = evil_pickle(marker)
    for compress in (zlib.compress, bz2.compress, gzip.compress, lzma.compress):
        data = compress(data)
    state = scan_bytes(data)
    innermost = "!".join([INNER] * 4)
    assert inventory(state)[innermost] == "pickle"
    assert flags_payload_at(state, innermost)


def test_depth_limit_stops_endless_nesting():
    data = b"x"
    for _ in range(6):
        data = gzip.compress(data)
    state = scan_bytes(data, Limits(max_depth=3))
    assert by_rule(state, "scan.limit-exceeded")[0].evidence["limit"] == "max_depth"


def test_unsupported_compressor_is_reported_as_unverified():
    handler = CompressedStreamHandler(_StreamFormat("zstd", lambda head: True, None))
    state = FileScan("sample", Policy(), Limits())
    ctx = ScanContext(state, BytesBlob(b"\x28\xb5\x2f\xfd" + bytes(20)))
    handler.scan(ctx)
    finding = state.findings[0]
    assert finding.rule == "compressed.unsupported" and finding.severity is Severity.HIGH


@pytest.mark.parametrize(
    "data",
    [
        random.Random(1).randbytes(50_000),
        b"\x78\x9c" + random.Random(2).randbytes(50_000),
        b"x^2 + y^2 = z^2 is a plain text file\n" * 50,
        b"\x5d\x00\x00\x80\x00" + random.Random(3).randbytes(5_000),
        b"BZh9 not really bzip2" * 20,
        b"\x1f\x8b" + bytes(100),
    ],
)
def test_data_that_only_looks_compressed_is_not_claimed(data):
    claimed = [
        h.name
        for h in handlers()
        if isinstance(h, CompressedStreamHandler) and h.sniff(data[:4096], BytesBlob(data))
    ]
    assert claimed == []


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(sorted(COMPRESSORS)),
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 1 << 20), st.integers(0, 255)),
        min_size=1,
        max_size=8,
    ),
)
def test_mutated_streams_give_findings_never_handler_errors(name, edits):
    seed = COMPRESSORS[name](pickle.dumps({"k": list(range(100))}))
    state = scan_bytes(mutate(seed, edits))
    assert not unparseable_by(state, set(COMPRESSORS))
