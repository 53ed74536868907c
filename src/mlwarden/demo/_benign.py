"""Benign corpus samples: real files written by the real frameworks.

These are what a scanner must pass at its default gate: PyTorch state dicts, checkpoints and
whole-module pickles, scikit-learn estimators and pipelines (pickle and joblib, compressed or
not), NumPy arrays, plain Python containers at every protocol, safetensors, ONNX, GGUF, Keras
files without Lambda layers and a Hugging Face folder. Frameworks are imported inside each
builder, so a missing one only skips its samples. Models are tiny and trained in milliseconds on
scikit-learn's bundled iris data or seeded random tensors. Not for: malicious samples.
"""

from __future__ import annotations

import collections
import datetime
import io
import json
import pickle
import warnings
from pathlib import Path
from typing import Any

from mlwarden.demo import _containers as box
from mlwarden.demo._registry import BuildContext, benign

_CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# -- PyTorch ---------------------------------------------------------------------------------------


def _torch() -> Any:
    import torch

    torch.manual_seed(0)
    return torch


def _small_cnn(torch: Any) -> Any:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.1),
        nn.Linear(8 * 4 * 4, 10),
    )


def _one_training_step(torch: Any, model: Any, optimizer: Any) -> float:
    inputs = torch.randn(4, 3, 8, 8)
    targets = torch.tensor([0, 1, 2, 3])
    loss = torch.nn.functional.cross_entropy(model(inputs), targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.item())


@benign(
    "torch/state-dict",
    format="pytorch-zip",
    file="state_dict.pt",
    description="`torch.save(model.state_dict())` of a small CNN (zip format).",
    needs=("torch",),
)
def _state_dict(ctx: BuildContext) -> None:
    torch = _torch()
    torch.save(_small_cnn(torch).state_dict(), ctx.path)


@benign(
    "torch/whole-module",
    format="pytorch-zip",
    file="whole_model.pt",
    description="`torch.save(model)`: the whole nn.Sequential of Conv2d, BatchNorm2d, ReLU, "
    "MaxPool2d, Flatten, Dropout and Linear pickled as objects.",
    needs=("torch",),
)
def _whole_module(ctx: BuildContext) -> None:
    torch = _torch()
    torch.save(_small_cnn(torch), ctx.path)


@benign(
    "torch/legacy-format",
    format="pytorch-legacy",
    file="legacy_state_dict.pt",
    description="A state dict saved with `_use_new_zipfile_serialization=False` (several "
    "pickles followed by raw storage bytes).",
    needs=("torch",),
)
def _legacy_format(ctx: BuildContext) -> None:
    torch = _torch()
    torch.save(_small_cnn(torch).state_dict(), ctx.path, _use_new_zipfile_serialization=False)


@benign(
    "torch/checkpoint-adam",
    format="pytorch-zip",
    file="checkpoint_adam.pt",
    description="A training checkpoint: model and Adam optimizer state after one step, epoch, "
    "loss and a config dict.",
    needs=("torch",),
)
def _checkpoint_adam(ctx: BuildContext) -> None:
    torch = _torch()
    model = _small_cnn(torch)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    loss = _one_training_step(torch, model, optimizer)
    torch.save(
        {
            "epoch": 3,
            "model_state_dict": model.state_dict(),
            "optimizer_state_dict": optimizer.state_dict(),
            "loss": loss,
            "config": {"lr": 1e-3, "batch_size": 4, "layers": [8, 10], "amp": False},
        },
        ctx.path,
    )


@benign(
    "torch/checkpoint-sgd-scheduler",
    format="pytorch-zip",
    file="checkpoint_sgd.pt",
    description="A checkpoint with SGD (momentum) and StepLR scheduler states.",
    needs=("torch",),
)
def _checkpoint_sgd(ctx: BuildContext) -> None:
    torch = _torch()
    model = _small_cnn(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    _one_training_step(torch, model, optimizer)
    scheduler.step()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": 1,
        },
        ctx.path,
    )


