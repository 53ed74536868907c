"""Keras models in HDF5 files and .keras archives: Lambda bytecode, foreign modules, unsafe
switches.

Files are built with h5py and zipfile (Keras is not needed); Lambda bytecode is made with
``marshal.dumps`` of a test function, which the scanner must only read as text.
"""

from __future__ import annotations

import base64
import io
import json
import marshal
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from mlwarden.findings import Severity
from mlwarden.scan.keras_config import code_names, inspect_keras_config

from ._models import by_rule, evil_pickle, formats, nothing_high, rules, scan_bytes, scan_path


def _lambda_code(marker: Path) -> str:
    function = eval(f"lambda x: __import__('os').system('touch {marker}')")
    return base64.b64encode(marshal.dumps(function.__code__)).decode()


def _dense(keras3: bool = False) -> dict[str, Any]:
    initializer = {"class_name": "GlorotUniform", "config": {"seed": None}}
    layer: dict[str, Any] = {
        "class_name": "Dense",
        "config": {
            "name": "dense",
            "units": 2,
            "activation": "relu",
            "kernel_initializer": initializer,
        },
    }
    if keras3:
        initializer.update(module="keras.initializers", registered_name=None)
        layer.update(module="keras.layers", registered_name=None)
    return layer


def _sequential(*layers: dict[str, Any], keras3: bool = False) -> dict[str, Any]:
    model: dict[str, Any] = {
        "class_name": "Sequential",
        "config": {"name": "sequential", "layers": list(layers)},
    }
    if keras3:
        model.update(
            module="keras",
            registered_name=None,
            compile_config={
                "optimizer": {
                    "module": "keras.optimizers",
                    "class_name": "Adam",
                    "config": {},
                    "registered_name": None,
                },
                "loss": "mse",
            },
        )
    return model


def _tf_keras_lambda(marker: Path) -> dict[str, Any]:
    return {
        "class_name": "Lambda",
        "config": {
            "name": "sneaky",
            "function": [_lambda_code(marker), None, None],
            "function_type": "lambda",
            "module": "__main__",
            "arguments": {},
        },
    }


def _keras3_lambda(marker: Path) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "Lambda",
        "registered_name": None,
        "config": {
            "name": "sneaky",
            "arguments": {},
            "function": {
                "class_name": "__lambda__",
                "config": {"code": _lambda_code(marker), "defaults": None, "closure": None},
            },
        },
    }


def _h5(
    path: Path,
    model_config: dict[str, Any] | str | None,
    training_config: dict[str, Any] | None = None,
    userblock: bytes = b"",
) -> Path:
    with h5py.File(path, "w", userblock_size=512 if userblock else 0) as f:
        if model_config is not None:
            text = model_config if isinstance(model_config, str) else json.dumps(model_config)
            f.attrs["model_config"] = text
        if training_config is not None:
            f.attrs["training_config"] = json.dumps(training_config).encode()
        f.attrs["keras_version"] = "2.15.0"
        weights = f.create_group("model_weights/dense")
        weights.create_dataset("kernel:0", data=np.ones((4, 2), np.float32))
    if userblock:
        with open(path, "r+b") as f:
            f.write(userblock[:512])
    return path


def _keras_archive(config: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.8.0"}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", b"")
    return buffer.getvalue()


# --- HDF5 ----------------------------------------------------------------------------------


def test_keras_h5_without_lambda_is_clean(tmp_path: Path) -> None:
    path = _h5(
        tmp_path / "m.h5",
        _sequential(_dense()),
        training_config={"loss": "mse", "optimizer_config": {"class_name": "Adam", "config": {}}},
    )
    state = scan_path(path)
    assert formats(state) == {None: "keras-hdf5"}
    assert state.findings == []


def test_weights_only_hdf5_is_clean(tmp_path: Path) -> None:
    state = scan_path(_h5(tmp_path / "w.h5", None))
    assert formats(state) == {None: "hdf5"}
    assert state.findings == []


