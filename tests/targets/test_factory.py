"""`mlwarden.targets.target(obj, **options)`: a missing or unknown option is a clear InputError."""

from __future__ import annotations

import pytest

from mlwarden.errors import InputError
from mlwarden.targets import target


def test_torch_module_without_input_shape_names_the_option() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(InputError, match="missing a required argument: 'input_shape'"):
        target(torch.nn.Linear(4, 2))


def test_unknown_option_is_named() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(InputError, match="unexpected keyword argument 'colour'"):
        target(torch.nn.Linear(4, 2), input_shape=(4,), colour="red")


def test_valid_options_still_build_the_target() -> None:
    torch = pytest.importorskip("torch")
    wrapped = target(torch.nn.Linear(4, 2), input_shape=(4,))
    assert wrapped.n_classes == 2 and wrapped.input_shape == (4,)
