"""TorchScript archives: what torch.jit.save writes is clean; their code/ is not a pickle."""

from __future__ import annotations

import pickle

import pytest

import mlwarden
from mlwarden.scan.pickle.analyser import looks_like_pickle
from mlwarden.scan.policy import Policy, Verdict

torch = pytest.importorskip("torch")


def _scripted(tmp_path):
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 10)
    )
    path = tmp_path / "model.pt"
    torch.jit.script(model).save(str(path))
    return path


def test_scripted_model_scans_clean(tmp_path):
    report = mlwarden.scan([_scripted(tmp_path)])
    assert report.findings == []
    assert any(s.format != "unknown" for s in report.scanned)


def test_traced_model_scans_clean(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1))
    path = tmp_path / "traced.pt"
    torch.jit.trace(model, torch.zeros(1, 4)).save(str(path))
    assert mlwarden.scan([path]).findings == []


def test_torchscript_source_is_not_read_as_a_pickle():
    source = b"class ReLU(Module):\n  __parameters__ = []\n  training : bool\n"
    assert not looks_like_pickle(source)
    assert not looks_like_pickle(b"import torch\nimport os\n")


def test_protocol_zero_pickle_with_a_real_import_is_still_a_pickle():
    payload = b"cos\nsystem\n(S'echo'\ntR."
    assert looks_like_pickle(payload)
    assert looks_like_pickle(pickle.dumps(print, protocol=0))


@pytest.mark.parametrize(
    "name",
    ["build_intlist", "build_doublelist", "build_boollist", "build_tensorlist", "restore_type_tag"],
)
def test_torchscript_list_builders_are_allowed_exactly(name):
    assert Policy().classify("torch.jit._pickle", name).verdict is Verdict.SAFE


def test_rest_of_torch_jit_stays_dangerous():
    assert Policy().classify("torch.jit", "load").verdict is Verdict.DANGEROUS
    assert Policy().classify("torch.jit._pickle", "anything_else").verdict is Verdict.DANGEROUS


def test_torchscript_classes_are_not_python_imports():
    verdict = Policy().classify("__torch__.torch.nn.modules.conv", "Conv2d")
    assert verdict.verdict is Verdict.SAFE
    assert "TorchScript" in verdict.reason
