"""load_target: models from files and URLs, recognised by content, vetted by the scanner first."""

from __future__ import annotations

import os
import pickle
import random
import shlex
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mlwarden.errors import UsageError
from mlwarden.targets.http import HttpTarget
from mlwarden.targets.loading import load_target
from mlwarden.targets.sklearn import SklearnTarget

SAMPLES = np.random.default_rng(0).uniform(size=(7, 4)).astype(np.float32)
FACTORY_MODULE = "mlwarden_test_factories"
FACTORY_SOURCE = """
import torch


def build():
    torch.manual_seed(123)  # different weights from the saved ones: loading must replace them
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def build_deeper():
    layers = [torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(3, 3))


def build_wider():
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def broken():
    raise RuntimeError("needs a GPU")


def not_a_module():
    return 3


ANSWER = 42
"""


class Unlisted:
    """A class no allowlist knows: pickling one makes the scanner flag the file."""


class RunsShell:
    """Pickles as ``os.system('touch <marker>')``: the payload creates the marker, nothing else."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


@pytest.fixture(scope="module")
def iris_model() -> LogisticRegression:
    x, y = load_iris(return_X_y=True)
    x = (x - x.min(axis=0)) / (x.max(axis=0) - x.min(axis=0))
    return LogisticRegression(max_iter=500).fit(x, y)


@pytest.fixture
def torch_model() -> Any:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A module of model factories in the working folder, as a user's project would have."""
    pytest.importorskip("torch")
    (tmp_path / f"{FACTORY_MODULE}.py").write_text(FACTORY_SOURCE)
    monkeypatch.chdir(tmp_path)
    sys.modules.pop(FACTORY_MODULE, None)
    yield tmp_path
    sys.modules.pop(FACTORY_MODULE, None)


def torch_probabilities(model: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()


# -- scikit-learn: pickle, joblib, skops -----------------------------------------------------


@pytest.mark.parametrize(
    "save",
    [
        joblib.dump,
        lambda model, path: joblib.dump(model, path, compress=3),
        lambda model, path: path.write_bytes(pickle.dumps(model, protocol=0)),
    ],
    ids=["joblib", "joblib-zlib", "pickle-protocol-0"],
)
def test_a_clean_sklearn_pickle_loads(
    tmp_path: Path, iris_model: LogisticRegression, save: Callable[[Any, Path], Any]
) -> None:
    path = tmp_path / "model.anything"
    save(iris_model, path)
    target = load_target(path)
    assert isinstance(target, SklearnTarget)
    assert (target.input_shape, target.n_classes, target.name) == ((4,), 3, "model.anything")
    np.testing.assert_allclose(
        target.predict_proba(SAMPLES), iris_model.predict_proba(SAMPLES), rtol=1e-5
    )


def test_a_pickle_with_a_payload_is_refused_and_never_run(
    tmp_path: Path, iris_model: LogisticRegression
) -> None:
    marker = tmp_path / "PAYLOAD_RAN"
    path = tmp_path / "model.joblib"
    joblib.dump({"model": iris_model, "extra": RunsShell(marker)}, path)
    with pytest.raises(UsageError, match="refuses to load a file its own scanner flags") as caught:
        load_target(path)
    message = str(caught.value)
    assert "critical" in message and "system" in message and "mlwarden scan" in message
    assert caught.value.exit_code == 4
    assert not marker.exists()


@pytest.mark.slow
def test_the_refused_payload_is_real(tmp_path: Path, iris_model: LogisticRegression) -> None:
    marker = tmp_path / "PAYLOAD_RAN"
    path = tmp_path / "model.joblib"
    joblib.dump({"model": iris_model, "extra": RunsShell(marker)}, path)
    subprocess.run(
        [sys.executable, "-c", "import joblib, sys; joblib.load(sys.argv[1])", str(path)],
        check=True,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
    )
    assert marker.exists()


def test_a_pickle_of_an_unlisted_class_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(Unlisted()))
    with pytest.raises(
        UsageError, match=r"medium finding.*Unlisted, which is not on the allowlist"
    ):
        load_target(path)


def test_a_policy_can_allow_what_the_scanner_would_flag(tmp_path: Path) -> None:
    from mlwarden.scan.policy import Policy

    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(Unlisted()))
    allowed = Policy(allow=frozenset({f"{__name__}.Unlisted"}))
    with pytest.raises(UsageError, match="holds a Unlisted, not a scikit-learn estimator"):
        load_target(path, policy=allowed)


