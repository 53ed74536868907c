"""Zip archives are read as leniently as PyTorch reads them: no header trick hides a member."""

from __future__ import annotations

import io
import os
import pickle
import random
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwarden.findings import Severity
from mlwarden.scan.blob import BytesBlob, RegionBlob
from mlwarden.scan.context import FileScan, ScanContext
from mlwarden.scan.engine import scan_file
from mlwarden.scan.formats.zip import ZipHandler
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

# Offsets of fields inside the zip records (APPNOTE 4.3.7, 4.3.12, 4.3.16).
LOCAL_FLAGS, LOCAL_METHOD, LOCAL_CRC, LOCAL_NAME = 6, 8, 14, 30
CENTRAL_FLAGS, CENTRAL_METHOD, CENTRAL_CRC, CENTRAL_NAME = 8, 10, 16, 46
CENTRAL_LOCAL_OFFSET = 42


ZIP_DATE = (2024, 1, 1, 0, 0, 0)
"""Every entry's date: `writestr` with a name would stamp the current time, and the mutation
fuzz test needs the same seed bytes on every run to replay what it finds."""


def build_zip(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = compression
            # what writestr(name, ...) sets, bar the date
            info.external_attr = (0o40775 << 16) | 0x10 if name.endswith("/") else 0o600 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def end_record(data: bytes) -> int:
    return data.rfind(b"PK\x05\x06")


def central_records(data: bytes) -> list[int]:
    """Offsets of the central directory records, in order."""
    eocd = end_record(data)
    (count,) = struct.unpack_from("<H", data, eocd + 10)
    (pos,) = struct.unpack_from("<I", data, eocd + 16)
    records = []
    for _ in range(count):
        records.append(pos)
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        pos += 46 + name_len + extra_len + comment_len
    return records


def local_offset(data: bytes, index: int) -> int:
    return struct.unpack_from("<I", data, central_records(data)[index] + CENTRAL_LOCAL_OFFSET)[0]


def patch(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def deflate_bomb(uncompressed_mib: int) -> bytes:
    """Raw deflate of `uncompressed_mib` MiB of zeros, built from one fully flushed 1 MiB block
    repeated (each copy stands alone after a full flush), so it costs nothing to generate."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return block * uncompressed_mib + b"\x03\x00"


def zip_with_raw_member(name: bytes, method: int, raw: bytes, uncompressed: int) -> bytes:
    """A one-member zip whose member data is `raw` as given (sizes and method as stated)."""
    local = (
        struct.pack(
            "<4sHHHHHIIIHH",
            b"PK\x03\x04",
            20,
            0,
            method,
            0,
            0,
            0,
            len(raw),
            uncompressed,
            len(name),
            0,
        )
        + name
        + raw
    )
    central = (
        struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            20,
            20,
            0,
            method,
            0,
            0,
            0,
            len(raw),
            uncompressed,
            len(name),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        + name
    )
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local), 0)
    return local + central + end


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "a payload was executed"


def test_plain_zip_member_is_scanned_by_content(marker):
    state = scan_bytes(build_zip([("weights.png", evil_pickle(marker))]))
    assert inventory(state) == {None: "zip", "weights.png": "pickle"}
    assert flags_payload_at(state, "weights.png")


def test_zip_with_bad_crc_is_still_scanned(marker):
    data = build_zip([("archive/data.pkl", evil_pickle(marker))])
    data = patch(data, LOCAL_CRC, b"\xde\xad\xbe\xef")
    data = patch(data, central_records(data)[0] + CENTRAL_CRC, b"\xde\xad\xbe\xef")
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(data)).read("archive/data.pkl")
    state = scan_bytes(data)
    assert inventory(state)["archive/data.pkl"] == "pickle"
    assert flags_payload_at(state, "archive/data.pkl")


def test_zip_with_odd_flag_bits_is_still_scanned(marker):
    data = build_zip([("archive/data.pkl", evil_pickle(marker))])
    odd_flags = struct.pack("<H", 0x0001 | 0x0004 | 0x0020)
    data = patch(data, LOCAL_FLAGS, odd_flags)
    data = patch(data, central_records(data)[0] + CENTRAL_FLAGS, odd_flags)
    state = scan_bytes(data)
    assert inventory(state)["archive/data.pkl"] == "pickle"
    assert flags_payload_at(state, "archive/data.pkl")
    assert by_rule(state, "zip.encrypted")[0].severity is Severity.HIGH


def test_local_and_central_name_mismatch_is_reported_and_scanned(marker):
    data = build_zip([("archive/data.pkl", evil_pickle(marker))])
    data = patch(data, LOCAL_NAME, b"archive/xxxx.pkl")
    state = scan_bytes(data)
    assert inventory(state)["archive/data.pkl"] == "pickle"
    assert flags_payload_at(state, "archive/data.pkl")
    mismatch = by_rule(state, "zip.name-mismatch")
    assert mismatch and mismatch[0].severity is Severity.MEDIUM
    assert mismatch[0].evidence["local_name"] == "archive/xxxx.pkl"


def test_corrupt_central_directory_falls_back_to_local_headers(marker):
    data = build_zip([("a.txt", b"hello"), ("archive/data.pkl", evil_pickle(marker))])
    for record in central_records(data):
        data = patch(data, record, b"XXXX")
    state = scan_bytes(data)
    assert "zip.corrupt-directory" in rules(state, Severity.HIGH)
    assert inventory(state)["archive/data.pkl"] == "pickle"
    assert flags_payload_at(state, "archive/data.pkl")


def test_zip_without_any_central_directory_is_recovered(marker):
    data = build_zip([("archive/data.pkl", evil_pickle(marker))])
    data = data[: central_records(data)[0]]
    state = scan_bytes(data)
    assert state.scanned[0].format == "pytorch-zip"
    assert "zip.corrupt-directory" in rules(state)
    assert flags_payload_at(state, "archive/data.pkl")


def test_local_entry_missing_from_the_directory_is_scanned_as_hidden(marker):
    data = build_zip(
        [("a.txt", b"hello"), ("hidden.pkl", evil_pickle(marker)), ("b.txt", b"world")]
    )
    records = central_records(data)
    eocd = end_record(data)
    hidden_start, hidden_end = records[1], records[2]
    removed = hidden_end - hidden_start
    data = data[:hidden_start] + data[hidden_end:]
    eocd -= removed
    (cd_size,) = struct.unpack_from("<I", data, eocd + 12)
    data = patch(data, eocd + 8, struct.pack("<HHI", 2, 2, cd_size - removed))
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["a.txt", "b.txt"]
    state = scan_bytes(data)
    hidden = by_rule(state, "zip.hidden-entry")
    assert hidden and hidden[0].severity is Severity.HIGH
    assert hidden[0].evidence["member"] == "hidden.pkl"
    assert flags_payload_at(state, "hidden.pkl")
    assert {"a.txt", "b.txt", "hidden.pkl"} <= set(inventory(state))


def test_one_broken_entry_does_not_stop_the_others(marker):
    data = build_zip([("broken.bin", b"x" * 100), ("archive/data.pkl", evil_pickle(marker))])
    data = patch(data, central_records(data)[0] + CENTRAL_LOCAL_OFFSET, struct.pack("<I", 7))
    state = scan_bytes(data)
    assert by_rule(state, "zip.corrupt-entry")[0].evidence["member"] == "broken.bin"
    assert flags_payload_at(state, "archive/data.pkl")


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_compressed_members_are_decompressed_and_scanned(marker, compression):
    state = scan_bytes(build_zip([("m/data.pkl", evil_pickle(marker))], compression))
    assert inventory(state)["m/data.pkl"] == "pickle"
    assert flags_payload_at(state, "m/data.pkl")


def test_unsupported_method_is_reported_as_unverified():
    data = build_zip([("a.bin", b"abc")])
    data = patch(data, LOCAL_METHOD, struct.pack("<H", 99))
    data = patch(data, central_records(data)[0] + CENTRAL_METHOD, struct.pack("<H", 99))
    state = scan_bytes(data)
    finding = by_rule(state, "zip.unsupported-method")[0]
    assert finding.severity is Severity.HIGH
    assert finding.evidence["method"] == 99


def test_zip_bomb_is_stopped_with_a_finding_and_bounded_memory():
    data = zip_with_raw_member(b"bomb.bin", 8, deflate_bomb(200), 200 << 20)
    tracemalloc.start()
    try:
        state = scan_bytes(data, Limits(max_ratio=250, ratio_grace_bytes=1 << 20))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    bomb = by_rule(state, "zip.bomb")
    assert bomb and bomb[0].severity is Severity.HIGH
    assert state.decompressed_bytes < 8 << 20
    assert peak < 32 << 20


def test_total_decompressed_cap_reports_a_limit_and_keeps_scanning_stored_members(marker):
    noise = os.urandom(64 << 10)
    data = build_zip([("a.bin", noise), ("b.bin", noise)], zipfile.ZIP_DEFLATED)
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_STORED) as zf:
        zf.writestr("data.pkl", evil_pickle(marker))
    state = scan_bytes(buf.getvalue(), Limits(max_decompressed_bytes=100 << 10))
    limits = by_rule(state, "scan.limit-exceeded")
    assert len(limits) == 1 and limits[0].evidence["limit"] == "max_decompressed_bytes"
    assert flags_payload_at(state, "data.pkl")


def test_truncated_deflate_member_scans_what_decompressed(marker):
    payload = evil_pickle(marker) + os.urandom(4096)
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = (compressor.compress(payload) + compressor.flush())[:-200]
    state = scan_bytes(zip_with_raw_member(b"data.pkl", 8, raw, len(payload)))
    assert by_rule(state, "zip.truncated-member")[0].severity is Severity.MEDIUM
    assert flags_payload_at(state, "data.pkl")


def test_path_traversal_name_is_reported():
    state = scan_bytes(build_zip([("../../etc/cron.d/job", b"x"), ("/abs.txt", b"y")]))
    names = {f.evidence["member"] for f in by_rule(state, "zip.path-traversal")}
    assert names == {"../../etc/cron.d/job", "/abs.txt"}


def test_duplicate_names_are_reported_and_all_scanned(marker):
    with pytest.warns(UserWarning):
        data = build_zip([("data.pkl", b"benign"), ("data.pkl", evil_pickle(marker))])
    state = scan_bytes(data)
    assert by_rule(state, "zip.duplicate-name")[0].evidence["count"] == 2
    assert flags_payload_at(state, "data.pkl")


def test_pickle_prepended_to_a_zip_is_scanned(marker):
    data = evil_pickle(marker) + build_zip([("a.txt", b"hello")])
    state = scan_bytes(data)
    assert state.scanned[0].format == "zip"
    assert "zip.prepended-data" in rules(state)
    assert inventory(state)["<prepended>"] == "pickle"
    assert flags_payload_at(state, "<prepended>")


def test_zip_stored_inside_a_zip_is_one_member_not_a_second_directory():
    inner = build_zip([("a.txt", b"hello")])
    state = scan_bytes(build_zip([("readme.txt", b"x"), ("inner.zip", inner)]))
    assert inventory(state) == {
        None: "zip",
        "readme.txt": "unknown",
        "inner.zip": "zip",
        "inner.zip!a.txt": "unknown",
    }
    assert state.findings == []


def test_concatenated_zips_are_both_scanned(marker):
    first = build_zip([("data.pkl", evil_pickle(marker))])
    second = build_zip([("data.pkl", pickle.dumps([1]))])
    state = scan_bytes(first + second)
    assert by_rule(state, "zip.multiple-directories")[0].severity is Severity.MEDIUM
    assert [s.member for s in state.scanned].count("data.pkl") == 2
    assert flags_payload_at(state, "data.pkl")


def test_self_extractor_with_unadjusted_offsets_is_read():
    data = b"MZ" + bytes(1000) + build_zip([("a.txt", b"hello")])
    state = scan_bytes(data)
    assert "a.txt" in inventory(state)
    assert not by_rule(state, "zip.corrupt-directory")


def test_zip64_records_are_followed(monkeypatch, marker):
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 10)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
    data = build_zip([("a.txt", b"hello world"), ("data.pkl", evil_pickle(marker))])
    monkeypatch.undo()
    assert b"PK\x06\x06" in data
    state = scan_bytes(data)
    assert flags_payload_at(state, "data.pkl")
    assert not {r for r in rules(state) if r.startswith("zip.")}


def test_nested_zips_are_scanned_to_the_depth_limit():
    data = pickle.dumps([1, 2, 3])
    for level in range(5):
        data = build_zip([(f"level{level}", data)])
    state = scan_bytes(data, Limits(max_depth=3))
    assert by_rule(state, "scan.limit-exceeded")[0].evidence["limit"] == "max_depth"
    assert "level4!level3!level2" in inventory(state)
    assert "level4!level3!level2!level1" not in inventory(state)


def test_random_data_is_not_claimed_as_zip():
    data = random.Random(7).randbytes(100_000)
    data = data[:-500] + b"PK\x05\x06" + data[-496:]
    assert not ZipHandler(found_by_tail=True).sniff(data[:4096], BytesBlob(data))


def test_empty_zip_is_a_clean_zip():
    state = scan_bytes(build_zip([]))
    assert inventory(state) == {None: "zip"}
    assert state.findings == []


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["archive/data.pkl", "archive/data/0", "archive/version"], "pytorch-zip"),
        (["anything/else/data.pkl"], "pytorch-zip"),
        (["m/version", "m/data/0", "m/data/1"], "pytorch-zip"),
        (["m/data.pkl", "m/code/__torch__/m.py", "m/constants.pkl"], "torchscript"),
        (["x.npy", "y.npy"], "npz"),
        (["config.json", "metadata.json", "model.weights.h5"], "keras"),
        (["readme.txt"], "zip"),
    ],
)
def test_archive_layout_refines_the_format(names, expected):
    state = scan_bytes(build_zip([(n, b"{}") for n in names]))
    assert state.scanned[0].format == expected


def test_keras_config_is_handed_to_the_engine():
    config = b'{"class_name": "Sequential", "config": {"layers": []}}'
    state = scan_bytes(
        build_zip(
            [
                ("config.json", config),
                ("metadata.json", b"{}"),
                ("model.weights.h5", b"\x89HDF\r\n\x1a\n"),
            ]
        )
    )
    assert state.scanned[0].format == "keras"
    assert "config.json" in inventory(state)


def test_numpy_npz_is_recognised(tmp_path):
    np = pytest.importorskip("numpy")
    path = tmp_path / "arrays.npz"
    np.savez(path, a=np.arange(3), b=np.ones(2))
    state = scan_path(path)
    assert inventory(state)[None] == "npz"
    assert {"a.npy", "b.npy"} <= set(inventory(state))


def test_real_pytorch_checkpoint_is_a_clean_pytorch_zip(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).state_dict(), path)
    state = scan_path(path)
    found = inventory(state)
    assert found[None] == "pytorch-zip"
    assert found["model/data.pkl"] == "pickle"
    assert not rules(state, Severity.HIGH)


def test_pytorch_checkpoint_with_destroyed_directory_still_finds_its_pickle(tmp_path, marker):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(4)}, path)
    data = path.read_bytes()
    for record in central_records(data):
        data = patch(data, record, b"XXXX")
    state = scan_bytes(data)
    assert inventory(state)["model/data.pkl"] == "pickle"
    assert "model/data/0" in inventory(state)


def test_stored_members_are_handed_over_in_place_without_being_read():
    big = bytes(48 << 20)
    blob = CountingBlob(
        build_zip([("archive/data.pkl", pickle.dumps({"w": 1})), ("archive/data/0", big)])
    )
    children: list[tuple[str, object]] = []

    def record_child(parent: ScanContext, child: object, name: str, raw_data: bool) -> None:
        children.append((name, child))
        raw_flags[name] = raw_data

    raw_flags: dict[str, bool] = {}

    state = FileScan("sample", Policy(), Limits())
    ctx = ScanContext(state, blob, _scan_child=record_child)
    ZipHandler(found_by_tail=False).scan(ctx)
    assert ctx.format == "pytorch-zip"
    assert raw_flags == {"archive/data.pkl": False, "archive/data/0": True}
    tensor = dict(children)["archive/data/0"]
    assert isinstance(tensor, RegionBlob) and tensor.size == len(big)
    assert blob.bytes_read < 256 << 10


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 1 << 20), st.integers(0, 255)),
        min_size=1,
        max_size=8,
    )
)
def test_mutated_zips_give_findings_never_handler_errors(edits):
    seed = build_zip(
        [
            ("archive/data.pkl", pickle.dumps({"a": list(range(40))})),
            ("archive/data/0", bytes(range(256))),
        ],
        zipfile.ZIP_DEFLATED,
    )
    state = scan_bytes(mutate(seed, edits))
    assert not unparseable_by(state, {"zip"})


def test_tar_storing_a_zip_near_its_end_is_read_as_a_tar(tmp_path: Path) -> None:
    import tarfile

    inner = build_zip([("archive/data.pkl", pickle.dumps({"w": 1}))])
    path = tmp_path / "model.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("model.pt")
        info.size = len(inner)
        tar.addfile(info, io.BytesIO(inner))
    state = scan_file(str(path), str(path), Policy())
    formats = {s.member: s.format for s in state.scanned}
    assert formats[None] == "tar"
    assert formats["model.pt"] == "pytorch-zip"
    assert state.findings == []
