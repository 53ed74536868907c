"""GGUF: metadata read under caps, chat templates analysed, tensor data never read."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from mlwarden.findings import Severity
from mlwarden.scan.limits import Limits

from ._models import (
    TrackingBlob,
    by_rule,
    formats,
    rules,
    scan_bytes,
    scan_path,
    scan_tracking,
)

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
)
LLAMA_DRAMA = (
    "{% for x in ().__class__.__base__.__subclasses__() %}{% if 'warning' in x.__name__ %}"
    "{{ x()._module.__builtins__['__import__']('os').popen('touch MARKER') }}{% endif %}"
    "{% endfor %}"
)


def _write(
    path: Path,
    template: str | list[dict[str, str]] | None = None,
    tensor_values: int = 8,
    endian: gguf.GGUFEndian = gguf.GGUFEndian.LITTLE,
) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama", endianess=endian)
    writer.add_string("general.name", "tiny")
    writer.add_array("tokenizer.ggml.tokens", ["<s>", "</s>", "a", "b"])
    writer.add_array("tokenizer.ggml.scores", [0.0, 0.0, 1.0, 2.0])
    if template is not None:
        writer.add_chat_template(template)
    writer.add_tensor("w", np.ones(tensor_values, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _string(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def _header(kv_count: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, 0, kv_count)


def _kv_string(key: bytes, value: bytes) -> bytes:
    return _string(key) + struct.pack("<I", 8) + _string(value)


def test_benign_model_with_a_chat_template_is_clean(tmp_path: Path) -> None:
    state = scan_path(_write(tmp_path / "m.gguf", CHATML))
    assert formats(state) == {None: "gguf"}
    assert state.findings == []


def test_llama_drama_template_is_critical(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    state = scan_path(_write(tmp_path / "m.gguf", LLAMA_DRAMA.replace("MARKER", str(marker))))
    findings = by_rule(state, "template.sandbox-escape")
    assert findings and all(f.severity is Severity.CRITICAL for f in findings)
    assert findings[0].evidence["origin"] == "GGUF metadata 'tokenizer.chat_template'"
    assert findings[0].evidence["cve"] == "CVE-2024-34359"
    assert findings[0].location is not None and findings[0].location.offset
    assert not marker.exists()


def test_named_chat_templates_are_analysed_too(tmp_path: Path) -> None:
    templates = [
        {"name": "default", "template": CHATML},
        {"name": "tool_use", "template": "{{ lipsum.__globals__ }}"},
    ]
    state = scan_path(_write(tmp_path / "m.gguf", templates))
    origins = {f.evidence["origin"] for f in by_rule(state, "template.sandbox-escape")}
    assert origins == {"GGUF metadata 'tokenizer.chat_template.tool_use'"}


def test_unparseable_template_is_medium(tmp_path: Path) -> None:
    state = scan_path(_write(tmp_path / "m.gguf", "{% for %}"))
    assert [f.severity for f in by_rule(state, "template.unparseable")] == [Severity.MEDIUM]


def test_big_endian_file_is_read(tmp_path: Path) -> None:
    path = _write(tmp_path / "be.gguf", "{{ x.__class__ }}", endian=gguf.GGUFEndian.BIG)
    assert "template.sandbox-escape" in rules(scan_path(path))


@pytest.mark.parametrize("version", [1, 2])
def test_older_versions_are_read(version: int) -> None:
    count = "<I" if version == 1 else "<Q"
    key, value = b"tokenizer.chat_template", b"{{ x.__mro__ }}"
    kv = (
        struct.pack(count, len(key))
        + key
        + struct.pack("<I", 8)
        + struct.pack(count, len(value))
        + value
    )
    data = b"GGUF" + struct.pack("<I", version) + struct.pack(count, 0) + struct.pack(count, 1) + kv
    assert "template.sandbox-escape" in rules(scan_bytes(data))


def test_tensor_data_is_never_read(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.gguf", CHATML, tensor_values=2_000_000)
    blob = TrackingBlob(path.read_bytes())
    state = scan_tracking(blob)
    assert state.findings == []
    assert blob.bytes_read < blob.size // 3


def test_template_before_a_break_is_still_analysed() -> None:
    data = _header(2) + _kv_string(b"tokenizer.chat_template", b"{{ x.__class__ }}")
    data += _string(b"broken") + struct.pack("<I", 99)
    state = scan_bytes(data)
    assert {"template.sandbox-escape", "gguf.malformed"} <= rules(state)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_header(10**15), "room for at most"),
        (_header(1) + struct.pack("<Q", 2**62) + b"key" + bytes(32), "remain"),
        (
            _header(1) + _string(b"k") + struct.pack("<I", 9) + struct.pack("<IQ", 8, 2**60),
            "room for at most",
        ),
        (_header(1) + _string(b"k") + struct.pack("<I", 9) + struct.pack("<IQ", 0, 2**60), "past"),
        (
            _header(1) + _string(b"k") + struct.pack("<I", 9) + struct.pack("<IQ", 77, 1),
            "unknown array item type",
        ),
        (_header(1) + _string(b"k") + struct.pack("<I", 13) + bytes(8), "unknown value type"),
        (_header(2) + _kv_string(b"a", b"b") + _string(b"key") + b"\x08", "past the end"),
        (_header(1) + _string(b"k") + struct.pack("<I", 4), "past the end"),
    ],
)
def test_lying_or_truncated_metadata_is_malformed(data: bytes, reason: str) -> None:
    findings = by_rule(scan_bytes(data), "gguf.malformed")
    assert findings, reason
    assert findings[0].severity is Severity.HIGH
    assert reason in findings[0].evidence["reason"]


def test_deeply_nested_arrays_are_malformed() -> None:
    nested = struct.pack("<IQ", 9, 1) * 20 + struct.pack("<IQ", 0, 0)
    data = _header(1) + _string(b"k") + struct.pack("<I", 9) + nested
    assert "gguf.malformed" in rules(scan_bytes(data))


def test_unknown_version_is_medium() -> None:
    state = scan_bytes(b"GGUF" + struct.pack("<I", 4) + bytes(16))
    assert [f.severity for f in by_rule(state, "gguf.unsupported-version")] == [Severity.MEDIUM]


def test_metadata_over_the_limit_is_a_limit_finding() -> None:
    data = _header(1) + _kv_string(b"tokenizer.chat_template", b"x" * 5000)
    state = scan_bytes(data, Limits(max_metadata_bytes=1000))
    assert "scan.limit-exceeded" in rules(state)


def test_invalid_utf8_in_a_template_does_not_crash() -> None:
    data = _header(1) + _kv_string(b"tokenizer.chat_template", b"\xff\xfe{{ x.__class__ }}")
    assert "template.sandbox-escape" in rules(scan_bytes(data))