@pytest.mark.slow
def test_a_skops_file_loads(tmp_path: Path, iris_model: LogisticRegression) -> None:
    skops_io = pytest.importorskip("skops.io")
    path = tmp_path / "model.skops"
    skops_io.dump(iris_model, path)
    target = load_target(path)
    assert isinstance(target, SklearnTarget)
    np.testing.assert_allclose(
        target.predict_proba(SAMPLES), iris_model.predict_proba(SAMPLES), rtol=1e-5
    )


@pytest.mark.slow
def test_a_skops_file_with_foreign_types_is_refused(tmp_path: Path) -> None:
    skops_io = pytest.importorskip("skops.io")
    x, y = load_iris(return_X_y=True)
    path = tmp_path / "model.skops"
    skops_io.dump(CustomClassifier(max_iter=300).fit(x, y), path)
    with pytest.raises(
        UsageError, match=rf"types outside scikit-learn.*{__name__}.CustomClassifier"
    ):
        load_target(path)


class CustomClassifier(LogisticRegression):
    """A user's subclass: skops does not trust it, and neither does mlwarden."""


def test_torch_options_are_refused_for_sklearn_models(
    tmp_path: Path, iris_model: LogisticRegression
) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(iris_model, path)
    with pytest.raises(UsageError, match="mean, model_output cannot be used with a pickle"):
        load_target(path, mean=0.5, model_output="logits")


# -- PyTorch ---------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TorchScript is deprecated upstream
def test_torchscript_is_recognised_by_content_and_needs_an_input_shape(
    tmp_path: Path, torch_model: Any
) -> None:
    import torch

    path = tmp_path / "model.bin"
    torch.jit.script(torch_model).save(str(path))
    with pytest.raises(UsageError, match=r"TorchScript archive.*pass --input-shape"):
        load_target(path)
    target = load_target(path, input_shape=(4,))
    assert target.white_box and target.n_classes == 3
    np.testing.assert_allclose(
        target.predict_proba(SAMPLES), torch_probabilities(torch_model, SAMPLES), rtol=1e-5
    )


@pytest.mark.slow
@pytest.mark.parametrize("dynamic", [False, True], ids=["fixed-batch", "dynamic-batch"])
def test_torch_export_archives_load_with_their_input_shape(
    tmp_path: Path, torch_model: Any, dynamic: bool
) -> None:
    import torch

    shapes = {"input": {0: torch.export.Dim("batch")}} if dynamic else None
    program = torch.export.export(torch_model, (torch.zeros(3, 4),), dynamic_shapes=shapes)
    path = tmp_path / "model.pt2"
    torch.export.save(program, str(path))
    target = load_target(path)
    assert target.input_shape == (4,)
    with pytest.raises(UsageError, match=r"exported for samples of shape \(4,\), not \(2, 2\)"):
        load_target(path, input_shape=(2, 2))
    np.testing.assert_allclose(
        target.predict_proba(SAMPLES), torch_probabilities(torch_model, SAMPLES), rtol=1e-5
    )
    x = torch.from_numpy(SAMPLES).requires_grad_(True)
    (gradient,) = torch.autograd.grad(target.logits(x)[:, 0].sum(), x)  # type: ignore[attr-defined]
    assert gradient.shape == x.shape and bool(gradient.abs().sum() > 0)


@pytest.mark.parametrize("weights", ["safetensors", "state-dict"])
def test_a_factory_and_weights_rebuild_the_model(
    factories: Path, torch_model: Any, weights: str
) -> None:
    import torch

    path = factories / "weights.data"
    if weights == "safetensors":
        from safetensors.torch import save_file

        save_file(torch_model.state_dict(), str(path))
    else:
        torch.save(torch_model.state_dict(), path)
    path_before = list(sys.path)
    target = load_target(path, factory=f"{FACTORY_MODULE}:build", input_shape=(4,))
    assert sys.path == path_before
    np.testing.assert_allclose(
        target.predict_proba(SAMPLES), torch_probabilities(torch_model, SAMPLES), rtol=1e-5
    )


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("no_colon_here", "must look like package.module:function"),
        ("mlwarden_no_such_module:build", "cannot import mlwarden_no_such_module for --factory"),
        (f"{FACTORY_MODULE}:missing", f"{FACTORY_MODULE} has no missing"),
        (f"{FACTORY_MODULE}:ANSWER", "is a int, not a function"),
        (
            f"{FACTORY_MODULE}:broken",
            "raised RuntimeError: needs a GPU; it is called with no arguments",
        ),
        (f"{FACTORY_MODULE}:not_a_module", "returned a int; it must return a torch.nn.Module"),
        (
            f"{FACTORY_MODULE}:build_deeper",
            r"do not fit the model .* builds: missing 4\.weight, 4\.bias$",
        ),
        (f"{FACTORY_MODULE}:build_wider", "do not fit the model.*size mismatch"),
    ],
)
def test_factory_errors_are_clear(
    factories: Path, torch_model: Any, factory: str, message: str
) -> None:
    import torch

    path = factories / "weights.pt"
    torch.save(torch_model.state_dict(), path)
    with pytest.raises(UsageError, match=message):
        load_target(path, factory=factory, input_shape=(4,))