@benign(
    "torch/tensor-dtypes",
    format="pytorch-zip",
    file="tensor_dtypes.pt",
    description="Tensors of many dtypes: bfloat16, float16, float64, int8, uint8, int64, bool, "
    "complex64, plus a non-contiguous view.",
    needs=("torch",),
)
def _tensor_dtypes(ctx: BuildContext) -> None:
    torch = _torch()
    base = torch.randn(4, 4)
    torch.save(
        {
            "bf16": base.to(torch.bfloat16),
            "f16": base.to(torch.float16),
            "f64": base.to(torch.float64),
            "i8": (base * 10).to(torch.int8),
            "u8": torch.arange(16, dtype=torch.uint8),
            "i64": torch.arange(5),
            "bool": base > 0,
            "c64": torch.complex(base, -base),
            "view": base.t()[1:3],
        },
        ctx.path,
    )


@benign(
    "torch/parameters",
    format="pytorch-zip",
    file="parameters.pt",
    description="`torch.nn.Parameter` objects, with and without requires_grad.",
    needs=("torch",),
)
def _parameters(ctx: BuildContext) -> None:
    torch = _torch()
    torch.save(
        {
            "scale": torch.nn.Parameter(torch.ones(3)),
            "embedding": torch.nn.Parameter(torch.randn(4, 2), requires_grad=False),
        },
        ctx.path,
    )


@benign(
    "torch/tar-gz-state-dict",
    format="gzip",
    file="model.tar.gz",
    description="A .tar.gz holding a torch.save state dict, as model registries ship them.",
    needs=("torch",),
)
def _tar_gz_state_dict(ctx: BuildContext) -> bytes:
    torch = _torch()
    buffer = io.BytesIO()
    torch.save(_small_cnn(torch).state_dict(), buffer)
    return box.tar_bytes([("model/pytorch_model.bin", buffer.getvalue())], gzip=True)


# -- scikit-learn ----------------------------------------------------------------------------------


def _iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return data.data, data.target


@benign(
    "sklearn/logistic-regression-pickle",
    format="pickle",
    file="logistic_regression.pkl",
    description="A fitted LogisticRegression written with pickle.dumps.",
    needs=("scikit-learn",),
)
def _logistic_regression(ctx: BuildContext) -> bytes:
    from sklearn.linear_model import LogisticRegression

    features, labels = _iris()
    return pickle.dumps(LogisticRegression(max_iter=300).fit(features, labels))


def _random_forest() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    features, labels = _iris()
    return RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(features, labels)


@benign(
    "sklearn/random-forest-joblib",
    format="joblib",
    file="random_forest.joblib",
    description="A RandomForestClassifier written with joblib.dump (tree arrays inlined).",
    needs=("scikit-learn", "joblib"),
)
def _forest_joblib(ctx: BuildContext) -> None:
    import joblib

    joblib.dump(_random_forest(), ctx.path)


@benign(
    "sklearn/random-forest-joblib-zlib",
    format="zlib",
    file="random_forest_zlib.joblib",
    description="The same forest with joblib compress=3 (zlib).",
    needs=("scikit-learn", "joblib"),
)
def _forest_zlib(ctx: BuildContext) -> None:
    import joblib

    joblib.dump(_random_forest(), ctx.path, compress=3)


@benign(
    "sklearn/random-forest-joblib-lzma",
    format="lzma",
    file="random_forest_lzma.joblib",
    description="The same forest with joblib compress=('lzma', 3).",
    needs=("scikit-learn", "joblib"),
)
def _forest_lzma(ctx: BuildContext) -> None:
    import joblib

    joblib.dump(_random_forest(), ctx.path, compress=("lzma", 3))


@benign(
    "sklearn/pipeline-scaler-pca-svc",
    format="joblib",
    file="pipeline.joblib",
    description="Pipeline(StandardScaler, PCA, SVC) fitted and written with joblib.",
    needs=("scikit-learn", "joblib"),
)
def _pipeline(ctx: BuildContext) -> None:
    import joblib
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    features, labels = _iris()
    pipeline = Pipeline([("scale", StandardScaler()), ("pca", PCA(n_components=2)), ("svc", SVC())])
    joblib.dump(pipeline.fit(features, labels), ctx.path)


