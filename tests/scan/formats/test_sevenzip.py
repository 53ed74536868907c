"""7z archives (the nullifAI packaging) are opened in memory, within caps, and never on disk."""

from __future__ import annotations

import base64
import gzip
import io
import os
import pickle
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import py7zr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.findings import Severity
from mlwarden.scan.limits import Limits

from ._containers import (
    by_rule,
    evil_pickle,
    flags_payload_at,
    inventory,
    mutate,
    scan_bytes,
    scan_path,
    unparseable_by,
)


def build_7z(
    members: list[tuple[str, bytes]],
    *,
    plain_header: bool = False,
    password: str | None = None,
    header_encryption: bool = False,
) -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(
        buf, "w", password=password, header_encryption=header_encryption
    ) as archive:
        if plain_header:
            archive.set_encoded_header_mode(False)
        for name, data in members:
            archive.writestr(data, name)
    return buf.getvalue()


def rewrite_header(data: bytes, old: bytes, new: bytes) -> bytes:
    """Replace bytes in an unencoded 7z header and fix both header checksums."""
    next_offset, next_size, _ = struct.unpack_from("<QQI", data, 12)
    start = 32 + next_offset
    header = data[start : start + next_size]
    assert old in header
    header = header.replace(old, new)
    head = struct.pack("<QQI", next_offset, len(header), zlib.crc32(header))
    return data[:8] + struct.pack("<I", zlib.crc32(head)) + head + data[32:start] + header


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "a payload was executed"


def test_7z_member_is_scanned_by_content(marker):
    state = scan_bytes(build_7z([("readme.txt", b"hello"), ("model.bin", evil_pickle(marker))]))
    assert inventory(state)[None] == "7z"
    assert inventory(state)["model.bin"] == "pickle"
    assert flags_payload_at(state, "model.bin")


def test_gzip_in_tar_in_zip_in_7z_is_scanned_to_the_innermost_member(marker):
    gz = gzip.compress(evil_pickle(marker))
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w") as tar:
        info = tarfile.TarInfo("model.pkl.gz")
        info.size = len(gz)
        tar.addfile(info, io.BytesIO(gz))
    zip_buf = io.BytesIO()
    with zipfile.ZipFile(zip_buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bundle.tar", tar_buf.getvalue())
    state = scan_bytes(build_7z([("outer/bundle.zip", zip_buf.getvalue())]))
    innermost = "outer/bundle.zip!bundle.tar!model.pkl.gz!<decompressed>"
    assert inventory(state) == {
        None: "7z",
        "outer/bundle.zip": "zip",
        "outer/bundle.zip!bundle.tar": "tar",
        "outer/bundle.zip!bundle.tar!model.pkl.gz": "gzip",
        innermost: "pickle",
    }
    assert flags_payload_at(state, innermost)


def test_pytorch_checkpoint_packed_as_7z_is_scanned(tmp_path):
    torch = pytest.importorskip("torch")
    checkpoint = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(3)}, checkpoint)
    state = scan_bytes(build_7z([("model.pt", checkpoint.read_bytes())]))
    assert inventory(state)["model.pt"] == "pytorch-zip"
    assert inventory(state)["model.pt!model/data.pkl"] == "pickle"
    assert not [f for f in state.findings if f.severity >= Severity.HIGH]


@pytest.mark.parametrize("header_encryption", [False, True])
def test_encrypted_7z_is_reported_as_unverified(header_encryption):
    data = build_7z([("a.pkl", b"secret")], password="pw", header_encryption=header_encryption)
    state = scan_bytes(data)
    finding = by_rule(state, "7z.encrypted")[0]
    assert finding.severity is Severity.HIGH
    assert list(inventory(state)) == [None]


def test_traversal_name_is_reported_scanned_and_never_written(tmp_path, monkeypatch, marker):
    data = build_7z([("xx/evil.pkl", evil_pickle(marker))], plain_header=True)
    data = rewrite_header(
        data, "xx/evil.pkl".encode("utf-16-le"), "../evil.pkl".encode("utf-16-le")
    )
    workdir = tmp_path / "work" / "deep"
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    state = scan_bytes(data)
    assert by_rule(state, "7z.path-traversal")[0].evidence["member"] == "../evil.pkl"
    assert flags_payload_at(state, "../evil.pkl")
    assert list(workdir.iterdir()) == [] and not (tmp_path / "work" / "evil.pkl").exists()


