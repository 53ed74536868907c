"""Builders shared by the integrity tests: model folders, key pairs, certificates, edited bundles.

Everything here is deterministic except key material; nothing touches the network.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mlwarden.integrity import Verification, envelope
from mlwarden.integrity.keys import key_hint, signature_hash

WEIGHTS_BYTES = 3000
"""Size of ``weights.bin``: three shards at the 1000-byte shard size the tests use."""

SHARD_BYTES = 1000

MODEL_FILES: dict[str, bytes] = {
    "weights.bin": random.Random(0).randbytes(WEIGHTS_BYTES),
    "config.json": b'{"layers": 2, "hidden": 16}\n',
    "sub/tokenizer.txt": b"hello world\n" * 10,
    "sub/deep/vocab.txt": b"a\nb\nc\n",
    "empty.txt": b"",
    "naïve ünïcode 名前.txt": "unicode content ü\n".encode(),
}
"""The test model: nested folders, an empty file, a non-ASCII name, one file of several shards."""


def build_model(folder: Path, files: dict[str, bytes] | None = None) -> Path:
    """Write `files` (default `MODEL_FILES`) under `folder`; returns `folder`."""
    for name, data in (MODEL_FILES if files is None else files).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def found(result: Verification) -> list[tuple[str, str | None]]:
    """(kind, path) of every problem, in the order `verify` reports them."""
    return [(p.kind, p.path) for p in result.problems]


@dataclass(frozen=True)
class KeyPair:
    """A key on disk: the PEM private key, its ``.pub`` and the key object."""

    private: Path
    public: Path
    key: ec.EllipticCurvePrivateKey


# -- bundles -----------------------------------------------------------------------------------


def load_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def save_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


def statement_of(signature: Path) -> dict[str, Any]:
    """The in-toto statement a signature file carries."""
    payload = load_json(signature)["dsseEnvelope"]["payload"]
    statement: dict[str, Any] = json.loads(base64.b64decode(payload))
    return statement


def root_digest(resources: list[dict[str, str]]) -> str:
    """The statement subject digest for `resources` (SHA-256 over the raw digests in order)."""
    hasher = hashlib.sha256()
    for resource in resources:
        hasher.update(bytes.fromhex(resource["digest"]))
    return hasher.hexdigest()


def replace_payload(signature: Path, statement: dict[str, Any]) -> None:
    """Put `statement` in the bundle and keep the old signature (what an attacker can do)."""
    bundle = load_json(signature)
    encoded = json.dumps(statement, indent=2).encode()
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(encoded).decode()
    save_json(signature, bundle)


def resign(signature: Path, payload: bytes, key: ec.EllipticCurvePrivateKey) -> None:
    """Write a key-based bundle over `payload`, validly signed with `key`."""
    raw = key.sign(envelope.pae(payload), ec.ECDSA(signature_hash(key.public_key())))
    signature.write_text(
        envelope.bundle_json(payload, raw, key_hint=key_hint(key.public_key())), encoding="utf-8"
    )


def resign_statement(
    signature: Path,
    key: ec.EllipticCurvePrivateKey,
    edit: Callable[[dict[str, Any]], None],
    *,
    fix_subject: bool = True,
) -> None:
    """Edit the statement in `signature`, then sign it again with `key`.

    With `fix_subject` the subject digest is recomputed after the edit, so that only the edit
    itself is wrong.
    """
    statement = statement_of(signature)
    edit(statement)
    if fix_subject:
        resources = statement["predicate"]["resources"]
        statement["subject"][0]["digest"]["sha256"] = root_digest(resources)
    resign(signature, json.dumps(statement, indent=2).encode(), key)


# -- certificates ------------------------------------------------------------------------------

SIGNING_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
CA_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)
ENCIPHER_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=True,
    data_encipherment=True,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
DAY = datetime.timedelta(days=1)


def make_certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: x509.Certificate | None = None,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
    ca: bool | None = False,
    key_usage: x509.KeyUsage | None = SIGNING_USAGE,
    code_signing: bool = False,
    not_before: datetime.datetime = NOW - DAY,
    not_after: datetime.datetime = NOW + 30 * DAY,
) -> x509.Certificate:
    """A certificate for `key` issued by `issuer` (self-signed when None).

    `ca`: the BasicConstraints CA flag (None leaves the extension out); `key_usage`: None leaves
    the KeyUsage extension out; `code_signing` adds that extended key usage.
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, True)
    if code_signing:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False
        )
    signer = issuer_key if issuer_key is not None else key
    if issuer is not None and issuer_key is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    return builder.sign(signer, hashes.SHA256())


def write_pem(path: Path, *certificates: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates))
    return path


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@dataclass(frozen=True)
class TinyCA:
    """root -> intermediate -> leaf (digital-signature key usage), all P-256, files in `folder`."""

    folder: Path
    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey

    @property
    def root_pem(self) -> Path:
        return self.folder / "root.pem"

    @property
    def intermediate_pem(self) -> Path:
        return self.folder / "intermediate.pem"

    @property
    def leaf_pem(self) -> Path:
        return self.folder / "leaf.pem"

    @property
    def leaf_key_pem(self) -> Path:
        return self.folder / "leaf.key"


def build_ca(folder: Path) -> TinyCA:
    """Generate the CA and write its PEM files to `folder`."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = make_certificate(
        "mlwarden test root", root_key, ca=True, key_usage=CA_USAGE, not_before=NOW - 10 * DAY
    )
    intermediate_key = ec.generate_private_key(ec.SECP256R1())
    intermediate = make_certificate(
        "mlwarden test intermediate",
        intermediate_key,
        issuer=root,
        issuer_key=root_key,
        ca=True,
        key_usage=CA_USAGE,
        not_before=NOW - 5 * DAY,
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = make_certificate(
        "model signer", leaf_key, issuer=intermediate, issuer_key=intermediate_key
    )
    ca = TinyCA(folder, root, root_key, intermediate, intermediate_key, leaf, leaf_key)
    folder.mkdir(parents=True, exist_ok=True)
    write_pem(ca.root_pem, root)
    write_pem(ca.intermediate_pem, intermediate)
    write_pem(ca.leaf_pem, leaf)
    write_private_key(ca.leaf_key_pem, leaf_key)
    return ca
