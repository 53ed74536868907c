"""Sigstore keyless signing and verification, through the `model-signing` package (needs network).

Keyless signing asks an OpenID Connect provider for the signer's identity, gets a short-lived
certificate from Fulcio and records the signature in the Rekor transparency log; verification
checks all of that against Sigstore's trust root, which is fetched over the network. mlwarden does
not reimplement that machinery: it delegates the signature to `model-signing` (``pip install
model-signing``) and keeps its own hashing and difference report. Not for: key or certificate
signatures (`signing`), which work offline.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from mlwarden.errors import UsageError, VerificationError
from mlwarden.integrity.manifest import GIT_PATHS, Manifest, Resource, Serialization


class KeylessFailure(VerificationError):
    """Sigstore rejected the signature or could not be reached."""


def _model_signing() -> ModuleType:
    try:
        import model_signing
    except ImportError:
        raise UsageError(
            "Sigstore keyless signing needs the model-signing package "
            "(pip install model-signing) and network access"
        ) from None
    return model_signing


def sign_keyless(
    model: str | os.PathLike[str],
    signature: str | os.PathLike[str],
    *,
    ignore: Sequence[str] = (),
    use_staging: bool = False,
) -> None:
    """Sign with a Sigstore identity (browser or ambient CI token); needs network access."""
    ms = _model_signing()
    hashing = ms.hashing.Config().set_ignored_paths(
        paths=[*ignore, *GIT_PATHS], ignore_git_paths=True
    )
    try:
        ms.signing.Config().use_sigstore_signer(use_staging=use_staging).set_hashing_config(
            hashing
        ).sign(Path(model), Path(signature))
    except Exception as exc:  # the network, the OIDC flow or Fulcio: all outside our control
        raise UsageError(f"Sigstore signing failed: {exc}") from None


def keyless_manifest(
    signature: str | os.PathLike[str], *, identity: str, issuer: str, use_staging: bool = False
) -> Manifest:
    """Verify a keyless bundle's certificate identity, log entry and signature; its manifest."""
    _model_signing()
    from model_signing._signing import sign_sigstore

    try:
        verifier = sign_sigstore.Verifier(
            identity=identity, oidc_issuer=issuer, use_staging=use_staging
        )
        theirs = verifier.verify(sign_sigstore.Signature.read(Path(signature)))
    except Exception as exc:  # Sigstore's own errors, network failures, malformed bundles
        raise KeylessFailure(f"Sigstore verification failed: {exc}") from None
    try:
        serialization = Serialization.from_predicate(theirs.serialization_type)
    except ValueError as exc:
        raise KeylessFailure(f"Sigstore bundle: {exc}") from None
    resources = tuple(
        Resource(str(rd.identifier), rd.digest.algorithm, rd.digest.digest_hex)
        for rd in theirs.resource_descriptors()
    )
    return Manifest(theirs.model_name, resources, serialization)