def test_bad_crc_does_not_hide_a_member(marker):
    payload = evil_pickle(marker)
    data = build_7z([("a.pkl", payload)], plain_header=True)
    data = rewrite_header(data, struct.pack("<I", zlib.crc32(payload)), b"\xde\xad\xbe\xef")
    with pytest.raises(py7zr.exceptions.CrcError), py7zr.SevenZipFile(io.BytesIO(data)) as z:
        z.extractall(factory=py7zr.io.BytesIOFactory(1 << 20))
    state = scan_bytes(data)
    assert flags_payload_at(state, "a.pkl")


def test_duplicate_names_are_all_scanned(marker):
    state = scan_bytes(build_7z([("a.pkl", pickle.dumps(1)), ("a.pkl", evil_pickle(marker))]))
    assert flags_payload_at(state, "a.pkl")
    assert [s.member for s in state.scanned].count("a.pkl") == 2


def test_bomb_is_refused_from_declared_sizes_before_decompressing():
    data = build_7z([("zeros.bin", bytes(4 << 20))])
    state = scan_bytes(data, Limits(max_ratio=20, ratio_grace_bytes=64 << 10))
    finding = by_rule(state, "7z.bomb")[0]
    assert finding.severity is Severity.HIGH
    assert finding.evidence["declared_bytes"] == 4 << 20
    assert state.decompressed_bytes == 0


def test_members_over_the_total_cap_are_not_extracted():
    data = build_7z([("noise.bin", os.urandom(50_000))])
    state = scan_bytes(data, Limits(max_decompressed_bytes=10_000))
    assert by_rule(state, "scan.limit-exceeded")[0].evidence["limit"] == "max_decompressed_bytes"
    assert state.decompressed_bytes == 0


def test_corrupt_data_is_reported_and_nothing_escapes():
    data = bytearray(build_7z([("a.bin", os.urandom(3000)), ("b.pkl", pickle.dumps(1))]))
    for i in range(32, 64):
        data[i] ^= 0xFF
    state = scan_bytes(bytes(data))
    finding = by_rule(state, "7z.corrupt")[0]
    assert finding.severity is Severity.HIGH
    assert "b.pkl" in finding.evidence["members_not_verified"]


def test_garbage_after_the_magic_is_reported():
    state = scan_bytes(b"7z\xbc\xaf\x27\x1c" + os.urandom(200))
    assert by_rule(state, "7z.corrupt")[0].severity is Severity.HIGH


def test_symbolic_links_are_reported(tmp_path):
    (tmp_path / "elsewhere.txt").write_bytes(b"not in the archive")
    source = tmp_path / "a" / "src"
    source.mkdir(parents=True)
    (source / "weights.bin").write_bytes(b"w")
    (source / "inside").symlink_to("weights.bin")
    (source / "outside").symlink_to("../../elsewhere.txt")
    archive = tmp_path / "links.7z"
    with py7zr.SevenZipFile(archive, "w") as z:
        z.writeall(source, "m")
    state = scan_path(archive)
    severity = {f.evidence["member"]: f.severity for f in by_rule(state, "7z.link")}
    assert severity == {"m/inside": Severity.LOW, "m/outside": Severity.MEDIUM}


FUZZ_SEED_7Z = base64.b64decode(
    "N3q8ryccAAR7AJAfkQAAAAAAAAAUAAAAAAAAAGCLoyPgAUUAHF0AQAEOcaENLZmkRAo8eFPGO8EVei/M/jptk7+c"
    "gADgAHAAZV0AAIEzB64P0Es5PJ85EJxt+2pcRsiMI2VELuyTnHPfNitTvJKD2VSm1f28rOe4BD0bHcsFRo+5QP5r"
    "t4BCKM6Z1dwBzAbV6qPBkK4u4Qv51lwdELQsH2ne8p7g8kPMVy8+OAAAAAAAFwYkAQltAAcLAQABISEBGAxxAAA="
)
"""``build_7z([("a.pkl", pickle.dumps([1] * 30)), ("b.txt", b"hello" * 50)])``, written once: py7zr
stamps each member with the current time, so a fresh build differs from second to second and a
failing hypothesis example could not be replayed (it would pass on shrinking or on a rerun)."""


def test_the_7z_fuzz_seed_holds_its_two_members():
    with py7zr.SevenZipFile(io.BytesIO(FUZZ_SEED_7Z)) as archive:
        assert archive.getnames() == ["a.pkl", "b.txt"]
    state = scan_bytes(FUZZ_SEED_7Z)
    assert state.findings == [] and {s.member for s in state.scanned} >= {"a.pkl", "b.txt"}


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 1 << 20), st.integers(0, 255)),
        min_size=1,
        max_size=8,
    )
)
def test_mutated_7z_give_findings_never_handler_errors(edits):
    state = scan_bytes(mutate(FUZZ_SEED_7Z, edits))
    assert not unparseable_by(state, {"7z"})