def test_lambda_layer_in_h5_is_critical_with_names_from_the_bytecode(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = _h5(tmp_path / "m.h5", _sequential(_dense(), _tf_keras_lambda(marker)))
    state = scan_path(path)
    [finding] = by_rule(state, "keras.lambda-layer")
    assert finding.severity is Severity.CRITICAL
    assert finding.evidence["layer"] == "sneaky"
    assert {"system", "__import__"} <= set(finding.evidence["suspicious_names"])
    assert f"touch {marker}" in finding.evidence["strings_in_code"]
    assert "CVE-2025-9905" in finding.evidence["cve"]
    assert finding.evidence["origin"] == "HDF5 root attribute 'model_config'"
    assert "keras.arbitrary-module" not in rules(state)
    assert not marker.exists()


def test_config_stored_as_bytes_is_read(tmp_path: Path) -> None:
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = np.bytes_(json.dumps(_sequential(_tf_keras_lambda(tmp_path))))
    assert "keras.lambda-layer" in rules(scan_path(path))


def test_training_config_is_analysed(tmp_path: Path) -> None:
    loss = {
        "module": "subprocess",
        "class_name": "function",
        "config": "getoutput",
        "registered_name": "getoutput",
    }
    path = _h5(tmp_path / "m.h5", _sequential(_dense()), training_config={"loss": loss})
    finding = by_rule(scan_path(path), "keras.arbitrary-module")[0]
    assert finding.evidence["origin"] == "HDF5 root attribute 'training_config'"


def test_hdf5_inside_an_archive_is_read_without_a_path(tmp_path: Path) -> None:
    path = _h5(tmp_path / "m.h5", _sequential(_tf_keras_lambda(tmp_path / "marker")))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(path, "inner/model.h5")
    state = scan_bytes(buffer.getvalue())
    assert formats(state)["inner/model.h5"] == "keras-hdf5"
    assert "keras.lambda-layer" in rules(state)


def test_pickle_in_the_user_block_is_found(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    payload = (b"\x80\x02" + evil_pickle(marker)).ljust(512, b"\0")
    path = _h5(tmp_path / "poly.h5", _sequential(_dense()), userblock=payload)
    state = scan_path(path)
    assert formats(state)[None] == "keras-hdf5"
    assert "<hdf5-userblock>" in formats(state)
    assert any(f.severity is Severity.CRITICAL for f in state.findings)
    assert not marker.exists()


def test_corrupt_hdf5_is_high_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    state = scan_path(path)
    assert [f.severity for f in by_rule(state, "hdf5.malformed")] == [Severity.HIGH]
    assert state.errors == []


def test_model_config_that_is_not_json_is_medium(tmp_path: Path) -> None:
    state = scan_path(_h5(tmp_path / "m.h5", "{not json"))
    assert [f.severity for f in by_rule(state, "keras.unparseable-config")] == [Severity.MEDIUM]


# --- .keras archives (config.json reaches the JSON handler) -------------------------------


def test_keras3_archive_without_lambda_is_clean() -> None:
    state = scan_bytes(_keras_archive(_sequential(_dense(keras3=True), keras3=True)))
    assert formats(state)["config.json"] == "keras-config"
    assert state.findings == []


def test_keras3_lambda_in_archive_is_critical(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    state = scan_bytes(_keras_archive(_sequential(_keras3_lambda(marker), keras3=True)))
    [finding] = by_rule(state, "keras.lambda-layer")
    assert finding.location is not None and finding.location.member == "config.json"
    assert "system" in finding.evidence["suspicious_names"]
    assert "CVE-2025-9905" not in finding.evidence["cve"]
    assert not marker.exists()


def test_cve_2025_1550_function_from_any_module_is_critical() -> None:
    dense = _dense(keras3=True)
    dense["config"]["activation"] = {
        "module": "os",
        "class_name": "function",
        "config": "system",
        "registered_name": "system",
    }
    state = scan_bytes(_keras_archive(_sequential(dense, keras3=True)))
    [finding] = by_rule(state, "keras.arbitrary-module")
    assert finding.severity is Severity.CRITICAL
    assert finding.evidence["target"] == "os.system"
    assert finding.evidence["cve"] == "CVE-2025-1550"


def test_cve_2025_9906_unsafe_switch_is_critical() -> None:
    switch = {
        "module": "keras.config",
        "class_name": "function",
        "config": "enable_unsafe_deserialization",
        "registered_name": None,
    }
    config = _sequential(_dense(keras3=True), keras3=True)
    config["config"]["layers"][0]["config"]["activation"] = switch
    state = scan_bytes(_keras_archive(config))
    [finding] = by_rule(state, "keras.unsafe-deserialization")
    assert finding.severity is Severity.CRITICAL
    assert finding.evidence["cve"] == "CVE-2025-9906"


# --- the config analysis itself -------------------------------------------------------------


def test_class_from_a_foreign_module_is_high() -> None:
    [issue] = inspect_keras_config(
        {"module": "somepkg.layers", "class_name": "Thing", "config": {}, "registered_name": None}
    )
    assert issue.rule == "keras.arbitrary-module"
    assert issue.severity is Severity.HIGH


def test_class_from_a_dangerous_module_is_critical() -> None:
    [issue] = inspect_keras_config(
        {"module": "subprocess", "class_name": "Popen", "config": {}, "registered_name": None}
    )
    assert issue.severity is Severity.CRITICAL


def test_registered_custom_object_is_medium() -> None:
    layer = {
        "module": "my_project.layers",
        "class_name": "Residual",
        "config": {},
        "registered_name": "MyProject>Residual",
    }
    [issue] = inspect_keras_config(_sequential(layer, keras3=True))
    assert issue.rule == "keras.custom-object"
    assert issue.severity is Severity.MEDIUM
    assert issue.evidence["registered_name"] == "MyProject>Residual"


def test_registered_name_does_not_excuse_a_dangerous_module() -> None:
    [issue] = inspect_keras_config(
        {"module": "os", "class_name": "system", "config": {}, "registered_name": "Custom>system"}
    )
    assert issue.rule == "keras.arbitrary-module"
    assert issue.severity is Severity.CRITICAL


def test_keras_packages_are_not_foreign() -> None:
    config = {
        "module": "keras_hub.src.models",
        "class_name": "Backbone",
        "config": {
            "inner": {
                "module": "keras.src.layers",
                "class_name": "Dense",
                "config": {},
                "registered_name": "keras_hub>Thing",
            }
        },
        "registered_name": "keras_nlp>X",
    }
    assert inspect_keras_config(config) == []


def test_lambda_by_function_reference_names_the_function() -> None:
    layer = {
        "class_name": "Lambda",
        "config": {
            "name": "ref",
            "function": "system",
            "function_type": "function",
            "module": "os",
        },
    }
    [issue] = inspect_keras_config(_sequential(layer))
    assert issue.rule == "keras.lambda-layer"
    assert issue.evidence["function"] == "os.system"


def test_standalone_serialized_lambda_is_critical(tmp_path: Path) -> None:
    activation = {"class_name": "__lambda__", "config": {"code": _lambda_code(tmp_path)}}
    dense = _dense(keras3=True)
    dense["config"]["activation"] = activation
    [issue] = inspect_keras_config(_sequential(dense, keras3=True))
    assert issue.rule == "keras.lambda-layer"
    assert "system" in issue.evidence["suspicious_names"]


def test_tf_op_lambda_is_info() -> None:
    layer = {"class_name": "TFOpLambda", "config": {"name": "tf.math.add", "function": "math.add"}}
    [issue] = inspect_keras_config(_sequential(layer))
    assert issue.rule == "keras.tf-op-lambda"
    assert issue.severity is Severity.INFO


@pytest.mark.parametrize("code", ["not base64 !!!", "", None, 12, ["x"]])
def test_odd_lambda_payloads_do_not_crash(code: object) -> None:
    layer = {"class_name": "Lambda", "config": {"function": [code, None, None]}}
    [issue] = inspect_keras_config(layer)
    assert issue.severity is Severity.CRITICAL


def test_odd_shapes_of_config_do_not_crash() -> None:
    weird: list[Any] = [
        {"class_name": ["x"], "module": 5, "registered_name": {"a": 1}},
        {"class_name": {"x": 1}, "config": None},
        "enable_unsafe_",
    ]
    assert inspect_keras_config(weird) == []


def test_code_names_reads_identifiers_without_unmarshalling(tmp_path: Path) -> None:
    names = code_names(base64.b64decode(_lambda_code(tmp_path)))
    assert {"os", "system", "__import__"} <= set(names)


def test_benign_keras_h5_gate_passes(tmp_path: Path) -> None:
    state = scan_path(_h5(tmp_path / "m.h5", _sequential(_dense(), _dense())))
    assert nothing_high(state)
