"""Sign a model and verify a model against its signature (OpenSSF model-signing format).

`sign` hashes the model (`manifest`), wraps the manifest in an in-toto statement and signs its
DSSE encoding with an elliptic-curve key, optionally with a certificate chain (`envelope`).
`verify` never trusts what it reads first: it checks the signature over the exact signed bytes
with the key or the trusted roots the caller gives, and only then reads the manifest, re-hashes
the model the way the signature says, and names every difference. A `Verification` is ok only
when every step passed; nothing is skipped silently. Not for: loading (`loading`), rendering
(`check`).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mlwarden.errors import IntegrityError, UsageError, VerificationError
from mlwarden.integrity import envelope
from mlwarden.integrity.compare import Difference, compare
from mlwarden.integrity.keys import key_hint, load_private_key, load_public_key, signature_hash
from mlwarden.integrity.manifest import (
    DEFAULT_SHARD_BYTES,
    Manifest,
    ProgressFn,
    Serialization,
    default_serialization,
    hash_model,
)

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

PathLike = str | os.PathLike[str]

SIGNATURE_NAME = "model.sig"
"""Where a folder's signature goes by default (inside it, left out of the manifest)."""


def default_signature_path(model: PathLike) -> Path:
    """``<folder>/model.sig`` for a folder, ``<file>.sig`` for a single file."""
    path = Path(model)
    return path / SIGNATURE_NAME if path.is_dir() else path.with_name(path.name + ".sig")


@dataclass(frozen=True)
class SignResult:
    """What `sign` wrote."""

    signature: Path
    manifest: Manifest
    signer: str
    """``key <hint>`` or the signing certificate's subject."""
    duration_s: float


