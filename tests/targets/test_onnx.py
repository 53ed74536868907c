"""OnnxTarget: ONNX models run by onnxruntime as black-box targets."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import mlwarden.targets
from mlwarden.errors import InputError, QueryBudgetExceeded, TargetError, UsageError
from mlwarden.targets.onnx import OnnxTarget

RNG = np.random.default_rng(0)
WEIGHTS = RNG.normal(size=(4, 3)).astype(np.float32)
BIAS = RNG.normal(size=3).astype(np.float32)
SAMPLES = RNG.uniform(size=(10, 4)).astype(np.float32)


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def expected_probabilities(x: np.ndarray) -> np.ndarray:
    return softmax(x.astype(np.float64) @ WEIGHTS + BIAS)


def save_linear(
    path: Path,
    *,
    batch: int | str = "N",
    features: int | str = 4,
    softmax_output: str | None = None,
    zipmap_labels: list[int] | list[str] | None = None,
) -> Path:
    """A linear model ``x @ W + b``: logits, softmax probabilities, or label + ZipMap."""
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["logits"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 3])]
    if softmax_output is not None:
        nodes.append(helper.make_node("Softmax", ["logits"], [softmax_output], axis=1))
        outputs = [helper.make_tensor_value_info(softmax_output, TensorProto.FLOAT, [batch, 3])]
    opsets = [helper.make_opsetid("", 17)]
    if zipmap_labels is not None:
        nodes.append(helper.make_node("Softmax", ["logits"], ["scores"], axis=1))
        nodes.append(helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0))
        labels_attr = (
            {"classlabels_strings": zipmap_labels}
            if isinstance(zipmap_labels[0], str)
            else {"classlabels_int64s": zipmap_labels}
        )
        nodes.append(
            helper.make_node(
                "ZipMap", ["scores"], ["output_probability"], domain="ai.onnx.ml", **labels_attr
            )
        )
        key_type = TensorProto.STRING if isinstance(zipmap_labels[0], str) else TensorProto.INT64
        sequence = helper.make_sequence_type_proto(
            helper.make_map_type_proto(
                key_type, helper.make_tensor_type_proto(TensorProto.FLOAT, [])
            )
        )
        outputs = [
            helper.make_tensor_value_info("label", TensorProto.INT64, [batch]),
            helper.make_value_info("output_probability", sequence),
        ]
        opsets.append(helper.make_opsetid("ai.onnx.ml", 1))
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, features])],
        outputs,
        initializer=[numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "b")],
    )
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def test_logits_output_is_detected_and_softmaxed(tmp_path: Path) -> None:
    target = mlwarden.targets.target(str(save_linear(tmp_path / "m.onnx")))
    assert isinstance(target, OnnxTarget)
    assert (target.n_classes, target.input_shape, target.model_output) == (3, (4,), "logits")
    np.testing.assert_allclose(
        target.predict_proba(SAMPLES), expected_probabilities(SAMPLES), rtol=1e-5
    )


def test_probabilities_output_is_used_as_is(tmp_path: Path) -> None:
    target = OnnxTarget(save_linear(tmp_path / "m.onnx", softmax_output="probabilities"))
    assert target.model_output == "probabilities"
    np.testing.assert_allclose(
        target.predict_proba(SAMPLES), expected_probabilities(SAMPLES), rtol=1e-5
    )


def test_model_output_can_be_forced(tmp_path: Path) -> None:
    path = save_linear(tmp_path / "m.onnx", softmax_output="out")
    target = OnnxTarget(path, model_output="logits")
    np.testing.assert_allclose(
        target.predict_proba(SAMPLES), softmax(expected_probabilities(SAMPLES)), rtol=1e-5
    )
    with pytest.raises(InputError, match="model_output"):
        OnnxTarget(path, model_output="log_probabilities")  # type: ignore[arg-type]


@pytest.mark.parametrize("labels", [[0, 1, 2], ["cat", "dog", "eel"]])
def test_sklearn_style_zipmap_probabilities_are_read_in_class_order(
    tmp_path: Path, labels: list[int] | list[str]
) -> None:
    target = OnnxTarget(save_linear(tmp_path / "m.onnx", zipmap_labels=labels))
    assert target.model_output == "probabilities"
    np.testing.assert_allclose(
        target.predict_proba(SAMPLES), expected_probabilities(SAMPLES), rtol=1e-5
    )


def test_output_name_picks_the_output(tmp_path: Path) -> None:
    path = save_linear(tmp_path / "m.onnx", zipmap_labels=[0, 1, 2])
    with pytest.raises(InputError, match="holds tensor\\(int64\\), not class scores"):
        OnnxTarget(path, output_name="label")
    with pytest.raises(
        InputError, match="no output 'nope'; its outputs: label, output_probability"
    ):
        OnnxTarget(path, output_name="nope")


def test_fixed_batch_models_take_any_number_of_samples(tmp_path: Path) -> None:
    target = OnnxTarget(save_linear(tmp_path / "m.onnx", batch=4), batch_size=3)
    np.testing.assert_allclose(
        target.predict_proba(SAMPLES), expected_probabilities(SAMPLES), rtol=1e-5
    )


def test_dynamic_sample_shape_needs_input_shape(tmp_path: Path) -> None:
    path = save_linear(tmp_path / "m.onnx", features="F")
    with pytest.raises(InputError, match="not fixed; pass input_shape="):
        OnnxTarget(path)
    target = OnnxTarget(path, input_shape=(4,))
    assert target.input_shape == (4,)
    with pytest.raises(TargetError, match="failed to run"):
        OnnxTarget(path, input_shape=(5,))


def test_input_shape_must_fit_a_fixed_model(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not fit"):
        OnnxTarget(save_linear(tmp_path / "m.onnx"), input_shape=(2, 2))


def test_n_classes_is_checked(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="n_classes=4"):
        OnnxTarget(save_linear(tmp_path / "m.onnx"), n_classes=4)


def test_single_score_output_is_a_binary_classifier(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["score"])],
        "binary",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])],
        initializer=[numpy_helper.from_array(WEIGHTS[:, :1], "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "b.onnx")
    target = OnnxTarget(tmp_path / "b.onnx", model_output="logits")
    margin = SAMPLES.astype(np.float64) @ WEIGHTS[:, 0]
    probs = target.predict_proba(SAMPLES)
    assert target.n_classes == 2
    np.testing.assert_allclose(probs[:, 1], 1 / (1 + np.exp(-margin)), rtol=1e-5)


def test_two_inputs_are_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])],
        "two",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 3]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "two.onnx")
    with pytest.raises(InputError, match=r"one floating-point input.*a \(tensor\(float\)\), b"):
        OnnxTarget(tmp_path / "two.onnx")


def test_an_existing_session_is_accepted(tmp_path: Path) -> None:
    session = ort.InferenceSession(
        str(save_linear(tmp_path / "m.onnx")), providers=["CPUExecutionProvider"]
    )
    target = mlwarden.targets.target(session)
    assert isinstance(target, OnnxTarget)
    np.testing.assert_allclose(
        target.predict_proba(SAMPLES[:2]), expected_probabilities(SAMPLES[:2]), rtol=1e-5
    )


def test_missing_and_corrupt_files_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no ONNX model at"):
        OnnxTarget(tmp_path / "absent.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"definitely not protobuf" * 10)
    with pytest.raises(InputError, match="onnxruntime cannot load"):
        OnnxTarget(tmp_path / "junk.onnx")
    with pytest.raises(InputError, match=r"expected an \.onnx path"):
        OnnxTarget(42)


def test_queries_are_counted_per_sample_and_budgeted(tmp_path: Path) -> None:
    target = OnnxTarget(save_linear(tmp_path / "m.onnx"), query_budget=12, batch_size=4)
    assert target.queries == 0  # the probe is not a query
    target.predict_proba(SAMPLES)
    assert target.queries == 10
    with pytest.raises(QueryBudgetExceeded):
        target.predict_proba(SAMPLES[:3])


def test_a_torch_model_exported_to_onnx_agrees_with_torch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).eval()
    path = tmp_path / "torch.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated
        torch.onnx.export(
            model,
            (torch.zeros(1, 4),),
            str(path),
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}},
            dynamo=False,
        )
    target = OnnxTarget(path)
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(SAMPLES)), dim=1).numpy()
    np.testing.assert_allclose(target.predict_proba(SAMPLES), expected, rtol=1e-4, atol=1e-6)


def test_missing_onnxruntime_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "mlwarden.targets.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(UsageError, match=r"pip install mlwarden\[onnx\]"):
        import mlwarden.targets.onnx  # noqa: F401