def test_weights_without_a_factory_ask_for_one(tmp_path: Path, torch_model: Any) -> None:
    import torch

    path = tmp_path / "weights.pt"
    torch.save(torch_model.state_dict(), path)
    with pytest.raises(UsageError, match="holds weights only; pass --factory"):
        load_target(path)


def test_factory_models_need_an_input_shape(factories: Path, torch_model: Any) -> None:
    import torch

    path = factories / "weights.pt"
    torch.save(torch_model.state_dict(), path)
    with pytest.raises(UsageError, match="--input-shape"):
        load_target(path, factory=f"{FACTORY_MODULE}:build")


def test_a_pickled_module_is_not_a_state_dict(factories: Path, torch_model: Any) -> None:
    import torch

    path = factories / "whole.pt"
    torch.save(torch_model, path)
    with pytest.raises(UsageError, match=r"refuses to load|not a plain state dict"):
        load_target(path, factory=f"{FACTORY_MODULE}:build", input_shape=(4,))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_factory_with_a_complete_model_file_is_refused(tmp_path: Path, torch_model: Any) -> None:
    import torch

    path = tmp_path / "model.ts"
    torch.jit.script(torch_model).save(str(path))
    with pytest.raises(UsageError, match="TorchScript archive: load it without --factory"):
        load_target(path, factory="anything:build", input_shape=(4,))


# -- ONNX and endpoints ----------------------------------------------------------------------


def test_an_onnx_model_is_recognised_by_content(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["logits"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "model.weights"
    onnx.save(model, path)
    target = load_target(path)
    scores = SAMPLES.astype(np.float64) @ weights
    expected = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(target.predict_proba(SAMPLES), expected, rtol=1e-5)
    with pytest.raises(UsageError, match="mean, std cannot be used with an ONNX model"):
        load_target(path, mean=0.5, std=0.2)


def test_a_url_becomes_an_http_target() -> None:
    target = load_target(
        "http://127.0.0.1:9/predict",
        input_shape=(4,),
        n_classes=3,
        output="probabilities",
        timeout_s=1.0,
        query_budget=5,
    )
    assert isinstance(target, HttpTarget)
    assert (target.timeout_s, target.query_budget) == (1.0, 5)
    with pytest.raises(UsageError, match="--input-shape"):
        load_target("https://example.invalid/predict")
    with pytest.raises(UsageError, match="factory cannot be used with an http"):
        load_target("http://127.0.0.1:9/predict", factory="a:b", input_shape=(4,))


def test_endpoint_options_are_refused_for_files(
    tmp_path: Path, iris_model: LogisticRegression
) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(iris_model, path)
    with pytest.raises(UsageError, match="timeout_s: only for http"):
        load_target(path, timeout_s=3)


# -- what is not a model -----------------------------------------------------------------------


def test_missing_files_and_folders_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no model file at"):
        load_target(tmp_path / "absent.pt")
    with pytest.raises(UsageError, match="is not a file"):
        load_target(tmp_path)


@pytest.mark.parametrize(
    ("content", "detected"),
    [
        (random.Random(0).randbytes(512), "nothing mlwarden recognises"),
        (b"just some notes\n" * 10, "nothing mlwarden recognises"),
    ],
)
def test_unknown_files_say_what_was_detected(tmp_path: Path, content: bytes, detected: str) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(
        UsageError, match=f"not a model file mlwarden can load \\(detected: {detected}\\)"
    ):
        load_target(path)


def test_a_numpy_array_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, SAMPLES)
    with pytest.raises(UsageError, match=r"detected: numpy"):
        load_target(path)


def test_an_unknown_zip_lists_its_members(tmp_path: Path) -> None:
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("README.txt", "hello")
    with pytest.raises(UsageError, match=r"zip archive \(README.txt\) but not a TorchScript"):
        load_target(path)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_truncated_torchscript_is_a_usage_error(tmp_path: Path, torch_model: Any) -> None:
    import torch

    path = tmp_path / "model.pt"
    torch.jit.script(torch_model).save(str(path))
    with zipfile.ZipFile(path) as archive, zipfile.ZipFile(tmp_path / "cut.pt", "w") as cut:
        for info in archive.infolist():
            if not info.filename.endswith("data.pkl"):
                cut.writestr(info, archive.read(info))
    with pytest.raises(UsageError, match=r"torch\.jit\.load cannot read"):
        load_target(tmp_path / "cut.pt", input_shape=(4,))