@benign(
    "sklearn/gradient-boosting",
    format="pickle",
    file="gradient_boosting.pkl",
    description="A GradientBoostingClassifier (arrays of regression trees) pickled.",
    needs=("scikit-learn",),
)
def _gradient_boosting(ctx: BuildContext) -> bytes:
    from sklearn.ensemble import GradientBoostingClassifier

    features, labels = _iris()
    model = GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0)
    return pickle.dumps(model.fit(features, labels))


@benign(
    "sklearn/mlp",
    format="pickle",
    file="mlp.pkl",
    description="An MLPClassifier (weights, biases and Adam optimizer state) pickled.",
    needs=("scikit-learn",),
)
def _mlp(ctx: BuildContext) -> bytes:
    from sklearn.neural_network import MLPClassifier

    features, labels = _iris()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a 50-iteration fit does not converge, by design
        model = MLPClassifier(hidden_layer_sizes=(16,), max_iter=50, random_state=0)
        return pickle.dumps(model.fit(features, labels))


@benign(
    "sklearn/random-state-and-generator",
    format="pickle",
    file="random_state.pkl",
    description="An estimator holding a numpy RandomState, next to a numpy Generator: the bit "
    "generator constructors numpy pickles with.",
    needs=("scikit-learn", "numpy"),
)
def _random_state(ctx: BuildContext) -> bytes:
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    features, labels = _iris()
    forest = RandomForestClassifier(n_estimators=3, random_state=np.random.RandomState(0))
    return pickle.dumps({"model": forest.fit(features, labels), "rng": np.random.default_rng(0)})


# -- NumPy -----------------------------------------------------------------------------------------


@benign(
    "numpy/npy-float",
    format="numpy",
    file="weights.npy",
    description="A float32 .npy written by numpy.save.",
    needs=("numpy",),
)
def _npy_float(ctx: BuildContext) -> None:
    import numpy as np

    np.save(ctx.path, np.arange(12, dtype=np.float32).reshape(3, 4))


@benign(
    "numpy/npz",
    format="npz",
    file="weights.npz",
    description="An .npz of numeric arrays written by numpy.savez_compressed.",
    needs=("numpy",),
)
def _npz(ctx: BuildContext) -> None:
    import numpy as np

    np.savez_compressed(
        ctx.path, w=np.ones((8, 8), dtype=np.float32), b=np.arange(8, dtype=np.int64)
    )


@benign(
    "numpy/object-array-plain",
    format="numpy",
    file="labels_object.npy",
    description="An object-dtype .npy of plain strings, ints, floats and None (a pickle, but "
    "only of builtins).",
    needs=("numpy",),
)
def _npy_object_plain(ctx: BuildContext) -> None:
    import numpy as np

    values = np.array(["cat", 1, "dog", 2.5, None], dtype=object)
    np.save(ctx.path, values, allow_pickle=True)


# -- plain Python ----------------------------------------------------------------------------------


def _plain_containers() -> dict[str, Any]:
    return {
        "name": "tiny",
        "layers": [4, 8, 2],
        "lr": 0.001,
        "flags": (True, False, None),
        "ids": {3, 1, 2},
        "frozen": frozenset({7, 9}),
        "blob": b"\x00\x01weights",
        "nested": {"x": [1.5, -2], "big": 2**70},
    }


def _register_containers(protocol: int) -> None:
    @benign(
        f"python/containers-p{protocol}",
        format="pickle",
        file=f"containers_p{protocol}.pkl",
        description=f"Plain dict/list/tuple/set/frozenset/bytes/int/float pickled at protocol "
        f"{protocol}"
        + (
            " (bytes and sets go through `_codecs.encode` and `builtins.set`)"
            if protocol < 3
            else ""
        )
        + ".",
    )
    def _containers(ctx: BuildContext) -> bytes:
        return pickle.dumps(_plain_containers(), protocol=protocol)


