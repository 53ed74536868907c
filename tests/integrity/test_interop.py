"""Interoperability with the OpenSSF reference implementation, `model-signing`, both ways.

What mlwarden signs, model-signing verifies; what model-signing signs, mlwarden verifies: for whole
files and shards, SHA-256 and BLAKE2, single files, ignored paths, symlinks, all three curves and
certificates. Most cases use model-signing's Python API; the CLI cases run its command line the
way a user would. A change must also be caught across implementations, so negative cases too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlwarden.integrity import sign, verify
from tests.integrity._builders import SHARD_BYTES, KeyPair, TinyCA, found, statement_of

model_signing = pytest.importorskip("model_signing")

MODEL_SIGNING_CLI = Path(sys.executable).with_name("model_signing")

SETTINGS: dict[str, dict[str, Any]] = {
    "files-sha256": {"method": "files", "hash_type": "sha256"},
    "shards-sha256": {"method": "shards", "hash_type": "sha256", "shard_size": SHARD_BYTES},
    "files-blake2": {"method": "files", "hash_type": "blake2"},
    "shards-blake2": {"method": "shards", "hash_type": "blake2", "shard_size": SHARD_BYTES},
}


def _their_hashing(settings: dict[str, Any]) -> Any:
    config = model_signing.hashing.Config()
    if settings["method"] == "shards":
        return config.use_shard_serialization(
            hashing_algorithm=settings["hash_type"], shard_size=settings["shard_size"]
        )
    return config.use_file_serialization(hashing_algorithm=settings["hash_type"])


def _their_verify(model: Path, signature: Path, public_key: Path) -> None:
    """model-signing's verification, guessing the hashing settings from the signature."""
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public_key).verify(
        model, signature
    )


def _their_sign(
    model: Path, signature: Path, private_key: Path, hashing: Any | None = None
) -> None:
    config = model_signing.signing.Config().use_elliptic_key_signer(private_key=private_key)
    if hashing is not None:
        config = config.set_hashing_config(hashing)
    config.sign(model, signature)


# -- mlwarden signs, model-signing verifies -----------------------------------------------------


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_model_signing_verifies_our_signature(
    model: Path, keys: dict[str, KeyPair], tmp_path: Path, setting: str
) -> None:
    signature = tmp_path / "ours.sig"
    sign(model, private_key=keys["p256"].private, signature=signature, **SETTINGS[setting])
    _their_verify(model, signature, keys["p256"].public)

    (model / "sub" / "tokenizer.txt").write_bytes(b"changed")
    with pytest.raises(ValueError, match=r"tokenizer\.txt"):
        _their_verify(model, signature, keys["p256"].public)


@pytest.mark.parametrize("curve", ["p256", "p384", "p521"])
def test_model_signing_verifies_our_signature_on_every_curve(
    model: Path, keys: dict[str, KeyPair], curve: str
) -> None:
    signature = sign(model, private_key=keys[curve].private).signature  # inside: model.sig
    _their_verify(model, signature, keys[curve].public)


def test_model_signing_verifies_our_single_file_signature(
    model: Path, keys: dict[str, KeyPair]
) -> None:
    weights = model / "weights.bin"
    for setting in ("files-sha256", "shards-sha256"):
        signature = sign(weights, private_key=keys["p256"].private, **SETTINGS[setting]).signature
        assert signature == model / "weights.bin.sig"
        _their_verify(weights, signature, keys["p256"].public)


def test_model_signing_honours_our_expanded_ignore_patterns(
    model: Path, keys: dict[str, KeyPair], tmp_path: Path
) -> None:
    (model / "train.log").write_text("epoch 1")
    (model / "sub" / "eval.log").write_text("acc 0.9")
    (model / "cache").mkdir()
    (model / "cache" / "blob").write_bytes(b"cached")
    signature = tmp_path / "ours.sig"
    sign(model, private_key=keys["p256"].private, signature=signature, ignore=["*.log", "cache"])
    ignored = statement_of(signature)["predicate"]["serialization"]["ignore_paths"]
    assert {"train.log", "sub/eval.log", "cache"} <= set(ignored)

    for path in ("train.log", "sub/eval.log", "cache/blob"):
        (model / path).write_text("changed after signing, still ignored")
    _their_verify(model, signature, keys["p256"].public)
    assert verify(model, signature=signature, public_key=keys["p256"].public).ok


def test_model_signing_verifies_our_signature_with_symlinks(
    model: Path, keys: dict[str, KeyPair], tmp_path: Path
) -> None:
    (model / "current.bin").symlink_to("weights.bin")
    signature = tmp_path / "ours.sig"
    sign(model, private_key=keys["p256"].private, signature=signature, allow_symlinks=True)
    # model-signing's verifier does not take allow_symlinks from the signature when it guesses
    # the settings, so it is given explicitly here.
    hashing = model_signing.hashing.Config().set_allow_symlinks(True)
    model_signing.verifying.Config().use_elliptic_key_verifier(
        public_key=keys["p256"].public
    ).set_hashing_config(hashing).verify(model, signature)


