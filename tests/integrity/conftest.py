"""Fixtures for the integrity tests: a small model folder, key pairs on three curves, a tiny CA.

Keys and the CA are made once per session (key generation on P-521 is the slow part); the model
folder is fresh for every test, since most tests tamper with it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.integrity import generate_key, write_key_pair
from tests.integrity._builders import KeyPair, TinyCA, build_ca, build_model

CURVES = ("p256", "p384", "p521")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A fresh copy of the test model (`MODEL_FILES`) in ``tmp_path/model``."""
    return build_model(tmp_path / "model")


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    """One key pair per curve, written with `write_key_pair` (``<curve>.pem``, ``<curve>.pub``)."""
    folder = tmp_path_factory.mktemp("keys")
    pairs = {}
    for curve in CURVES:
        key = generate_key(curve)
        private, public = write_key_pair(key, folder / f"{curve}.pem")
        pairs[curve] = KeyPair(private, public, key)
    return pairs


@pytest.fixture(scope="session")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """A second P-256 key pair: not the signer."""
    folder = tmp_path_factory.mktemp("other-key")
    key = generate_key("p256")
    private, public = write_key_pair(key, folder / "other.pem")
    return KeyPair(private, public, key)


@pytest.fixture(scope="session")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TinyCA:
    """root -> intermediate -> leaf with digital-signature key usage."""
    return build_ca(tmp_path_factory.mktemp("ca"))
