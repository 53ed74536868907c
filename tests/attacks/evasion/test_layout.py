"""One-channel images reach the model in the caller's memory layout (channels-last or not)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import mlwarden.targets
from mlwarden.attacks.evasion import fgsm, pgd
from mlwarden.attacks.evasion.base import in_layout, is_channels_last

N = 48


class Spy(torch.nn.Module):
    """Records whether each batch it is given has channels-last strides."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.channels_last: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.channels_last.append(x.stride(1) == 1 and x.stride(3) == x.shape[1])
        out: torch.Tensor = self.inner(x)
        return out


def test_channels_last_is_read_from_the_strides() -> None:
    gray = np.zeros((5, 8, 8, 1), dtype=np.float32).transpose(0, 3, 1, 2)
    assert is_channels_last(gray)
    # torch too runs a stride-0 channel (``images[:, None]``) as NCHW, only stride 1 as NHWC
    assert not is_channels_last(np.zeros((5, 8, 8), dtype=np.float32)[:, None])
    assert not is_channels_last(np.ascontiguousarray(np.zeros((5, 1, 8, 8), np.float32)))
    assert is_channels_last(np.zeros((5, 8, 8, 3), np.float32).transpose(0, 3, 1, 2))
    assert not is_channels_last(np.zeros((5, 3, 8, 8), np.float32))
    assert not is_channels_last(np.zeros((5, 30), np.float32))
    assert not is_channels_last(torch.zeros(5, 1, 8, 8))
    assert not is_channels_last([[0.0]])


def test_in_layout_is_a_view_with_channels_last_strides() -> None:
    x = np.arange(2 * 64, dtype=np.float32).reshape(2, 1, 8, 8)
    view = in_layout(x, True)
    assert np.shares_memory(view, x)
    np.testing.assert_array_equal(view, x)
    assert torch.from_numpy(np.ascontiguousarray(view)).stride() == (64, 1, 8, 1)
    assert in_layout(x, False) is x
    three = np.zeros((2, 3, 4, 4), np.float32)
    assert in_layout(three, True) is three  # would need a copy: left as it is


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_the_model_sees_the_callers_layout_and_the_results_agree(
    attack: str, digits_model: Any
) -> None:
    gray = digits_model.x_test[:N]
    assert is_channels_last(gray)  # the demo's test split leaves the channel stride at 1
    plain = np.array(gray, order="C")
    plain = np.lib.stride_tricks.as_strided(plain, strides=(256, 256, 32, 4))
    assert not is_channels_last(plain)
    y = digits_model.y_test[:N]
    results = []
    for x, expected in ((gray, True), (plain, False)):
        spy = Spy(digits_model.model)
        target = mlwarden.targets.target(spy, input_shape=(1, 8, 8), n_classes=10)
        if attack == "fgsm":
            result = fgsm(target, x, y, eps=0.1)
        else:
            result = pgd(target, x, y, eps=0.1, steps=5, early_stop=False)
        assert spy.channels_last and all(seen == expected for seen in spy.channels_last)
        results.append(result)
    layout_a, layout_b = results
    np.testing.assert_array_equal(layout_a.success, layout_b.success)
    np.testing.assert_allclose(layout_a.x_adv, layout_b.x_adv, atol=1e-5)
    assert layout_a.queries == layout_b.queries
