"""Elliptic-curve keys as OpenSSF model-signing uses them: P-256, P-384 or P-521, PEM on disk.

The curve decides the signature hash (SHA-256, SHA-384, SHA-512), and a key is named in a
signature by its *hint*: the SHA-256 of its PEM SubjectPublicKeyInfo, so a verifier can say "signed
by another key" instead of only "bad signature". Private keys are written owner-only and may be
encrypted with a password; no key material is ever logged. Not for: signing (`signing`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mlwarden.errors import IntegrityError, UsageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

CURVES = {"p256": "secp256r1", "p384": "secp384r1", "p521": "secp521r1"}
"""Curve names accepted by `generate_key` -> their SEC names (the only ones model-signing takes)."""

PASSWORD_ENV = "MLWARDEN_KEY_PASSWORD"
"""Environment variable the CLI reads a private key's password from (never a flag: shells log)."""


def generate_key(curve: str = "p256") -> ec.EllipticCurvePrivateKey:
    """A new private key on `curve` (``p256``, ``p384`` or ``p521``)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    curves: dict[str, ec.EllipticCurve] = {
        "p256": ec.SECP256R1(),
        "p384": ec.SECP384R1(),
        "p521": ec.SECP521R1(),
    }
    try:
        chosen = curves[curve.lower().replace("-", "")]
    except KeyError:
        raise UsageError(f"unknown curve {curve!r}; expected one of: p256, p384, p521") from None
    return ec.generate_private_key(chosen)


def write_key_pair(
    key: ec.EllipticCurvePrivateKey,
    private_path: str | os.PathLike[str],
    public_path: str | os.PathLike[str] | None = None,
    *,
    password: bytes | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write `key` as PEM: the private key owner-only (0600), the public key beside it.

    `public_path` defaults to the private path with ``.pub``. An existing file is never replaced
    unless `overwrite`. `password` encrypts the private key (best available encryption).
    """
    from cryptography.hazmat.primitives import serialization

    private = Path(private_path)
    public = Path(public_path) if public_path is not None else private.with_suffix(".pub")
    if private.resolve() == public.resolve():
        raise UsageError("the private and public key paths must differ")
    for path in (private, public):
        if path.exists() and not overwrite:
            raise UsageError(f"{path} exists; choose another path or pass --force")
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    _write_file(private, private_pem, mode=0o600, overwrite=overwrite)
    _write_file(public, public_pem(key.public_key()), mode=0o644, overwrite=overwrite)
    return private, public


def _write_file(path: Path, data: bytes, *, mode: int, overwrite: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise UsageError(f"{path} exists; choose another path or pass --force") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.fchmod(fd, mode)  # before any byte is written: an existing file may have been 0644
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    """The public key as PEM SubjectPublicKeyInfo."""
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_hint(key: ec.EllipticCurvePublicKey) -> str:
    """model-signing's public-key hint: SHA-256 (hex) of the PEM SubjectPublicKeyInfo."""
    return hashlib.sha256(public_pem(key)).hexdigest()


def signature_hash(key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    """The hash ECDSA uses with this key's curve (SHA-256 / SHA-384 / SHA-512)."""
    from cryptography.hazmat.primitives import hashes

    check_curve(key)
    return {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[key.curve.key_size]


def check_curve(key: ec.EllipticCurvePublicKey) -> None:
    """Refuse curves the model-signing format does not define."""
    if key.curve.name not in CURVES.values():
        raise UsageError(
            f"unsupported curve {key.curve.name}; model signatures use P-256, P-384 or P-521"
        )


def load_private_key(
    path: str | os.PathLike[str], password: bytes | None = None
) -> ec.EllipticCurvePrivateKey:
    """Read a PEM private key; a clear error for a wrong password, a non-EC key or a bad curve."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = _read_key_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError:
        if password:
            raise UsageError(f"{path}: the key is not encrypted; do not give a password") from None
        raise UsageError(
            f"{path}: the key is encrypted; set {PASSWORD_ENV} to its password"
        ) from None
    except ValueError:
        if password:
            raise UsageError(f"{path}: wrong password, or not a PEM private key") from None
        raise UsageError(f"{path}: not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise UsageError(
            f"{path}: not an elliptic-curve key; model signatures use P-256, P-384 or P-521 keys "
            "(mlwarden keygen makes one)"
        )
    check_curve(key.public_key())
    return key


def load_public_key(path: str | os.PathLike[str]) -> ec.EllipticCurvePublicKey:
    """Read a PEM public key (or the public half of a certificate)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = _read_key_file(path)
    key: object
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            from cryptography import x509  # only then: it costs a command's start-up time

            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError:
        if b"PRIVATE KEY" in data:
            raise UsageError(
                f"{path} is a private key; verify with the public key (.pub)"
            ) from None
        raise UsageError(f"{path}: not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise UsageError(f"{path}: not an elliptic-curve public key")
    check_curve(key)
    return key


MAX_KEY_FILE_BYTES = 1024 * 1024
"""Key and certificate files larger than this are refused before they are read."""


def _read_key_file(path: str | os.PathLike[str]) -> bytes:
    try:
        size = os.stat(path).st_size
        if size > MAX_KEY_FILE_BYTES:
            raise UsageError(f"{path}: {size} bytes is too large for a key file")
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such key file") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder, not a key file") from None
    except OSError as exc:
        raise IntegrityError(f"cannot read {path}: {exc.strerror or exc}") from None
