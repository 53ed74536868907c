"""Tar archives: members scanned in place, tricks around tarfile's stopping points reported."""

from __future__ import annotations

import io
import pickle
import random
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.findings import Severity
from mlwarden.scan.blob import BytesBlob, RegionBlob
from mlwarden.scan.context import FileScan, ScanContext
from mlwarden.scan.formats.tar import TarHandler
from mlwarden.scan.limits import Limits
from mlwarden.scan.policy import Policy

from ._containers import (
    CountingBlob,
    by_rule,
    evil_pickle,
    flags_payload_at,
    inventory,
    mutate,
    rules,
    scan_bytes,
    scan_path,
    unparseable_by,
)


def build_tar(
    members: list[tuple[str, bytes]],
    links: list[tuple[str, str, bytes]] = (),
    fmt: int = tarfile.PAX_FORMAT,
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target, kind in links:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def end_of_members(data: bytes) -> int:
    """Offset where the end-of-archive zero blocks start."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        last = tar.getmembers()[-1]
    return last.offset_data + -(-last.size // 512) * 512


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "a payload was executed"


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_tar_member_is_scanned_by_content(marker, fmt):
    state = scan_bytes(
        build_tar([("notes.txt", b"hi"), ("weights.bin", evil_pickle(marker))], fmt=fmt)
    )
    assert inventory(state)[None] == "tar"
    assert inventory(state)["weights.bin"] == "pickle"
    assert flags_payload_at(state, "weights.bin")


def test_v7_tar_without_ustar_magic_is_recognised(marker):
    data = bytearray(build_tar([("a.pkl", evil_pickle(marker))], fmt=tarfile.USTAR_FORMAT))
    data[257:265] = bytes(8)
    data[148:156] = b"        "
    checksum = sum(data[:512])
    data[148:156] = b"%06o\x00 " % checksum
    state = scan_bytes(bytes(data))
    assert flags_payload_at(state, "a.pkl")


def test_legacy_pytorch_tar_is_recognised(marker):
    data = build_tar(
        [
            ("sys_info", pickle.dumps({"protocol_version": 1001, "little_endian": True})),
            ("pickle", evil_pickle(marker)),
            ("storages", pickle.dumps(0)),
            ("tensors", pickle.dumps(0)),
        ]
    )
    state = scan_bytes(data)
    assert inventory(state)[None] == "pytorch-legacy-tar"
    assert flags_payload_at(state, "pickle")


def test_members_are_regions_of_the_archive_and_not_read():
    big = bytes(16 << 20)
    blob = CountingBlob(build_tar([("storages", big), ("pickle", pickle.dumps(1))]))
    children: dict[str, object] = {}
    state = FileScan("sample", Policy(), Limits())
    ctx = ScanContext(
        state, blob, _scan_child=lambda parent, child, name, raw: children.setdefault(name, child)
    )
    TarHandler().scan(ctx)
    assert isinstance(children["storages"], RegionBlob)
    assert children["storages"].size == len(big)
    assert blob.bytes_read < 64 << 10


def test_path_traversal_names_are_reported():
    state = scan_bytes(build_tar([("../../etc/passwd", b"x"), ("/abs/path", b"y")]))
    names = {f.evidence["member"] for f in by_rule(state, "tar.path-traversal")}
    assert names == {"../../etc/passwd", "/abs/path"}


def test_links_are_reported_by_where_they_point():
    data = build_tar(
        [("model/weights.bin", b"w")],
        links=[
            ("model/inside", "weights.bin", tarfile.SYMTYPE),
            ("model/outside", "../../etc/shadow", tarfile.SYMTYPE),
            ("hard", "/etc/passwd", tarfile.LNKTYPE),
        ],
    )
    state = scan_bytes(data)
    severity = {f.evidence["member"]: f.severity for f in by_rule(state, "tar.link")}
    assert severity == {
        "model/inside": Severity.LOW,
        "model/outside": Severity.MEDIUM,
        "hard": Severity.MEDIUM,
    }


def test_member_after_the_end_marker_is_reported_and_scanned(marker):
    data = build_tar([("a.txt", b"hello")]) + build_tar([("late.pkl", evil_pickle(marker))])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getnames() == ["a.txt"]
    state = scan_bytes(data)
    hidden = by_rule(state, "tar.hidden-member")
    assert [f.evidence["member"] for f in hidden] == ["late.pkl"]
    assert flags_payload_at(state, "late.pkl")


def test_corrupt_header_is_reported_and_later_members_still_scanned(marker):
    data = bytearray(
        build_tar(
            [("a.txt", b"hello"), ("b.txt", b"world"), ("c.pkl", evil_pickle(marker))],
            fmt=tarfile.USTAR_FORMAT,
        )
    )
    second = 1024
    data[second + 148 : second + 156] = b"9999999\x00"
    state = scan_bytes(bytes(data))
    assert by_rule(state, "tar.corrupt")[0].severity is Severity.MEDIUM
    assert "a.txt" in inventory(state)
    assert flags_payload_at(state, "c.pkl")


def test_truncated_tar_scans_what_is_there(marker):
    payload = evil_pickle(marker) + bytes(5000)
    data = build_tar([("a.pkl", payload)])
    cut = data[: end_of_members(data) - 2048]
    state = scan_bytes(cut)
    assert rules(state) & {"tar.corrupt", "tar.truncated-member"}
    assert flags_payload_at(state, "a.pkl")


def test_data_appended_after_the_archive_is_scanned(marker):
    data = build_tar([("a.txt", b"hello")]) + evil_pickle(marker)
    state = scan_bytes(data)
    assert by_rule(state, "tar.trailing-data")[0].severity is Severity.MEDIUM
    assert flags_payload_at(state, "<trailing>")


def test_clean_tar_has_no_findings():
    state = scan_bytes(build_tar([("a.txt", b"hello"), ("b/c.json", b"{}")]))
    assert state.findings == []


def test_member_limit_is_a_finding():
    data = build_tar([(f"f{i}", b"") for i in range(10)])
    state = scan_bytes(data, Limits(max_members=3))
    assert by_rule(state, "scan.limit-exceeded")[0].evidence["limit"] == "max_members"


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar to write a sparse file")
def test_sparse_member_is_rebuilt_and_scanned(tmp_path, marker):
    sparse = tmp_path / "sparse.pkl"
    with sparse.open("wb") as f:
        f.write(evil_pickle(marker))
        f.seek(1 << 20)
        f.write(b"end")
    archive = tmp_path / "a.tar"
    subprocess.run(
        ["tar", "--sparse", "-cf", str(archive), "-C", str(tmp_path), "sparse.pkl"], check=True
    )
    state = scan_path(archive)
    assert flags_payload_at(state, "sparse.pkl")


def test_random_data_is_not_claimed_as_tar():
    data = random.Random(5).randbytes(20_000)
    assert not TarHandler().sniff(data[:4096], BytesBlob(data))
    text = b"ustar" * 1000
    assert not TarHandler().sniff(text[:4096], BytesBlob(text))


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 1 << 20), st.integers(0, 255)),
        min_size=1,
        max_size=8,
    )
)
def test_mutated_tars_give_findings_never_handler_errors(edits):
    seed = build_tar([("pickle", pickle.dumps([1, 2])), ("storages", b"s" * 700)])
    state = scan_bytes(mutate(seed, edits))
    assert not unparseable_by(state, {"tar"})


def _frombuf_accepts(block: bytes) -> bool:
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except (tarfile.HeaderError, ValueError):
        return False
    return True


def _real_headers() -> list[bytes]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, size in (("a.pkl", 3), ("dir/b.bin", 700), ("é" * 40, 0)):
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(bytes(size)))
    data = buffer.getvalue()
    return [data[i : i + 512] for i in range(0, len(data), 512) if data[i : i + 512].strip(b"\0")]


@settings(max_examples=400, deadline=None)
@given(
    base=st.sampled_from(_real_headers()),
    edits=st.lists(st.tuples(st.integers(0, 511), st.integers(0, 255)), max_size=3),
    noise=st.binary(min_size=512, max_size=512),
    use_noise=st.booleans(),
)
def test_sniff_agrees_with_tarfile_on_real_mutated_and_random_headers(
    base: bytes, edits: list[tuple[int, int]], noise: bytes, use_noise: bool
) -> None:
    """The fast checksum test rejects exactly the blocks `TarInfo.frombuf` rejects."""
    block = bytearray(noise if use_noise else base)
    for index, value in edits:
        block[index] = value
    head = bytes(block)
    assert TarHandler().sniff(head, BytesBlob(head)) == _frombuf_accepts(head)


@pytest.mark.parametrize("signed", [False, True])
def test_sniff_accepts_a_header_whose_checksum_counts_signed_bytes(signed: bool) -> None:
    """Old tar writers summed bytes as signed chars; tarfile accepts both sums, and so do we."""
    block = bytearray(_real_headers()[0])
    block[100:108] = b"\xff" * 8  # mode field: high bytes make the two sums differ
    rest = bytes(block[:148] + block[156:])
    total = 256 + sum(rest) - (256 * sum(b >= 128 for b in rest) if signed else 0)
    block[148:156] = b"%06o\0 " % total
    head = bytes(block)
    assert _frombuf_accepts(head)
    assert TarHandler().sniff(head, BytesBlob(head))