def sign(
    model: PathLike,
    *,
    private_key: PathLike | ec.EllipticCurvePrivateKey,
    signature: PathLike | None = None,
    password: bytes | None = None,
    certificate: PathLike | None = None,
    certificate_chain: Sequence[PathLike] = (),
    method: str = "files",
    hash_type: str = "sha256",
    shard_size: int = DEFAULT_SHARD_BYTES,
    ignore: Sequence[str] = (),
    ignore_git: bool = True,
    allow_symlinks: bool = False,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> SignResult:
    """Sign a model file or folder; returns where the signature was written.

    `private_key`: a PEM file (P-256/P-384/P-521; `password` if encrypted) or a key object.
    `certificate`: the signing certificate (PEM) for that key; `certificate_chain`: intermediate
    certificates to embed. `method`: ``files`` or ``shards`` (`shard_size` bytes each);
    `hash_type`: ``sha256``, ``blake2`` or ``blake3``. `ignore`: paths or glob patterns relative
    to the model left unsigned (git metadata too unless `ignore_git` is False). The signature
    file is written atomically; inside the model folder it is left out of the manifest.
    """
    from cryptography.hazmat.primitives.asymmetric import ec

    started = time.perf_counter()
    key = (
        private_key
        if isinstance(private_key, ec.EllipticCurvePrivateKey)
        else load_private_key(private_key, password)
    )
    certificates = _signing_certificates(key, certificate, certificate_chain)
    model_path = Path(model)
    if not os.path.lexists(model_path):
        raise UsageError(f"{model_path}: no such file or directory")
    out = Path(signature) if signature is not None else default_signature_path(model_path)
    serialization = default_serialization(
        method=method,
        hash_type=hash_type,
        allow_symlinks=allow_symlinks,
        ignore=[*ignore, *_inside(model_path, out)],
        ignore_git=ignore_git,
        shard_size=shard_size,
        model=model_path,
    )
    manifest = hash_model(model_path, serialization, workers=workers, progress=progress)
    payload = envelope.statement_bytes(manifest)
    raw_signature = key.sign(envelope.pae(payload), ec.ECDSA(signature_hash(key.public_key())))
    hint = key_hint(key.public_key())
    text = envelope.bundle_json(
        payload, raw_signature, key_hint=None if certificates else hint, certificates=certificates
    )
    _write_atomic(out, text)
    from mlwarden.integrity.certs import subject_of

    signer = subject_of(certificates[0]) if certificates else f"key {hint}"
    return SignResult(out, manifest, signer, time.perf_counter() - started)


def _signing_certificates(
    key: ec.EllipticCurvePrivateKey,
    certificate: PathLike | None,
    chain: Sequence[PathLike],
) -> tuple[bytes, ...]:
    if certificate is None:
        if chain:
            raise UsageError("a certificate chain needs the signing certificate (--certificate)")
        return ()
    from cryptography.hazmat.primitives import serialization

    from mlwarden.integrity.certs import load_certificates

    leaf = load_certificates([certificate])
    if len(leaf) != 1:
        raise UsageError(f"{certificate}: expected exactly one signing certificate")
    if leaf[0].public_key() != key.public_key():
        raise UsageError(
            f"{certificate}: the certificate's public key does not belong to the private key"
        )
    return tuple(
        c.public_bytes(serialization.Encoding.DER) for c in [*leaf, *load_certificates(chain)]
    )


def _inside(model: Path, signature: Path) -> list[str]:
    """The signature's path relative to the model folder, when it lies inside it."""
    if not model.is_dir():
        return []
    try:
        rel = signature.resolve().relative_to(model.resolve())
    except ValueError:
        return []
    return [rel.as_posix()]


def _write_atomic(path: Path, text: str) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class Problem:
    """One reason a model did not verify."""

    kind: str
    """``modified``, ``added``, ``removed``, ``renamed`` (content), ``wrong-key``,
    ``bad-signature``, ``malformed-signature``, ``untrusted-certificate``, ``unsupported``
    (signature) or ``unreadable`` (the model could not be hashed)."""
    message: str
    path: str | None = None
    expected: str | None = None
    actual: str | None = None
    renamed_from: str | None = None

    @classmethod
    def from_difference(cls, diff: Difference) -> Problem:
        messages = {
            "modified": f"{diff.path} was modified after signing",
            "added": f"{diff.path} was added after signing",
            "removed": f"{diff.path} was removed after signing",
            "renamed": f"{diff.renamed_from} was renamed to {diff.path} after signing",
        }
        return cls(
            diff.kind,
            messages[diff.kind],
            diff.path,
            diff.expected,
            diff.actual,
            diff.renamed_from,
        )


CONTENT_KINDS = ("modified", "added", "removed", "renamed")


@dataclass
class Verification:
    """The outcome of `verify`: ok only if the signature and every signed file check out."""

    model: str
    signature: str
    signer: str | None = None
    """Who signed, once the signature verified (``key <hint>`` or a certificate subject)."""
    manifest: Manifest | None = None
    """The signed manifest, once the signature verified."""
    files: int = 0
    """Files compared."""
    bytes_hashed: int = 0
    problems: list[Problem] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the signature verified and the model is exactly what was signed."""
        return self.manifest is not None and not self.problems

    def raise_for_failure(self) -> None:
        """Raise `VerificationError` listing the problems unless `ok`."""
        if self.ok:
            return
        shown = "; ".join(p.message for p in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        raise VerificationError(
            f"{self.model} did not verify against {self.signature}: "
            f"{shown or 'no verified manifest'}{more}"
        )


def verify(
    model: PathLike,
    *,
    signature: PathLike | None = None,
    public_key: PathLike | ec.EllipticCurvePublicKey | None = None,
    certificate_chain: Sequence[PathLike] = (),
    ignore: Sequence[str] = (),
    ignore_unsigned: bool = False,
    sigstore_identity: str | None = None,
    sigstore_issuer: str | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> Verification:
    """Verify a model file or folder against its signature.

    Give `public_key` (PEM or key object) for key-based signatures, or `certificate_chain` (PEM
    files with the trusted root certificates) for certificate-based ones. `signature` defaults to
    ``model.sig`` inside the folder (``<file>.sig`` beside a file). `ignore`: further paths left
    out (the signature's own ignored paths always apply). `ignore_unsigned`: files that were not
    signed are not reported as added. `sigstore_identity` / `sigstore_issuer`: verify a
    Sigstore keyless signature instead (needs network access and the model-signing package).
    Usage mistakes (no key given, missing key file) raise `UsageError`; everything about the
    model or the signature is a `Problem` in the result.
    """
    from cryptography.hazmat.primitives.asymmetric import ec

    started = time.perf_counter()
    model_path = Path(model)
    sig_path = Path(signature) if signature is not None else default_signature_path(model_path)
    if not os.path.lexists(model_path):
        raise UsageError(f"{model_path}: no such file or directory")
    keyless = sigstore_identity is not None or sigstore_issuer is not None
    given = sum([public_key is not None, bool(certificate_chain), keyless])
    if given == 0:
        raise UsageError(
            "verification needs the signer's public key (--key), trusted root certificates "
            "(--cert-chain) or a Sigstore identity (--sigstore-identity, --sigstore-issuer)"
        )
    if given > 1:
        raise UsageError("give one of: a public key, a certificate chain, a Sigstore identity")
    if keyless and not (sigstore_identity and sigstore_issuer):
        raise UsageError("Sigstore verification needs both the identity and the OIDC issuer")
    # Key and root files are the caller's to get right: their mistakes are usage errors,
    # raised before the model or the signature is looked at.
    if public_key is not None and not isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key = load_public_key(public_key)
    trusted = []
    if certificate_chain:
        from mlwarden.integrity.certs import load_certificates

        trusted = load_certificates(certificate_chain)
    result = Verification(str(model_path), str(sig_path))
    try:
        if keyless:
            from mlwarden.integrity.keyless import keyless_manifest

            assert sigstore_identity is not None and sigstore_issuer is not None
            signed = keyless_manifest(sig_path, identity=sigstore_identity, issuer=sigstore_issuer)
            result.signer = f"sigstore {sigstore_identity} ({sigstore_issuer})"
        else:
            bundle = envelope.read_bundle(sig_path)
            result.signer = _check_signature(bundle, public_key, trusted)
            signed = envelope.manifest_from_payload(bundle.payload)
    except VerificationError as exc:
        kind = getattr(exc, "kind", "bad-signature")
        result.problems.append(Problem(kind, str(exc)))
        result.duration_s = time.perf_counter() - started
        return result
    except envelope.MalformedSignature as exc:
        result.problems.append(Problem("malformed-signature", str(exc)))
        result.duration_s = time.perf_counter() - started
        return result
    except IntegrityError as exc:
        result.problems.append(Problem("unreadable", str(exc)))
        result.duration_s = time.perf_counter() - started
        return result
    result.manifest = signed
    serialization = Serialization(
        method=signed.serialization.method,
        hash_type=signed.serialization.hash_type,
        allow_symlinks=signed.serialization.allow_symlinks,
        ignore_paths=tuple(
            dict.fromkeys(
                [
                    *signed.serialization.ignore_paths,
                    *_inside(model_path, sig_path),
                    *default_serialization(
                        ignore=ignore, ignore_git=False, model=model_path
                    ).ignore_paths,
                ]
            )
        ),
        shard_size=signed.serialization.shard_size,
    )
    only = list(signed.by_file()) if ignore_unsigned else None
    try:
        actual = hash_model(
            model_path, serialization, only=only, workers=workers, progress=progress
        )
    except UsageError:
        raise
    except IntegrityError as exc:
        result.problems.append(Problem("unreadable", str(exc)))
        result.duration_s = time.perf_counter() - started
        return result
    result.files = len(actual.by_file())
    result.bytes_hashed = actual.total_bytes
    result.problems.extend(Problem.from_difference(d) for d in compare(signed, actual))
    result.duration_s = time.perf_counter() - started
    return result


class _SignatureFailure(VerificationError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _check_signature(
    bundle: envelope.Bundle,
    public_key: ec.EllipticCurvePublicKey | None,
    trusted: Sequence[x509.Certificate],
) -> str:
    """Verify the bundle's signature over its exact payload; who signed it."""
    if bundle.keyless:
        raise _SignatureFailure(
            "unsupported",
            "this is a Sigstore keyless signature; verify it with --sigstore-identity and "
            "--sigstore-issuer (needs network access and the model-signing package)",
        )
    if trusted:
        if not bundle.certificates:
            raise _SignatureFailure(
                "wrong-key",
                "the signature was made with a key, not a certificate; verify with --key",
            )
        from mlwarden.integrity.certs import subject_of, verify_chain

        try:
            key = verify_chain(bundle.certificates, trusted)
        except VerificationError as exc:
            raise _SignatureFailure("untrusted-certificate", str(exc)) from None
        signer = subject_of(bundle.certificates[0])
    else:
        assert public_key is not None
        key = public_key
        hint = key_hint(key)
        if bundle.certificates:
            raise _SignatureFailure(
                "wrong-key",
                "the signature carries a certificate chain; verify it with --cert-chain",
            )
        if bundle.key_hint is not None and bundle.key_hint.lower() != hint:
            raise _SignatureFailure(
                "wrong-key",
                f"signed by another key (key hint {bundle.key_hint[:16]}..., "
                f"yours is {hint[:16]}...)",
            )
        signer = f"key {hint}"
    if not _signature_valid(key, bundle):
        raise _SignatureFailure(
            "bad-signature",
            "the signature does not match the signed statement: the signature file was "
            "edited, or made with another key",
        )
    return signer


def _signature_valid(key: ec.EllipticCurvePublicKey, bundle: envelope.Bundle) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    algorithm = ec.ECDSA(signature_hash(key))
    try:
        key.verify(bundle.signatures[0], envelope.pae(bundle.payload), algorithm)
        return True
    except InvalidSignature:
        pass
    # model-signing before 1.0 signed a mis-encoded PAE (and certificates always with SHA-256);
    # its signatures stay verifiable, as model-signing itself still accepts them.
    legacy = (
        f"DSSEV1 {len(envelope.PAYLOAD_TYPE)} {envelope.PAYLOAD_TYPE} "
        f"{len(bundle.payload)} {bundle.payload!r}"
    ).encode()
    for legacy_algorithm in (algorithm, ec.ECDSA(hashes.SHA256())):
        try:
            key.verify(bundle.signatures[0], legacy, legacy_algorithm)
            return True
        except InvalidSignature:
            continue
    return False
