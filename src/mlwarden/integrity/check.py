"""Audit check ``ml10.signature``: verify models against their signatures, as findings.

Every problem `verify` names becomes a finding a CI can gate on (a modified file is critical, an
added, removed or renamed file, a wrong key or a malformed signature high); a model that could
not be read completely is an error (exit 2), never a pass. Not for: the verification itself
(`signing`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlwarden.audit.registry import CheckResult, register_check
from mlwarden.findings import Finding, Location, Risk, Severity
from mlwarden.integrity.signing import Problem, Verification, verify
from mlwarden.report.model import ErrorEntry, ScannedFile

if TYPE_CHECKING:
    from mlwarden.audit.runner import AuditContext

CHECK_ID = "ml10.signature"


@dataclass(frozen=True)
class IntegritySettings:
    """How to verify the paths of an audit (`AuditContext.integrity`)."""

    public_key: str | os.PathLike[str] | None = None
    """PEM public key of the signer (key-based signatures)."""
    certificate_chain: Sequence[str | os.PathLike[str]] = ()
    """PEM files with the trusted root certificates (certificate-based signatures)."""
    signature: str | os.PathLike[str] | None = None
    """The signature file; default ``model.sig`` in the folder, ``<file>.sig`` beside a file.
    Only meaningful with one path."""
    ignore: Sequence[str] = ()
    ignore_unsigned: bool = False
    sigstore_identity: str | None = None
    sigstore_issuer: str | None = None
    workers: int | None = None
    """Hashing threads (default: CPU count)."""


_RULES: dict[str, tuple[str, Severity, str, str]] = {
    # kind: (rule id, severity, title, remediation)
    "modified": (
        "integrity.modified",
        Severity.CRITICAL,
        "File changed after the model was signed",
        "Do not load this model. Restore the file from a trusted copy, or find out who changed "
        "it and re-sign only after review.",
    ),
    "added": (
        "integrity.added",
        Severity.HIGH,
        "File added after the model was signed",
        "Remove the file, or review it and re-sign the model. Loaders may pick up extra files "
        "(custom code, tokenizer templates, shards).",
    ),
    "removed": (
        "integrity.removed",
        Severity.HIGH,
        "Signed file is missing",
        "Restore the file from a trusted copy; a model with missing parts is not the one signed.",
    ),
    "renamed": (
        "integrity.renamed",
        Severity.HIGH,
        "Signed file was renamed",
        "Restore the original name, or review the change and re-sign.",
    ),
    "bad-signature": (
        "integrity.bad-signature",
        Severity.CRITICAL,
        "Signature does not verify",
        "Treat the model as untrusted: the signature file or the signed statement was altered.",
    ),
    "wrong-key": (
        "integrity.wrong-key",
        Severity.HIGH,
        "Signed by another key or with another method",
        "Verify with the signer's public key or certificate chain; if it is the right one, the "
        "model was signed by someone else.",
    ),
    "malformed-signature": (
        "integrity.malformed-signature",
        Severity.HIGH,
        "Signature file is malformed",
        "Obtain the signature again from the publisher; a truncated or edited bundle proves "
        "nothing.",
    ),
    "untrusted-certificate": (
        "integrity.untrusted-certificate",
        Severity.HIGH,
        "Signing certificate is not trusted",
        "Check that --cert-chain holds the right root, and that the certificate may sign.",
    ),
    "unsupported": (
        "integrity.unsupported-signature",
        Severity.HIGH,
        "Signature cannot be verified this way",
        "Verify with the method the signature names (key, certificate or Sigstore identity).",
    ),
}


def verification_findings(result: Verification) -> tuple[list[Finding], list[ErrorEntry]]:
    """The findings (and errors, for a model that could not be read) of one verification."""
    findings: list[Finding] = []
    errors: list[ErrorEntry] = []
    for problem in result.problems:
        if problem.kind == "unreadable":
            errors.append(ErrorEntry(result.model, f"not verified: {problem.message}"))
            continue
        findings.append(_finding(result, problem))
    if result.manifest is None and not findings and not errors:
        errors.append(ErrorEntry(result.model, "not verified: no signed manifest was read"))
    return findings, errors


def _finding(result: Verification, problem: Problem) -> Finding:
    rule, severity, title, remediation = _RULES[problem.kind]
    inside = problem.path not in (None, ".")
    where = os.path.join(result.model, problem.path or "") if inside else result.model
    evidence = {
        "signature": result.signature,
        "kind": problem.kind,
        **{
            k: v
            for k, v in (
                ("expected_digest", problem.expected),
                ("actual_digest", problem.actual),
                ("renamed_from", problem.renamed_from),
                ("signer", result.signer),
            )
            if v
        },
    }
    return Finding(
        risk=Risk.ML10,
        check=CHECK_ID,
        rule=rule,
        severity=severity,
        title=title,
        detail=problem.message,
        location=Location(path=where if problem.path else result.signature),
        evidence=evidence,
        remediation=remediation,
    )


@register_check(
    CHECK_ID,
    title="Models verified against their signatures (OpenSSF model-signing format)",
    risks=(Risk.ML10, Risk.ML06),
    needs=("paths", "integrity"),
)
def signature_check(context: AuditContext) -> CheckResult:
    """Verify each path of the context with the settings in ``context.integrity``."""
    settings: IntegritySettings = context.integrity
    paths = context.paths or []
    if settings.signature is not None and len(paths) > 1:
        from mlwarden.errors import UsageError

        raise UsageError("one --signature file covers one model; verify models one at a time")
    out = CheckResult()
    verified = []
    for path in paths:
        result = verify(
            path,
            signature=settings.signature,
            public_key=settings.public_key,
            certificate_chain=settings.certificate_chain,
            ignore=settings.ignore,
            ignore_unsigned=settings.ignore_unsigned,
            sigstore_identity=settings.sigstore_identity,
            sigstore_issuer=settings.sigstore_issuer,
            workers=settings.workers,
            progress=context.progress,
        )
        findings, errors = verification_findings(result)
        out.findings.extend(findings)
        out.errors.extend(errors)
        out.scanned.append(
            ScannedFile(
                str(path),
                None,
                "signed-model",
                result.bytes_hashed,
                max((f.severity for f in findings), default=None),
            )
        )
        verified.append(
            {
                "model": str(path),
                "signature": result.signature,
                "verified": result.ok,
                "signer": result.signer or "-",
                "files": result.files,
                "bytes": result.bytes_hashed,
                "method": result.manifest.serialization.method if result.manifest else "-",
                "seconds": round(result.duration_s, 3),
            }
        )
    out.metrics = {"models": verified}
    return out
