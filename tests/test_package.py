"""The top-level names the issues promise: `mlwarden.target`, `mlwarden.evaluate`, ..."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import mlwarden
from mlwarden.targets.torch import TorchTarget


def test_mlwarden_target_wraps_a_model() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    target = mlwarden.target(model, input_shape=(4,))
    assert isinstance(target, TorchTarget) and target.n_classes == 3


def test_subpackages_are_reachable_from_the_package_alone() -> None:
    code = (
        "import mlwarden, sys\n"
        "assert 'torch' not in sys.modules\n"
        "assert callable(mlwarden.evaluate.robustness)\n"
        "assert callable(mlwarden.attacks.evasion.pgd)\n"
        "print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip() == "ok", out.stderr


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = mlwarden.nothing  # type: ignore[attr-defined]


def test_the_readme_example_runs_through_the_top_level_names() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    target = mlwarden.target(model, input_shape=(1, 2, 2))
    x = np.random.default_rng(0).random((6, 1, 2, 2), dtype=np.float32)
    evaluation = mlwarden.evaluate.robustness(target, x, target.predict(x), eps=[0.1])
    assert set(evaluation.robust_accuracy) == {0.1}
