"""ONNX: external-data paths that leave the model folder, custom operator domains, malformed files.

Models are built with the ``onnx`` package (to create files only); the scanner reads them with
its own protobuf walker.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mlwarden.findings import Severity

from ._models import (
    TrackingBlob,
    by_rule,
    formats,
    nothing_high,
    rules,
    scan_bytes,
    scan_path,
    scan_tracking,
)


def _graph(
    nodes: list[onnx.NodeProto], initializers: list[TensorProto] | None = None, name: str = "g"
) -> onnx.GraphProto:
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])
    return helper.make_graph(nodes, name, [x], [y], initializers or [])


def _model(
    nodes: list[onnx.NodeProto] | None = None,
    initializers: list[TensorProto] | None = None,
    functions: list[onnx.FunctionProto] | None = None,
    domains: tuple[str, ...] = (),
) -> onnx.ModelProto:
    if nodes is None:
        nodes = [helper.make_node("Add", ["X", "W"], ["Y"])]
        initializers = [numpy_helper.from_array(np.ones(2, np.float32), "W")]
    opsets = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(
        _graph(nodes, initializers),
        opset_imports=opsets,
        functions=functions or [],
        producer_name="mlwarden-tests",
    )


def _write(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def _point_external(tensor: TensorProto, location: str) -> None:
    tensor.ClearField("raw_data")
    del tensor.external_data[:]
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location


def _external_model(location: str) -> onnx.ModelProto:
    model = _model()
    _point_external(model.graph.initializer[0], location)
    return model


def test_plain_model_is_clean(tmp_path: Path) -> None:
    state = scan_path(_write(_model(), tmp_path / "model.onnx"))
    assert formats(state) == {None: "onnx"}
    assert state.findings == []


def test_microsoft_and_ml_domains_are_standard(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("FusedMatMul", ["X", "X"], ["T"], domain="com.microsoft"),
        helper.make_node("Normalizer", ["T"], ["Y"], domain="ai.onnx.ml"),
    ]
    model = _model(nodes, [], domains=("com.microsoft", "ai.onnx.ml"))
    assert scan_path(_write(model, tmp_path / "m.onnx")).findings == []


def test_external_data_saved_by_onnx_is_clean(tmp_path: Path) -> None:
    model = _model()
    path = tmp_path / "model.onnx"
    onnx.save_model(
        model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0
    )
    assert (tmp_path / "weights.bin").exists()
    state = scan_path(path)
    assert state.findings == []


def test_missing_external_file_is_low(tmp_path: Path) -> None:
    state = scan_path(_write(_external_model("weights.bin"), tmp_path / "model.onnx"))
    findings = by_rule(state, "onnx.external-data-missing")
    assert findings and findings[0].severity is Severity.LOW
    assert findings[0].evidence["tensors"] == ["W"]


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("../../etc/passwd", "'..'"),
        ("sub/../../secret", "'..'"),
        ("..\\..\\windows\\win.ini", "'..'"),
        ("/etc/passwd", "absolute"),
        ("C:\\Windows\\win.ini", "absolute"),
        ("\\\\server\\share\\x", "absolute"),
        ("", "empty"),
    ],
)
def test_external_data_outside_the_folder_is_high(
    tmp_path: Path, location: str, reason: str
) -> None:
    state = scan_path(_write(_external_model(location), tmp_path / "model.onnx"))
    findings = by_rule(state, "onnx.external-data-outside")
    assert findings, state.findings
    assert findings[0].severity is Severity.HIGH
    assert findings[0].evidence["location"] == location
    assert reason in findings[0].evidence["reason"]
    assert "CVE-2024-27318" in findings[0].evidence["cve"]


def test_external_data_through_a_symlink_out_of_the_folder_is_high(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(bytes(8))
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink(outside / "secret", folder / "weights.bin")
    state = scan_path(_write(_external_model("weights.bin"), folder / "model.onnx"))
    findings = by_rule(state, "onnx.external-data-outside")
    assert findings and "symbolic link" in findings[0].evidence["reason"]


def test_external_tensor_in_a_node_attribute_is_checked(tmp_path: Path) -> None:
    value = numpy_helper.from_array(np.ones(2, np.float32), "c")
    _point_external(value, "/etc/shadow")
    nodes = [helper.make_node("Constant", [], ["Y"], value=value)]
    state = scan_path(_write(_model(nodes, []), tmp_path / "m.onnx"))
    assert by_rule(state, "onnx.external-data-outside")[0].evidence["location"] == "/etc/shadow"


def test_many_tensors_sharing_one_bad_location_give_one_finding(tmp_path: Path) -> None:
    inits = [numpy_helper.from_array(np.ones(2, np.float32), f"w{i}") for i in range(30)]
    for tensor in inits:
        _point_external(tensor, "../x.bin")
    state = scan_path(
        _write(_model([helper.make_node("Identity", ["X"], ["Y"])], inits), tmp_path / "m.onnx")
    )
    findings = by_rule(state, "onnx.external-data-outside")
    assert len(findings) == 1
    assert findings[0].evidence["tensor_count"] == 30


def test_model_inside_an_archive_is_judged_on_its_paths_alone(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("good.onnx", _external_model("weights.bin").SerializeToString())
        archive.writestr("bad.onnx", _external_model("../../etc/passwd").SerializeToString())
    state = scan_bytes(buffer.getvalue())
    assert formats(state)["good.onnx"] == "onnx"
    outside = by_rule(state, "onnx.external-data-outside")
    assert [f.location.member for f in outside if f.location] == ["bad.onnx"]
    assert "onnx.external-data-missing" not in rules(state)


def test_custom_domain_is_medium_with_ops_and_counts(tmp_path: Path) -> None:
    nodes = [
        helper.make_node("Backdoor", ["X"], ["T"], domain="com.evil"),
        helper.make_node("Backdoor", ["T"], ["U"], domain="com.evil"),
        helper.make_node("Relu", ["U"], ["Y"]),
    ]
    state = scan_path(_write(_model(nodes, [], domains=("com.evil",)), tmp_path / "m.onnx"))
    finding = by_rule(state, "onnx.custom-domain")[0]
    assert finding.severity is Severity.MEDIUM
    assert finding.evidence["domains"] == {"com.evil": {"Backdoor": 2}}
    assert nothing_high(state)


def test_custom_domain_inside_a_subgraph_is_found(tmp_path: Path) -> None:
    then_graph = _graph([helper.make_node("Hidden", ["X"], ["Y"], domain="org.custom")], name="t")
    else_graph = _graph([helper.make_node("Identity", ["X"], ["Y"])], name="e")
    nodes = [helper.make_node("If", ["C"], ["Y"], then_branch=then_graph, else_branch=else_graph)]
    state = scan_path(_write(_model(nodes, []), tmp_path / "m.onnx"))
    assert by_rule(state, "onnx.custom-domain")[0].evidence["domains"] == {
        "org.custom": {"Hidden": 1}
    }


def test_custom_domain_inside_a_graphs_attribute_is_found(tmp_path: Path) -> None:
    inner = _graph([helper.make_node("Deep", ["X"], ["Y"], domain="x.y")], name="inner")
    node = helper.make_node("Custom", ["X"], ["Y"], domain="")
    node.attribute.append(helper.make_attribute("bodies", [inner]))
    state = scan_path(_write(_model([node], []), tmp_path / "m.onnx"))
    assert "x.y" in by_rule(state, "onnx.custom-domain")[0].evidence["domains"]


def test_model_local_functions_are_not_custom_ops(tmp_path: Path) -> None:
    function = helper.make_function(
        "local.fn",
        "MyRelu",
        ["x"],
        ["y"],
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_opsetid("", 17)],
    )
    nodes = [helper.make_node("MyRelu", ["X"], ["Y"], domain="local.fn")]
    model = _model(nodes, [], functions=[function], domains=("local.fn",))
    assert scan_path(_write(model, tmp_path / "m.onnx")).findings == []


def test_custom_op_inside_a_function_body_is_found(tmp_path: Path) -> None:
    function = helper.make_function(
        "local.fn",
        "Wrap",
        ["x"],
        ["y"],
        [helper.make_node("Native", ["x"], ["y"], domain="com.lib")],
        [helper.make_opsetid("com.lib", 1)],
    )
    nodes = [helper.make_node("Wrap", ["X"], ["Y"], domain="local.fn")]
    model = _model(nodes, [], functions=[function], domains=("local.fn",))
    state = scan_path(_write(model, tmp_path / "m.onnx"))
    assert by_rule(state, "onnx.custom-domain")[0].evidence["domains"] == {"com.lib": {"Native": 1}}


def test_initializer_data_is_never_read() -> None:
    weights = numpy_helper.from_array(np.zeros(4_000_000, np.float32), "W")
    model = _model([helper.make_node("Add", ["X", "W"], ["Y"])], [weights])
    blob = TrackingBlob(model.SerializeToString())
    state = scan_tracking(blob)
    assert formats(state) == {None: "onnx"}
    assert state.findings == []
    assert blob.bytes_read < blob.size // 3


def test_large_model_on_disk_is_scanned(tmp_path: Path) -> None:
    weights = numpy_helper.from_array(np.zeros(4_000_000, np.float32), "W")
    nodes = [
        helper.make_node("Add", ["X", "W"], ["T"]),
        helper.make_node("Op", ["T"], ["Y"], domain="com.vendor"),
    ]
    path = _write(_model(nodes, [weights], domains=("com.vendor",)), tmp_path / "big.onnx")
    assert rules(scan_path(path)) == {"onnx.custom-domain"}


def test_truncated_model_is_malformed_high(tmp_path: Path) -> None:
    data = _model().SerializeToString()
    state = scan_bytes(data[: len(data) // 2])
    assert formats(state) == {None: "onnx"}
    finding = by_rule(state, "onnx.malformed")[0]
    assert finding.severity is Severity.HIGH


def test_findings_before_the_break_are_still_reported() -> None:
    model = _model([helper.make_node("Op", ["X"], ["Y"], domain="com.vendor")], [])
    leaked = numpy_helper.from_array(np.ones(2, np.float32), "W")
    _point_external(leaked, "/etc/passwd")
    model.graph.initializer.append(leaked)
    data = model.SerializeToString() + b"\x0f"
    state = scan_bytes(data)
    assert {"onnx.malformed", "onnx.custom-domain", "onnx.external-data-outside"} <= rules(state)


@pytest.mark.parametrize(
    "tail", [b"\x0f", b"\x0b\x08\x01", b"\x0c", b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80"]
)
def test_broken_wire_format_is_malformed(tail: bytes) -> None:
    state = scan_bytes(_model().SerializeToString() + tail)
    assert "onnx.malformed" in rules(state)
    assert "scan.unparseable" not in rules(state)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = b""
    while value > 0x7F:
        out += bytes([value & 0x7F | 0x80])
        value >>= 7
    return out + bytes([value])


def test_nesting_beyond_protobuf_limit_is_malformed() -> None:
    # Written by hand: the protobuf library itself refuses to build anything this deep.
    graph = _field(1, _field(4, b"Identity"))
    for _ in range(60):
        attribute = _field(1, b"then_branch") + _field(6, graph)
        graph = _field(1, _field(4, b"If") + _field(5, attribute))
    state = scan_bytes(b"\x08\x08" + _field(7, graph))
    assert formats(state) == {None: "onnx"}
    finding = by_rule(state, "onnx.malformed")[0]
    assert "nested deeper" in finding.evidence["reason"]


def test_fields_in_unusual_order_are_still_onnx() -> None:
    model = _external_model("/etc/passwd")
    reordered = onnx.ModelProto(graph=model.graph).SerializeToString() + b"\x08\x08"
    state = scan_bytes(reordered)
    assert formats(state) == {None: "onnx"}
    assert "onnx.external-data-outside" in rules(state)


@pytest.mark.parametrize(
    "data",
    [
        b"\x08\x01\x12\x05hello",
        b"\x08\x99\x01\x3a\x00",
        b'{"ir_version": 8}',
        b"\x80\x02}q\x00.",
        b"",
    ],
)
def test_other_content_is_not_claimed(data: bytes) -> None:
    assert formats(scan_bytes(data))[None] != "onnx"


def test_random_bytes_opening_with_the_graph_tag_are_not_claimed() -> None:
    # 0x3a is ModelProto.graph; about 1 random file in 250 starts with it and a length that
    # fits, and used to be reported as a malformed ONNX model (a high finding).
    rng = np.random.default_rng(7)
    for _ in range(200):
        body = rng.integers(0, 256, size=510, dtype=np.uint8).tobytes()
        data = b"\x3a\x5d" + bytes([body[0] | 0x80]) + body[1:]  # graph of 93 bytes, no field
        state = scan_bytes(data)
        assert formats(state)[None] != "onnx"
        assert not state.findings


def test_a_graph_first_model_without_ir_version_is_still_onnx() -> None:
    model = _external_model("/etc/passwd")
    graph_only = onnx.ModelProto(graph=model.graph).SerializeToString()
    assert graph_only[0] == 0x3A
    state = scan_bytes(graph_only)
    assert formats(state) == {None: "onnx"}
    assert "onnx.external-data-outside" in rules(state)
