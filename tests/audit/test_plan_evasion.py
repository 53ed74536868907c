"""audit.yaml's model, data and evasion sections: validated strictly, paths relative to the plan."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlwarden.audit.context import context_from_plan, evasion_settings
from mlwarden.audit.plan import load_plan
from mlwarden.errors import ConfigError, MlwardenError
from mlwarden.evaluate.check import EvasionSettings

FULL_PLAN = """\
version: 1
model:
  path: models/digits.onnx
  input_shape: [1, 8, 8]
  n_classes: 10
  input_range: [0, 255]
  mean: [0.5]
  std: 0.25
  model_output: logits
  query_budget: 10000
data:
  path: data/test.npz
  labels: data/labels.npy
  x_key: images
  y_key: targets
  limit: 300
evasion:
  norm: l2
  eps: [0, 1/255, 0.5]
  suite: quick
  attacks: [pgd, square]
  n_samples: 64
  seed: 7
  sanity_checks: false
"""


def write_plan(folder: Path, text: str) -> Path:
    path = folder / "audit.yaml"
    path.write_text(text)
    return path


def test_full_plan_resolves_model_and_data_paths_against_its_folder(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path, FULL_PLAN))
    assert plan.model is not None and plan.data is not None and plan.evasion is not None
    assert plan.model.path == str(tmp_path / "models/digits.onnx")
    assert plan.model.input_shape == [1, 8, 8]
    assert plan.model.input_range == (0.0, 255.0)
    assert plan.data.path == tmp_path / "data/test.npz"
    assert plan.data.labels == tmp_path / "data/labels.npy"
    assert plan.data.limit == 300
    assert plan.evasion.eps == [0.0, 1 / 255, 0.5]
    assert (plan.evasion.norm, plan.evasion.suite, plan.evasion.n_samples) == ("l2", "quick", 64)


def test_endpoint_urls_and_absolute_paths_are_kept(tmp_path: Path) -> None:
    text = (
        "model:\n  path: https://models.example/v2\n  input_shape: [30]\n"
        "  http: {protocol: kserve-v2, model_name: fraud, timeout_s: 2.5}\n"
        f"data:\n  path: {tmp_path / 'abs.csv'}\n  label_column: -1\n"
    )
    plan = load_plan(write_plan(tmp_path, text))
    assert plan.model is not None and plan.model.path == "https://models.example/v2"
    assert plan.model.http is not None and plan.model.http.protocol == "kserve-v2"
    assert plan.data is not None and plan.data.path == tmp_path / "abs.csv"
    assert plan.data.label_column == -1


def test_sections_are_optional_and_evasion_has_defaults(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path, "evasion: {}\n"))
    assert plan.model is None and plan.data is None
    assert plan.evasion is not None
    assert (plan.evasion.norm, plan.evasion.eps, plan.evasion.suite) == ("linf", None, "standard")
    assert plan.evasion.n_samples == 500 and plan.evasion.sanity_checks is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: {path: m.onnx, colour: red}\n", r"model\.colour"),
        ("data: {path: d.npz, xkey: x}\n", r"data\.xkey"),
        ("evasion: {epsilon: [0.1]}\n", r"evasion\.epsilon"),
        ("model: {http: {timeout_s: 1}, path: u, verbose: 1}\n", r"model\.verbose"),
        ("model: {path: https://h, http: {retries: 3}}\n", r"model\.http\.retries"),
        ("model: {input_shape: [1, 8, 8]}\n", r"model\.path: Field required"),
        ("model: {path: ''}\n", r"model\.path"),
        ("data: {limit: 5}\n", r"data\.path: Field required"),
        ("evasion: {eps: [-0.1]}\n", r"evasion\.eps\.0: Input should be greater than or equal"),
        ("evasion: {eps: [0.1, .nan]}\n", r"evasion\.eps\.1"),
        ("evasion: {eps: [1/0]}\n", r"evasion\.eps\.0"),
        ("evasion: {eps: []}\n", r"evasion\.eps"),
        ("evasion: {eps: 0.1}\n", r"evasion\.eps"),
        ("evasion: {norm: l3}\n", r"evasion\.norm"),
        ("evasion: {suite: huge}\n", r"evasion\.suite"),
        ("evasion: {attacks: []}\n", r"evasion\.attacks"),
        ("evasion: {n_samples: 0}\n", r"evasion\.n_samples"),
        ("model: {path: m, input_range: [1, 0]}\n", r"model\.input_range.*low < high"),
        ("model: {path: m, input_shape: [0, 8]}\n", r"model\.input_shape\.0"),
        ("model: {path: m, std: [0.2, 0]}\n", r"model\.std.*> 0"),
        ("model: {path: m, n_classes: 1}\n", r"model\.n_classes"),
        ("model: {path: m, query_budget: 0}\n", r"model\.query_budget"),
        ("model: {path: m, model_output: softmax}\n", r"model\.model_output"),
        ("data: {path: d, limit: 0}\n", r"data\.limit"),
    ],
)
def test_bad_model_data_and_evasion_sections_name_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_plan(write_plan(tmp_path, text))


def test_evasion_section_becomes_the_checks_settings(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path, FULL_PLAN))
    assert plan.evasion is not None
    settings = evasion_settings(plan.evasion)
    assert settings.norm == "l2"
    assert settings.eps == (0.0, 1 / 255, 0.5)
    assert settings.attacks == ("pgd", "square")
    assert (settings.suite, settings.n_samples, settings.seed) == ("quick", 64, 7)
    assert settings.sanity_checks is False


def test_scan_only_plan_gives_a_context_without_model_or_data(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path, "scan: {paths: [models], jobs: 3}\n"))
    context = context_from_plan(plan)
    assert context.paths == [tmp_path / "models"]
    assert context.jobs == 3
    assert context.target is None and context.data is None and context.evasion is None
    assert context.met_needs() >= {"paths"} and "target" not in context.met_needs()


def test_building_a_scan_only_context_loads_no_framework(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, "scan: {paths: [models]}\n")
    probe = (
        "import sys\n"
        "from mlwarden.audit.plan import load_plan\n"
        "from mlwarden.audit.context import context_from_plan\n"
        f"context_from_plan(load_plan(__import__('pathlib').Path({str(plan)!r})))\n"
        "print(sorted({'numpy', 'torch', 'sklearn', 'onnxruntime'} & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_context_names_a_missing_model_or_data_file(tmp_path: Path) -> None:
    missing_model = load_plan(write_plan(tmp_path, "model: {path: nowhere.onnx}\n"))
    with pytest.raises(MlwardenError, match=r"nowhere\.onnx"):
        context_from_plan(missing_model)
    missing_data = load_plan(write_plan(tmp_path, "data: {path: nowhere.npz}\n"))
    with pytest.raises(MlwardenError, match=r"nowhere\.npz"):
        context_from_plan(missing_data)


@pytest.mark.slow
def test_context_loads_the_model_and_data_the_plan_names(tmp_path: Path) -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    skops_io = pytest.importorskip("skops.io")
    rng = np.random.default_rng(0)
    x = rng.random((40, 3)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    (tmp_path / "models").mkdir()
    skops_io.dump(sklearn.LogisticRegression().fit(x, y), tmp_path / "models" / "clf.skops")
    np.savez(tmp_path / "test.npz", x=x, y=y)
    text = (
        "model: {path: models/clf.skops, query_budget: 500}\n"
        "data: {path: test.npz, limit: 25}\nevasion: {eps: [0.1], n_samples: 20}\n"
    )
    context = context_from_plan(load_plan(write_plan(tmp_path, text)))
    assert context.target.input_shape == (3,)
    assert context.target.query_budget == 500
    assert context.data is not None
    assert context.data[0].shape == (25, 3) and context.data[1].dtype == np.int64
    assert context.evasion == EvasionSettings(eps=(0.1,), n_samples=20)
    assert {"target", "data"} <= context.met_needs()
