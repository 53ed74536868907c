"""The signature file: an in-toto statement in a DSSE envelope in a Sigstore bundle (JSON).

This is the OpenSSF model-signing format (predicate ``https://model_signing/signature/v1.0``,
bundle media type ``application/vnd.dev.sigstore.bundle.v0.3+json``): the statement's subject is
the model's name with a SHA-256 over all resource digests, the predicate lists every resource and
how it was serialized. Reading is strict and total: anything that is not exactly this shape is a
`MalformedSignature` naming what is wrong, never a crash and never a pass. The older v0.1
predicate (one subject per file) is read for compatibility. Not for: checking signatures
(`signing`).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlwarden.errors import IntegrityError
from mlwarden.integrity.manifest import Manifest, Resource, Serialization

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
PREDICATE_TYPE_V01 = "https://model_signing/Digests/v0.1"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_TYPES = (
    BUNDLE_MEDIA_TYPE,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
)
"""Media types read (Sigstore spells v0.3 both ways); ours is always the first."""

MAX_SIGNATURE_BYTES = 64 * 1024 * 1024
"""A signature file larger than this is refused before it is parsed."""


class MalformedSignature(IntegrityError):
    """The signature file is not a valid model-signing bundle (truncated, edited, wrong format)."""


@dataclass(frozen=True)
class Bundle:
    """What a signature file holds, decoded but not yet trusted."""

    payload: bytes
    """The signed statement bytes, exactly as signed."""
    payload_type: str
    signatures: tuple[bytes, ...]
    """DER ECDSA signatures over the DSSE pre-authentication encoding of `payload`."""
    key_hint: str | None = None
    """SHA-256 of the signer's PEM public key, for key-based bundles."""
    certificates: tuple[bytes, ...] = ()
    """DER certificates, signing certificate first, for certificate-based bundles."""
    keyless: bool = False
    """True for Sigstore keyless bundles (a Fulcio certificate plus transparency-log entries)."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def pae(payload: bytes, payload_type: str = PAYLOAD_TYPE) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature actually covers."""
    header = f"DSSEv1 {len(payload_type)} {payload_type} {len(payload)} "
    return header.encode() + payload


def statement_bytes(manifest: Manifest) -> bytes:
    """The in-toto statement for `manifest`, serialized as it will be signed."""
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": manifest.model_name, "digest": {"sha256": manifest.root_digest()}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": manifest.serialization.as_predicate(),
            "resources": [
                {"name": r.name, "algorithm": r.algorithm, "digest": r.digest}
                for r in manifest.resources
            ],
        },
    }
    return json.dumps(statement, indent=2).encode()


def bundle_json(
    payload: bytes,
    signature: bytes,
    *,
    key_hint: str | None = None,
    certificates: tuple[bytes, ...] = (),
) -> str:
    """A Sigstore bundle v0.3 holding one DSSE signature, as model-signing writes it."""
    material: dict[str, Any]
    if certificates:
        material = {
            "x509CertificateChain": {
                "certificates": [{"rawBytes": _b64(cert)} for cert in certificates]
            },
            "tlogEntries": [],
        }
    else:
        material = {"publicKey": {"hint": key_hint or ""}, "tlogEntries": []}
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": _b64(payload),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": _b64(signature), "keyid": ""}],
        },
    }
    return json.dumps(bundle, indent=2) + "\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def read_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Read and decode a signature file; `MalformedSignature` says what is wrong with it."""
    try:
        size = os.stat(path).st_size
        if size > MAX_SIGNATURE_BYTES:
            raise MalformedSignature(f"{path}: {size} bytes is too large for a signature file")
        raw_text = Path(path).read_bytes()
    except FileNotFoundError:
        raise MalformedSignature(f"{path}: no such signature file") from None
    except IsADirectoryError:
        raise MalformedSignature(f"{path} is a folder, not a signature file") from None
    except OSError as exc:
        raise IntegrityError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw_text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedSignature(
            f"{path}: not JSON ({exc}); the signature file is truncated or not a bundle"
        ) from None
    return parse_bundle(data, str(path))


