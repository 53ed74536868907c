"""Certificate-based signatures: check a bundle's certificate chain against trusted roots.

The bundle carries the signing certificate first, then intermediates. The chain is valid when each
certificate is issued (and signed) by the next, ends at a certificate the user trusts, every
issuer is a CA, every certificate is valid at the signing certificate's start time (the format has
no trusted timestamp, so this is the time model-signing checks too), and the signing certificate
may sign (key usage *digital signature* or extended key usage *code signing*). Not for: the
signature itself (`signing`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlwarden.errors import UsageError, VerificationError
from mlwarden.integrity.keys import MAX_KEY_FILE_BYTES

if TYPE_CHECKING:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

MAX_CHAIN_LENGTH = 10
"""Longer chains are refused (no real PKI needs more; a loop would never end)."""


class UntrustedCertificate(VerificationError):
    """The signing certificate does not chain to a trusted root or may not sign."""


def load_certificates(paths: Sequence[str | os.PathLike[str]]) -> list[x509.Certificate]:
    """Every PEM certificate in `paths` (files may hold several)."""
    from cryptography import x509

    certificates: list[x509.Certificate] = []
    for path in paths:
        try:
            if os.stat(path).st_size > MAX_KEY_FILE_BYTES:
                raise UsageError(f"{path}: too large for a certificate file")
            with open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise UsageError(f"{path}: no such certificate file") from None
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            certificates.extend(x509.load_pem_x509_certificates(data))
        except ValueError:
            raise UsageError(f"{path}: not a PEM certificate file") from None
    return certificates


def subject_of(certificate_der: bytes) -> str:
    """A certificate's subject as RFC 4514 text (for reports)."""
    from cryptography import x509

    return x509.load_der_x509_certificate(certificate_der).subject.rfc4514_string()


def verify_chain(
    chain_der: Sequence[bytes], trusted: Sequence[x509.Certificate]
) -> ec.EllipticCurvePublicKey:
    """Check the bundle's chain against `trusted` roots; the signing certificate's public key.

    Raises `UntrustedCertificate` naming the first thing that fails.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    if not trusted:
        raise UsageError("certificate verification needs trusted root certificates (--cert-chain)")
    if len(chain_der) > MAX_CHAIN_LENGTH:
        raise UntrustedCertificate(f"certificate chain of {len(chain_der)} is too long")
    try:
        chain = [x509.load_der_x509_certificate(der) for der in chain_der]
    except ValueError:
        raise UntrustedCertificate("the bundle holds a certificate that cannot be parsed") from None
    leaf = chain[0]
    when = leaf.not_valid_before_utc
    _check_signing_use(leaf)
    pool = chain[1:] + [c for c in trusted if c not in chain[1:]]
    current = leaf
    for _ in range(MAX_CHAIN_LENGTH + 1):
        _check_valid_at(current, when)
        if current in trusted:
            break
        issuer = _issuer_in(current, pool)
        if issuer is None:
            raise UntrustedCertificate(
                f"certificate {current.subject.rfc4514_string()!r} is not issued by a trusted "
                "root or by a certificate in the bundle"
            )
        _check_is_ca(issuer)
        current = issuer
    else:
        raise UntrustedCertificate("certificate chain does not end at a trusted root")
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise UntrustedCertificate("the signing certificate does not hold an elliptic-curve key")
    return key


def _issuer_in(
    certificate: x509.Certificate, pool: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    from cryptography.exceptions import InvalidSignature

    for candidate in pool:
        if candidate == certificate or candidate.subject != certificate.issuer:
            continue
        try:
            certificate.verify_directly_issued_by(candidate)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return candidate
    return None


def _check_valid_at(certificate: x509.Certificate, when: datetime.datetime) -> None:
    if not certificate.not_valid_before_utc <= when <= certificate.not_valid_after_utc:
        raise UntrustedCertificate(
            f"certificate {certificate.subject.rfc4514_string()!r} was not valid when the "
            "signing certificate was issued"
        )


def _check_is_ca(certificate: x509.Certificate) -> None:
    from cryptography import x509

    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        raise UntrustedCertificate(
            f"issuer {certificate.subject.rfc4514_string()!r} is not marked as a CA"
        ) from None
    if not constraints.value.ca:
        raise UntrustedCertificate(
            f"issuer {certificate.subject.rfc4514_string()!r} is not a CA certificate"
        )
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return  # RFC 5280: without the extension, key usage is unrestricted
    if not usage.key_cert_sign:
        raise UntrustedCertificate(
            f"issuer {certificate.subject.rfc4514_string()!r} may not sign certificates "
            "(its key usage lacks keyCertSign)"
        )


def _check_signing_use(certificate: x509.Certificate) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        if certificate.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return
    except x509.ExtensionNotFound:
        pass
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CODE_SIGNING in usages:
            return
    except x509.ExtensionNotFound:
        pass
    raise UntrustedCertificate(
        "the signing certificate may not sign (no digital-signature key usage, no code-signing "
        "extended key usage)"
    )