for _protocol in range(6):
    _register_containers(_protocol)


@benign(
    "python/collections-datetime",
    format="pickle",
    file="collections_datetime.pkl",
    description="OrderedDict, Counter, defaultdict(list), deque, datetime, date and timedelta.",
)
def _collections(ctx: BuildContext) -> bytes:
    data = {
        "ordered": collections.OrderedDict([("a", 1), ("b", 2)]),
        "counts": collections.Counter("abracadabra"),
        "groups": collections.defaultdict(list, {"k": [1, 2]}),
        "window": collections.deque([1, 2, 3], maxlen=5),
        "when": datetime.datetime(2024, 1, 1, 12, 30),
        "day": datetime.date(2024, 1, 1),
        "delta": datetime.timedelta(days=1, seconds=5),
    }
    return pickle.dumps(data)


# -- safetensors, ONNX, GGUF, Keras, Hugging Face --------------------------------------------------


@benign(
    "safetensors/numpy",
    format="safetensors",
    file="numpy.safetensors",
    description="safetensors.numpy.save_file of float32/float16/int64 arrays with metadata.",
    needs=("safetensors", "numpy"),
)
def _safetensors_numpy(ctx: BuildContext) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    tensors: dict[str, Any] = {
        "w": np.ones((4, 4), dtype=np.float32),
        "h": np.zeros(4, dtype=np.float16),
        "ids": np.arange(6, dtype=np.int64),
    }
    save_file(tensors, str(ctx.path), metadata={"format": "np"})


@benign(
    "safetensors/torch",
    format="safetensors",
    file="torch.safetensors",
    description="safetensors.torch.save_file of a CNN state dict (bf16 included).",
    needs=("safetensors", "torch"),
)
def _safetensors_torch(ctx: BuildContext) -> None:
    from safetensors.torch import save_file

    torch = _torch()
    tensors = {k: v.contiguous() for k, v in _small_cnn(torch).state_dict().items()}
    tensors["extra_bf16"] = torch.randn(3, 3).to(torch.bfloat16)
    save_file(tensors, str(ctx.path), metadata={"format": "pt"})


def _onnx_mlp() -> Any:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    initializers = [
        numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), "W1"),
        numpy_helper.from_array(np.zeros(8, dtype=np.float32), "B1"),
        numpy_helper.from_array(rng.standard_normal((8, 3)).astype(np.float32), "W2"),
        numpy_helper.from_array(np.zeros(3, dtype=np.float32), "B2"),
    ]
    nodes = [
        helper.make_node("MatMul", ["X", "W1"], ["H0"]),
        helper.make_node("Add", ["H0", "B1"], ["H1"]),
        helper.make_node("Relu", ["H1"], ["H2"]),
        helper.make_node("MatMul", ["H2", "W2"], ["L0"]),
        helper.make_node("Add", ["L0", "B2"], ["L1"]),
        helper.make_node("Softmax", ["L1"], ["Y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 3])],
        initializer=initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@benign(
    "onnx/mlp",
    format="onnx",
    file="mlp.onnx",
    description="A two-layer MLP built with onnx.helper, checked by onnx.checker.",
    needs=("onnx", "numpy"),
)
def _onnx(ctx: BuildContext) -> None:
    import onnx

    model = _onnx_mlp()
    onnx.checker.check_model(model)
    onnx.save_model(model, str(ctx.path))


@benign(
    "gguf/chatml-template",
    format="gguf",
    file="chat.gguf",
    description="A GGUF file written by gguf.GGUFWriter with a ChatML chat template and one "
    "tensor.",
    needs=("gguf", "numpy"),
)
def _gguf(ctx: BuildContext) -> None:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(ctx.path), "llama")
    writer.add_name("tiny-chat")
    writer.add_context_length(128)
    writer.add_chat_template(_CHATML_TEMPLATE)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _keras_dense_weights(handle: Any) -> None:
    import numpy as np

    for name, shape in (("dense", (4, 8)), ("dense_1", (8, 2))):
        group = handle.create_group(name).create_group(name)
        group.create_dataset("kernel:0", data=np.full(shape, 0.1, dtype=np.float32))
        group.create_dataset("bias:0", data=np.zeros(shape[1], dtype=np.float32))


@benign(
    "keras/h5-no-lambda",
    format="keras-h5",
    file="dense_model.h5",
    description="A Keras-2-style HDF5 model (model_config of Dense layers, model_weights "
    "datasets), written with h5py; no Lambda.",
    needs=("h5py", "numpy"),
)
def _keras_h5(ctx: BuildContext) -> None:
    import h5py

    config = {
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "layers": [
                {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4]}},
                {
                    "class_name": "Dense",
                    "config": {"name": "dense", "units": 8, "activation": "relu"},
                },
                {
                    "class_name": "Dense",
                    "config": {"name": "dense_1", "units": 2, "activation": "softmax"},
                },
            ],
        },
    }
    with h5py.File(ctx.path, "w") as handle:
        handle.attrs["keras_version"] = "2.15.0"
        handle.attrs["backend"] = "tensorflow"
        handle.attrs["model_config"] = json.dumps(config)
        weights = handle.create_group("model_weights")
        weights.attrs["layer_names"] = [b"dense", b"dense_1"]
        _keras_dense_weights(weights)


