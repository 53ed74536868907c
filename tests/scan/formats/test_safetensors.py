"""safetensors: header validation as strict as the reference loader; trailing bytes are scanned."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save, save_file

from mlwarden.findings import Severity
from mlwarden.scan.limits import Limits

from ._models import (
    TrackingBlob,
    by_rule,
    evil_pickle,
    formats,
    nothing_high,
    rules,
    scan_bytes,
    scan_path,
    scan_tracking,
)


def st_bytes(header: dict[str, Any] | str | bytes, data: bytes = b"", pad: bytes = b"") -> bytes:
    """A safetensors file with a header given verbatim (so tests can make it wrong)."""
    if isinstance(header, dict):
        raw = json.dumps(header).encode()
    elif isinstance(header, str):
        raw = header.encode()
    else:
        raw = header
    raw += pad
    return struct.pack("<Q", len(raw)) + raw + data


def entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def test_real_file_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file(
        {
            "w": np.ones((3, 4), np.float32),
            "b": np.zeros(2, np.int64),
            "h": np.zeros((2, 2), np.float16),
            "m": np.zeros(3, bool),
            "empty": np.zeros((0, 5), np.float32),
        },
        str(path),
        metadata={"format": "pt", "note": "benign"},
    )
    state = scan_path(path)
    assert formats(state) == {None: "safetensors"}
    assert state.findings == []


def test_tensor_data_is_never_read() -> None:
    data = save({"big": np.zeros(2_000_000, np.float32)})
    blob = TrackingBlob(data)
    state = scan_tracking(blob)
    assert state.findings == []
    assert blob.bytes_read < 256 * 1024


@pytest.mark.parametrize(
    ("header", "data_size", "problem"),
    [
        ({"a": entry("F32", [2], 0, 8), "b": entry("XX9", [1], 8, 9)}, 9, "unknown dtype 'XX9'"),
        ({"a": entry("F32", [2], 0, 12)}, 12, "needs 8"),
        ({"a": entry("F32", [-1], 0, 4)}, 4, "non-negative"),
        ({"a": entry("F32", [2.0], 0, 8)}, 8, "non-negative"),
        ({"a": entry("F32", [2], 8, 0)}, 8, "end before"),
        ({"a": {"dtype": "F32", "shape": [2]}}, 8, "missing data_offsets"),
        ({"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 16, 24)}, 24, "gap of 8"),
        ({"a": entry("F32", [4], 0, 16)}, 8, "run past the data region"),
        ({"a": entry("F4", [3], 0, 1)}, 1, "whole bytes"),
        ({"a": entry("U8", [2**40, 2**40], 0, 1)}, 1, "overflows"),
        ({"__metadata__": {"k": 1}}, 0, "not strings"),
        ({"__metadata__": ["x"]}, 0, "not an object"),
        ({"a": "F32"}, 0, "not an object"),
    ],
)
def test_invalid_headers_name_the_tensor_and_the_problem(
    header: dict[str, Any], data_size: int, problem: str
) -> None:
    state = scan_bytes(st_bytes(header, bytes(data_size)))
    findings = by_rule(state, "safetensors.invalid-header")
    assert findings, state.findings
    assert findings[0].severity is Severity.HIGH
    problems = " | ".join(p["problem"] for p in findings[0].evidence["problems"])
    assert problem in problems


def test_overlapping_tensors_are_high() -> None:
    header = {"a": entry("F32", [4], 0, 16), "b": entry("F32", [2], 8, 16)}
    findings = by_rule(scan_bytes(st_bytes(header, bytes(16))), "safetensors.overlap")
    assert findings and findings[0].severity is Severity.HIGH
    assert findings[0].evidence["problems"][0]["tensor"] == "b"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"a": 1, "a": 2}', "appears twice"),
        (
            b'{"a": {"dtype": "F32", "dtype": "F16", "shape": [], "data_offsets": [0, 4]}}',
            "appears twice",
        ),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"\xff": 1}', "UTF-8"),
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b'{"a": 1} trailing', "not valid JSON"),
    ],
)
def test_headers_that_parsers_disagree_on_are_invalid(raw: bytes, problem: str) -> None:
    data = struct.pack("<Q", len(raw)) + raw
    findings = by_rule(scan_bytes(data), "safetensors.invalid-header")
    assert findings, problem
    assert problem in findings[0].evidence["problems"][0]["problem"]


def test_trailing_bytes_are_reported_and_scanned(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    data = save({"w": np.ones(4, np.float32)}) + b"\x80\x02" + evil_pickle(marker)
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    state = scan_path(path)
    trailing = by_rule(state, "safetensors.trailing-data")
    assert trailing and trailing[0].severity is Severity.MEDIUM
    assert any(f.severity is Severity.CRITICAL for f in state.findings)
    assert any(m and m.startswith("<trailing@") for m in formats(state))
    assert not marker.exists()


def test_trailing_zip_is_opened(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", evil_pickle(marker))
    data = save({"w": np.ones(4, np.float32)}) + buffer.getvalue()
    state = scan_bytes(data)
    assert any(f.severity is Severity.CRITICAL for f in state.findings)
    assert not marker.exists()


def test_data_after_an_empty_header_is_trailing() -> None:
    state = scan_bytes(st_bytes({"__metadata__": {"a": "b"}}, b"hidden bytes"))
    assert "safetensors.trailing-data" in rules(state)


def test_space_padding_is_normal_but_other_whitespace_is_noted() -> None:
    header = {"a": entry("U8", [2], 0, 2)}
    assert scan_bytes(st_bytes(header, b"ab", pad=b"        ")).findings == []
    state = scan_bytes(st_bytes(header, b"ab", pad=b"\t\n  "))
    assert rules(state) == {"safetensors.header-padding"}
    assert nothing_high(state)


def test_every_known_dtype_is_accepted() -> None:
    sizes = {
        "BOOL": 1,
        "U8": 1,
        "I8": 1,
        "F8_E5M2": 1,
        "F8_E4M3": 1,
        "F8_E8M0": 1,
        "I16": 2,
        "U16": 2,
        "F16": 2,
        "BF16": 2,
        "I32": 4,
        "U32": 4,
        "F32": 4,
        "F64": 8,
        "I64": 8,
        "U64": 8,
        "C64": 8,
    }
    header: dict[str, Any] = {}
    offset = 0
    for name, size in sizes.items():
        header[name] = entry(name, [3], offset, offset + 3 * size)
        offset += 3 * size
    header["F4"] = entry("F4", [4], offset, offset + 2)
    header["F6_E2M3"] = entry("F6_E2M3", [4], offset + 2, offset + 5)
    assert scan_bytes(st_bytes(header, bytes(offset + 5))).findings == []


def test_header_larger_than_the_metadata_limit_is_a_limit_finding() -> None:
    data = st_bytes({"a": entry("U8", [1], 0, 1)}, b"x", pad=b" " * 5000)
    state = scan_bytes(data, Limits(max_metadata_bytes=1000))
    assert "scan.limit-exceeded" in rules(state)


@pytest.mark.parametrize(
    "data",
    [
        struct.pack("<Q", 10**12) + b'{"a": 1}',
        struct.pack("<Q", 1) + b"{",
        b'{"not": "safetensors"}',
        b"\x80\x02}q\x00.",
    ],
)
def test_other_content_is_not_claimed(data: bytes) -> None:
    assert formats(scan_bytes(data))[None] != "safetensors"