def parse_bundle(data: object, where: str = "signature") -> Bundle:
    """Decode a parsed bundle object (see `read_bundle`)."""
    bundle = _object(data, where)
    media = bundle.get("mediaType")
    if media not in BUNDLE_MEDIA_TYPES:
        raise MalformedSignature(
            f"{where}: media type {media!r} is not a Sigstore bundle (expected {BUNDLE_MEDIA_TYPE})"
        )
    envelope = _object(bundle.get("dsseEnvelope"), f"{where}: dsseEnvelope")
    payload = _base64(envelope.get("payload"), f"{where}: dsseEnvelope.payload")
    payload_type = envelope.get("payloadType")
    if payload_type != PAYLOAD_TYPE:
        raise MalformedSignature(f"{where}: payload type {payload_type!r}, expected {PAYLOAD_TYPE}")
    raw_sigs = envelope.get("signatures")
    if not isinstance(raw_sigs, list) or not raw_sigs:
        raise MalformedSignature(f"{where}: the envelope holds no signature")
    signatures = tuple(
        _base64(_object(s, f"{where}: signature").get("sig"), f"{where}: signature")
        for s in raw_sigs
    )
    material = _object(bundle.get("verificationMaterial"), f"{where}: verificationMaterial")
    hint: str | None = None
    certificates: tuple[bytes, ...] = ()
    keyless = False
    if "publicKey" in material:
        key = _object(material["publicKey"], f"{where}: publicKey")
        value = key.get("hint")
        if value is not None and not isinstance(value, str):
            raise MalformedSignature(f"{where}: publicKey.hint must be a string")
        hint = value or None
    elif "x509CertificateChain" in material:
        chain = _object(material["x509CertificateChain"], f"{where}: x509CertificateChain")
        certs = chain.get("certificates")
        if not isinstance(certs, list) or not certs:
            raise MalformedSignature(f"{where}: the certificate chain is empty")
        certificates = tuple(
            _base64(_object(c, f"{where}: certificate").get("rawBytes"), f"{where}: certificate")
            for c in certs
        )
    elif "certificate" in material:
        cert = _object(material["certificate"], f"{where}: certificate")
        certificates = (_base64(cert.get("rawBytes"), f"{where}: certificate"),)
        keyless = True
    else:
        raise MalformedSignature(
            f"{where}: no verification material (public key hint or certificates)"
        )
    return Bundle(payload, payload_type, signatures, hint, certificates, keyless, bundle)


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedSignature(f"{where}: expected a JSON object")
    return value


def _base64(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise MalformedSignature(f"{where}: expected base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedSignature(f"{where}: invalid base64") from None


def manifest_from_payload(payload: bytes) -> Manifest:
    """The manifest a signed statement describes; `MalformedSignature` when it is inconsistent."""
    try:
        statement = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MalformedSignature("the signed payload is not JSON") from None
    statement = _object(statement, "statement")
    if statement.get("_type") != STATEMENT_TYPE:
        raise MalformedSignature(
            f"statement type {statement.get('_type')!r}, expected {STATEMENT_TYPE}"
        )
    predicate_type = statement.get("predicateType")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise MalformedSignature("the statement names no subject")
    if predicate_type == PREDICATE_TYPE_V01:
        return _manifest_v01(subjects)
    if predicate_type != PREDICATE_TYPE:
        raise MalformedSignature(
            f"predicate type {predicate_type!r} is not a model signature ({PREDICATE_TYPE})"
        )
    if len(subjects) != 1:
        raise MalformedSignature(f"expected one subject, got {len(subjects)}")
    subject = _object(subjects[0], "subject")
    name = subject.get("name")
    root = _object(subject.get("digest"), "subject digest").get("sha256")
    if not isinstance(name, str) or not isinstance(root, str):
        raise MalformedSignature("the subject needs a name and a sha256 digest")
    predicate = _object(statement.get("predicate"), "predicate")
    try:
        serialization = Serialization.from_predicate(
            _object(predicate.get("serialization"), "serialization")
        )
    except ValueError as exc:
        raise MalformedSignature(f"serialization: {exc}") from None
    resources = predicate.get("resources")
    if not isinstance(resources, list):
        raise MalformedSignature("the predicate lists no resources")
    items = tuple(_resource(r) for r in resources)
    names = [r.name for r in items]
    if len(set(names)) != len(names):
        raise MalformedSignature("the predicate lists a resource twice")
    manifest = Manifest(name, items, serialization)
    if manifest.root_digest() != root.lower():
        raise MalformedSignature(
            "the statement is inconsistent: its resources do not hash to the subject digest"
        )
    return manifest


def _resource(value: object) -> Resource:
    item = _object(value, "resource")
    name, algorithm, digest = item.get("name"), item.get("algorithm"), item.get("digest")
    if not (isinstance(name, str) and isinstance(algorithm, str) and isinstance(digest, str)):
        raise MalformedSignature("every resource needs a name, an algorithm and a digest")
    _check_name(name)
    try:
        bytes.fromhex(digest)
    except ValueError:
        raise MalformedSignature(f"resource {name!r}: digest is not hex") from None
    return Resource(name, algorithm, digest.lower())


def _check_name(name: str) -> None:
    parts = name.split("/")
    # Names are POSIX paths; a backslash is an ordinary character there, a separator on Windows.
    separator = os.sep == "\\" and "\\" in name
    if name.startswith("/") or ".." in parts or separator or "\x00" in name:
        raise MalformedSignature(f"resource name {name!r} leaves the model folder")


def _manifest_v01(subjects: list[Any]) -> Manifest:
    items = []
    for value in subjects:
        subject = _object(value, "subject")
        name = subject.get("name")
        digest = _object(subject.get("digest"), "subject digest").get("sha256")
        if not isinstance(name, str) or not isinstance(digest, str):
            raise MalformedSignature("every v0.1 subject needs a name and a sha256 digest")
        _check_name(name)
        items.append(Resource(name, "sha256", digest.lower()))
    return Manifest("compat-undefined-not-present", tuple(items), Serialization())
