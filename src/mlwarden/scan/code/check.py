"""Audit check ``ml06.code``: the code audit as one check of the Top-10 audit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlwarden.audit.registry import CheckResult, NothingToAssess, register_check
from mlwarden.findings import Risk
from mlwarden.scan.code.engine import audit_code

if TYPE_CHECKING:
    from mlwarden.audit.runner import AuditContext


@register_check(
    "ml06.code",
    title="Python code and notebooks: unsafe loading, remote code, secrets (nothing is executed)",
    risks=(Risk.ML06,),
    needs=("paths",),
)
def code_audit(context: AuditContext) -> CheckResult:
    """Audit the Python files and notebooks under the context's paths."""
    result = audit_code(context.paths or [], progress=context.progress, jobs=context.jobs)
    if not result.scanned and not result.findings and not result.errors:
        raise NothingToAssess("no Python file or notebook found")
    return CheckResult(
        findings=result.findings,
        scanned=result.scanned,
        errors=result.errors,
        metrics=result.metrics(),
    )
