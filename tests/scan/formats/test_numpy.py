"""NumPy .npy/.npz: object arrays have their pickle analysed; numeric bodies are never read."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from mlwarden.findings import Severity
from mlwarden.scan.formats.numpy import has_objects

from ._models import (
    TrackingBlob,
    by_rule,
    evil_pickle,
    formats,
    nothing_high,
    npy_bytes,
    rules,
    scan_bytes,
    scan_path,
    scan_tracking,
)


def _saved(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    npy_format.write_array(buffer, array, version=version, allow_pickle=True)
    return buffer.getvalue()


def _evil_object_npy(marker: Path, descr: str = "'|O'") -> bytes:
    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': (1,), }}"
    return npy_bytes(header.ljust(118) + "\n", evil_pickle(marker))


@pytest.mark.parametrize(
    "dtype", ["float32", "int64", "bool", "complex128", "U12", "S4", "datetime64[ns]"]
)
def test_numeric_and_string_arrays_are_clean(tmp_path: Path, dtype: str) -> None:
    path = tmp_path / "a.npy"
    np.save(path, np.zeros((3, 4), dtype=dtype))
    state = scan_path(path)
    assert formats(state) == {None: "numpy"}
    assert state.findings == []


def test_structured_array_without_objects_is_clean() -> None:
    array = np.zeros(4, dtype=[("x", "<f4"), ("inner", [("a", "<i2"), ("b", "S3")], (2,))])
    assert scan_bytes(_saved(array)).findings == []


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_every_header_version_is_read(version: tuple[int, int], tmp_path: Path) -> None:
    data = _saved(np.array(["x", {"k": 1}], dtype=object), version=version)
    state = scan_bytes(data)
    assert rules(state) == {"numpy.object-array"}


def test_benign_object_array_is_medium_only() -> None:
    state = scan_bytes(_saved(np.array(["a", 1, None, (2, 3)], dtype=object)))
    finding = by_rule(state, "numpy.object-array")[0]
    assert finding.severity is Severity.MEDIUM
    assert finding.evidence["descr"] == "'|O'"
    assert nothing_high(state)


def test_malicious_object_array_pickle_is_analysed(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.npy"
    path.write_bytes(_evil_object_npy(marker))
    state = scan_path(path)
    assert "numpy.object-array" in rules(state)
    critical = [f for f in state.findings if f.severity is Severity.CRITICAL]
    assert critical, state.findings
    assert critical[0].location is not None and critical[0].location.offset is not None
    assert critical[0].location.offset >= 128
    assert not marker.exists()


@pytest.mark.parametrize(
    "descr",
    [
        "[('a', '<f4'), ('b', '|O')]",
        "[('a', '<f4'), ('nested', [('x', '<i4'), ('y', 'O')])]",
        "[('a', '|O', (2, 2))]",
        "('|O', (3,))",
        "[(('title', 'a'), '|O')]",
    ],
)
def test_objects_anywhere_in_the_dtype_make_the_body_a_pickle(tmp_path: Path, descr: str) -> None:
    marker = tmp_path / "marker"
    state = scan_bytes(_evil_object_npy(marker, descr))
    assert "numpy.object-array" in rules(state)
    assert any(f.severity is Severity.CRITICAL for f in state.findings)
    assert not marker.exists()


def test_objects_in_a_real_structured_dtype_are_seen() -> None:
    array = np.zeros(2, dtype=[("n", "<i4"), ("obj", "O")])
    assert "numpy.object-array" in rules(scan_bytes(_saved(array)))


def test_numeric_body_is_never_read() -> None:
    data = _saved(np.zeros(1_000_000, dtype=np.float64))
    blob = TrackingBlob(data)
    state = scan_tracking(blob)
    assert state.findings == []
    assert blob.bytes_read < 64 * 1024


def test_numeric_array_whose_body_looks_like_a_pickle_is_not_unpickled(tmp_path: Path) -> None:
    payload = evil_pickle(tmp_path / "marker")
    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({len(payload)},), }}"
    state = scan_bytes(npy_bytes(header.ljust(118) + "\n", payload))
    assert state.findings == []


def test_npz_members_come_back_as_npy(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("weights.npy", _saved(np.arange(5)))
        archive.writestr("payload.npy", _evil_object_npy(marker))
    path = tmp_path / "bundle.npz"
    path.write_bytes(buffer.getvalue())
    state = scan_path(path)
    assert formats(state)["weights.npy"] == "numpy"
    assert formats(state)["payload.npy"] == "numpy"
    assert any(
        f.severity is Severity.CRITICAL
        and f.location is not None
        and f.location.member == "payload.npy"
        for f in state.findings
    )
    assert not marker.exists()


def test_python2_long_suffixes_are_accepted_like_numpy_does() -> None:
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (3L, 2L), }"
    state = scan_bytes(npy_bytes(header.ljust(118) + "\n", bytes(48)))
    assert state.findings == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x93NUMPY\x01", "magic"),
        (b"\x93NUMPY\x09\x00\x10\x00{}", "unknown format version"),
        (
            npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)"),
            "not a Python literal",
        ),
        (npy_bytes("['not', 'a', 'dict']"), "not a dict"),
        (npy_bytes("{'descr': '<f4', 'shape': (2,)}"), "header keys"),
        (npy_bytes("{'descr': '<f4', 'fortran_order': 1, 'shape': (2,)}"), "fortran_order"),
        (npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': ('a',)}"), "shape"),
        (
            npy_bytes(
                b"{'descr': '\xff\xfe', 'fortran_order': False, 'shape': ()}", version=(3, 0)
            ),
            "UTF-8",
        ),
        (b"\x93NUMPY\x01\x00\xff\x00{'descr'", "file ends after"),
        (npy_bytes("{'a': " * 5000 + "1" + "}" * 5000), "not a Python literal"),
    ],
)
def test_bad_headers_are_findings_not_crashes(data: bytes, reason: str) -> None:
    state = scan_bytes(data)
    findings = by_rule(state, "numpy.bad-header")
    assert findings, state.findings
    assert reason in findings[0].evidence["reason"]
    assert "scan.unparseable" not in rules(state)


def test_header_declared_larger_than_analysed_is_high() -> None:
    data = b"\x93NUMPY\x02\x00" + (50 * 1024 * 1024).to_bytes(4, "little") + b"{" + bytes(100)
    findings = by_rule(scan_bytes(data), "numpy.bad-header")
    assert findings[0].severity is Severity.HIGH


def test_bad_header_still_finds_a_pickle_hidden_in_the_body(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    data = npy_bytes(
        "{'descr': '|O', 'shape': (1,)}".ljust(118) + "\n", b"\x80\x02" + evil_pickle(marker)
    )
    state = scan_bytes(data)
    assert "numpy.bad-header" in rules(state)
    assert any(f.severity is Severity.CRITICAL for f in state.findings)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("descr", "expected"),
    [
        ("<f4", False),
        ("|O", True),
        ("O", True),
        ("object", True),
        ("<M8[us]", False),
        ([("a", "<f4"), ("b", [("c", "|O")])], True),
        ([("a", "<f4", (2,))], False),
        (("<i4", (2,)), False),
        ({"names": ["a"]}, True),
        ([("broken",)], True),
    ],
)
def test_has_objects_follows_nested_dtypes(descr: object, expected: bool) -> None:
    assert has_objects(descr) is expected