# -- model-signing signs, mlwarden verifies -----------------------------------------------------


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_we_verify_model_signing_signatures(
    model: Path, keys: dict[str, KeyPair], tmp_path: Path, setting: str
) -> None:
    signature = tmp_path / "theirs.sig"
    _their_sign(model, signature, keys["p256"].private, _their_hashing(SETTINGS[setting]))
    result = verify(model, signature=signature, public_key=keys["p256"].public)
    assert result.ok, result.problems
    assert result.manifest is not None
    assert result.manifest.serialization.method == SETTINGS[setting]["method"]

    (model / "weights.bin").write_bytes(b"swapped")
    (model / "config.json").unlink()
    assert found(verify(model, signature=signature, public_key=keys["p256"].public)) == [
        ("removed", "config.json"),
        ("modified", "weights.bin"),
    ]


@pytest.mark.parametrize("curve", ["p256", "p384", "p521"])
def test_we_verify_model_signing_signatures_on_every_curve(
    model: Path, keys: dict[str, KeyPair], tmp_path: Path, curve: str
) -> None:
    signature = tmp_path / "theirs.sig"
    _their_sign(model, signature, keys[curve].private)
    assert verify(model, signature=signature, public_key=keys[curve].public).ok
    other = "p256" if curve != "p256" else "p384"
    result = verify(model, signature=signature, public_key=keys[other].public)
    assert found(result) == [("wrong-key", None)]


def test_we_verify_model_signing_single_file_signatures(
    model: Path, keys: dict[str, KeyPair], tmp_path: Path
) -> None:
    weights = model / "weights.bin"
    for setting in ("files-sha256", "shards-blake2"):
        signature = tmp_path / f"{setting}.sig"
        _their_sign(weights, signature, keys["p256"].private, _their_hashing(SETTINGS[setting]))
        assert verify(weights, signature=signature, public_key=keys["p256"].public).ok


def test_we_honour_model_signing_ignored_paths(
    model: Path, keys: dict[str, KeyPair], tmp_path: Path
) -> None:
    (model / "README.md").write_text("notes")
    (model / "cache").mkdir()
    (model / "cache" / "blob").write_bytes(b"cached")
    signature = tmp_path / "theirs.sig"
    hashing = model_signing.hashing.Config().set_ignored_paths(paths=["README.md", "cache"])
    _their_sign(model, signature, keys["p256"].private, hashing)
    (model / "README.md").write_text("rewritten")
    (model / "cache" / "new").write_bytes(b"more")
    assert verify(model, signature=signature, public_key=keys["p256"].public).ok
    (model / "new.bin").write_bytes(b"not ignored")
    assert found(verify(model, signature=signature, public_key=keys["p256"].public)) == [
        ("added", "new.bin")
    ]


def test_we_verify_model_signing_certificate_signatures(
    model: Path, ca: TinyCA, tmp_path: Path
) -> None:
    signature = tmp_path / "theirs.sig"
    model_signing.signing.Config().use_certificate_signer(
        private_key=ca.leaf_key_pem,
        signing_certificate=ca.leaf_pem,
        certificate_chain=[ca.intermediate_pem],
    ).sign(model, signature)
    result = verify(model, signature=signature, certificate_chain=[ca.root_pem])
    assert result.ok, result.problems
    assert result.signer == "CN=model signer"


# -- through model-signing's command line -------------------------------------------------------


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    if not MODEL_SIGNING_CLI.exists():
        pytest.skip("model_signing command not installed beside this Python")
    return subprocess.run(
        [str(MODEL_SIGNING_CLI), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_model_signing_cli_and_ours_agree_on_key_signatures(
    model: Path, keys: dict[str, KeyPair], tmp_path: Path
) -> None:
    pair = keys["p384"]
    ours = sign(model, private_key=pair.private).signature
    verified = _cli("verify", "key", model, "--signature", ours, "--public_key", pair.public)
    assert verified.returncode == 0, verified.stderr

    theirs = tmp_path / "theirs.sig"
    signed = _cli("sign", "key", model, "--signature", theirs, "--private_key", pair.private)
    assert signed.returncode == 0, signed.stderr
    assert verify(model, signature=theirs, public_key=pair.public).ok

    (model / "config.json").write_bytes(b"{}")
    refused = _cli("verify", "key", model, "--signature", ours, "--public_key", pair.public)
    assert refused.returncode != 0
    assert "config.json" in refused.stderr


def test_model_signing_cli_and_ours_agree_on_certificate_signatures(
    model: Path, ca: TinyCA, tmp_path: Path
) -> None:
    ours = tmp_path / "ours.sig"
    sign(
        model,
        private_key=ca.leaf_key_pem,
        certificate=ca.leaf_pem,
        certificate_chain=[ca.intermediate_pem],
        signature=ours,
    )
    verified = _cli(
        "verify", "certificate", model, "--signature", ours, "--certificate_chain", ca.root_pem
    )
    assert verified.returncode == 0, verified.stderr

    theirs = tmp_path / "theirs.sig"
    signed = _cli(
        "sign",
        "certificate",
        model,
        "--signature",
        theirs,
        "--private_key",
        ca.leaf_key_pem,
        "--signing_certificate",
        ca.leaf_pem,
        "--certificate_chain",
        ca.intermediate_pem,
    )
    assert signed.returncode == 0, signed.stderr
    assert verify(model, signature=theirs, certificate_chain=[ca.root_pem]).ok
    (model / "config.json").write_bytes(b"{}")
    refused = _cli(
        "verify", "certificate", model, "--signature", ours, "--certificate_chain", ca.root_pem
    )
    assert refused.returncode != 0
    assert found(verify(model, signature=theirs, certificate_chain=[ca.root_pem])) == [
        ("modified", "config.json")
    ]
