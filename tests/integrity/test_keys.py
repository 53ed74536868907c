"""Keys: generated on the three curves model signatures use, written owner-only, never
overwritten, encrypted on request; every wrong key file gives an error that says what to do."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mlwarden.errors import UsageError
from mlwarden.integrity import (
    generate_key,
    load_private_key,
    load_public_key,
    sign,
    verify,
    write_key_pair,
)
from mlwarden.integrity.keys import PASSWORD_ENV, key_hint
from tests.integrity._builders import KeyPair, TinyCA


@pytest.mark.parametrize(
    ("curve", "name"), [("p256", "secp256r1"), ("P-384", "secp384r1"), ("p521", "secp521r1")]
)
def test_generate_key_on_each_curve(curve: str, name: str) -> None:
    assert generate_key(curve).curve.name == name


def test_unknown_curve_is_refused() -> None:
    with pytest.raises(UsageError, match="expected one of: p256, p384, p521"):
        generate_key("p224")


def test_private_key_is_written_owner_only(tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    private, public = write_key_pair(keys["p256"].key, tmp_path / "signing.pem")
    assert public == tmp_path / "signing.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    assert load_public_key(public) == keys["p256"].key.public_key()
    assert b"PRIVATE KEY" not in public.read_bytes()


def test_existing_key_is_never_overwritten(
    tmp_path: Path, keys: dict[str, KeyPair], other_key: KeyPair
) -> None:
    private, _ = write_key_pair(keys["p256"].key, tmp_path / "signing.pem")
    before = private.read_bytes()
    with pytest.raises(UsageError, match="exists"):
        write_key_pair(other_key.key, private)
    assert private.read_bytes() == before
    (tmp_path / "lonely.pub").write_text("someone's public key")
    with pytest.raises(UsageError, match="exists"):
        write_key_pair(other_key.key, tmp_path / "lonely.pem")
    assert not (tmp_path / "lonely.pem").exists()


def test_overwrite_replaces_and_keeps_owner_only(
    tmp_path: Path, keys: dict[str, KeyPair], other_key: KeyPair
) -> None:
    private, _ = write_key_pair(keys["p256"].key, tmp_path / "signing.pem")
    private.chmod(0o644)
    write_key_pair(other_key.key, private, overwrite=True)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert load_private_key(private).public_key() == other_key.key.public_key()


def test_same_path_for_both_halves_is_refused(tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    with pytest.raises(UsageError, match="must differ"):
        write_key_pair(keys["p256"].key, tmp_path / "k.pem", tmp_path / "k.pem")


def test_encrypted_key_needs_its_password(
    tmp_path: Path, keys: dict[str, KeyPair], model: Path
) -> None:
    private, public = write_key_pair(
        keys["p384"].key, tmp_path / "locked.pem", password=b"correct horse"
    )
    assert b"ENCRYPTED PRIVATE KEY" in private.read_bytes()
    with pytest.raises(UsageError, match=f"encrypted; set {PASSWORD_ENV}"):
        load_private_key(private)
    with pytest.raises(UsageError, match="encrypted"):
        sign(model, private_key=private)
    with pytest.raises(UsageError, match="wrong password"):
        load_private_key(private, b"battery staple")
    sign(model, private_key=private, password=b"correct horse")
    assert verify(model, public_key=public).ok


def test_password_for_a_plain_key_is_refused(keys: dict[str, KeyPair]) -> None:
    with pytest.raises(UsageError, match="not encrypted"):
        load_private_key(keys["p256"].private, b"unneeded")


def test_rsa_keys_are_refused_clearly(tmp_path: Path, model: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / "rsa.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = tmp_path / "rsa.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(UsageError, match=r"not an elliptic-curve key.*P-256, P-384 or P-521"):
        sign(model, private_key=private)
    with pytest.raises(UsageError, match="not an elliptic-curve public key"):
        verify(model, public_key=public)


def test_curve_outside_the_format_is_refused(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256K1())
    private = tmp_path / "k1.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(UsageError, match="unsupported curve secp256k1"):
        load_private_key(private)


def test_private_key_given_as_public_key(model: Path, keys: dict[str, KeyPair]) -> None:
    sign(model, private_key=keys["p256"].private)
    with pytest.raises(UsageError, match=r"is a private key; verify with the public key \(\.pub\)"):
        verify(model, public_key=keys["p256"].private)


def test_public_key_given_as_private_key(model: Path, keys: dict[str, KeyPair]) -> None:
    with pytest.raises(UsageError, match="not a PEM private key"):
        sign(model, private_key=keys["p256"].public)


def test_key_files_that_are_not_keys(tmp_path: Path, model: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"\x00\x01 not pem")
    with pytest.raises(UsageError, match="not a PEM private key"):
        load_private_key(garbage)
    with pytest.raises(UsageError, match="not a PEM public key"):
        load_public_key(garbage)
    with pytest.raises(UsageError, match="no such key file"):
        load_public_key(tmp_path / "missing.pub")
    with pytest.raises(UsageError, match="is a folder"):
        load_private_key(tmp_path)
    huge = tmp_path / "huge.pem"
    huge.touch()
    os.truncate(huge, 2 * 1024 * 1024)
    with pytest.raises(UsageError, match="too large"):
        load_private_key(huge)


def test_certificate_file_works_as_public_key(model: Path, ca: TinyCA) -> None:
    sign(model, private_key=ca.leaf_key_pem)
    assert verify(model, public_key=ca.leaf_pem).ok


def test_key_objects_work_as_well_as_files(model: Path, keys: dict[str, KeyPair]) -> None:
    result = sign(model, private_key=keys["p521"].key)
    assert result.signer == f"key {key_hint(keys['p521'].key.public_key())}"
    assert verify(model, public_key=keys["p521"].key.public_key()).ok


def test_no_key_material_in_results_or_errors(
    model: Path, keys: dict[str, KeyPair], tmp_path: Path
) -> None:
    private_pem = keys["p256"].private.read_text()
    body = "".join(private_pem.splitlines()[1:-1])
    result = sign(model, private_key=keys["p256"].private)
    text = repr(result) + (model / "model.sig").read_text()
    assert body[:40] not in text
    locked, _ = write_key_pair(
        keys["p256"].key, tmp_path / "locked.pem", password=b"s3cret-Passw0rd"
    )
    with pytest.raises(UsageError) as caught:
        load_private_key(locked, b"guess-Passw0rd")
    assert "Passw0rd" not in str(caught.value)


def test_ignoring_the_whole_model_is_refused(tmp_path: Path) -> None:
    from mlwarden.integrity import generate_key, sign

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w.bin").write_bytes(b"w")
    for whole in (".", "", "./"):
        with pytest.raises(UsageError, match="whole model unsigned"):
            sign(tmp_path / "m", private_key=generate_key(), ignore=[whole])
    assert not (tmp_path / "m" / "model.sig").exists()