@benign(
    "keras/v3-dense",
    format="keras-v3",
    file="dense_model.keras",
    description="A Keras 3 .keras archive: config.json of Dense layers, metadata.json and "
    "model.weights.h5.",
    needs=("h5py", "numpy"),
)
def _keras_v3(ctx: BuildContext) -> bytes:
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        _keras_dense_weights(handle.create_group("layers"))
    layers = [
        {
            "module": "keras.layers",
            "class_name": "InputLayer",
            "config": {"batch_shape": [None, 4], "dtype": "float32", "name": "input_layer"},
            "registered_name": None,
        },
        *(
            {
                "module": "keras.layers",
                "class_name": "Dense",
                "config": {"name": name, "units": units, "activation": activation},
                "registered_name": None,
                "build_config": {"input_shape": [None, inputs]},
            }
            for name, units, activation, inputs in (
                ("dense", 8, "relu", 4),
                ("dense_1", 2, "softmax", 8),
            )
        ),
    ]
    config = {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "sequential", "layers": layers},
        "registered_name": None,
    }
    metadata = {"keras_version": "3.8.0", "date_saved": "2025-01-01@00:00:00"}
    return box.zip_bytes(
        [
            ("metadata.json", json.dumps(metadata).encode()),
            ("config.json", json.dumps(config).encode()),
            ("model.weights.h5", buffer.getvalue()),
        ]
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


@benign(
    "hf/model-folder",
    format="folder",
    file="hf_model",
    description="A Hugging Face-style folder: config.json, model.safetensors, "
    "tokenizer_config.json with a benign ChatML template, special_tokens_map.json, "
    "generation_config.json.",
    needs=("safetensors", "numpy"),
)
def _hf_folder(ctx: BuildContext) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    ctx.path.mkdir(parents=True, exist_ok=True)
    _write_json(
        ctx.path / "config.json",
        {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": 8,
            "num_hidden_layers": 1,
            "vocab_size": 16,
        },
    )
    save_file(
        {"model.embed_tokens.weight": np.zeros((16, 8), dtype=np.float32)},
        str(ctx.path / "model.safetensors"),
        metadata={"format": "pt"},
    )
    _write_json(
        ctx.path / "tokenizer_config.json",
        {
            "tokenizer_class": "LlamaTokenizer",
            "bos_token": "<s>",
            "eos_token": "<|im_end|>",
            "chat_template": _CHATML_TEMPLATE,
        },
    )
    _write_json(ctx.path / "special_tokens_map.json", {"bos_token": "<s>", "eos_token": "</s>"})
    _write_json(ctx.path / "generation_config.json", {"max_new_tokens": 32, "do_sample": False})
