"""Audit check ``ml06.model_files``: the static scanner as one check of the Top-10 audit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlwarden.audit.registry import CheckResult, NothingToAssess, register_check
from mlwarden.findings import Risk
from mlwarden.scan.engine import scan_paths
from mlwarden.scan.policy import Policy

if TYPE_CHECKING:
    from mlwarden.audit.runner import AuditContext


@register_check(
    "ml06.model_files",
    title="Model files, containers and model folders (static, nothing is executed)",
    risks=(Risk.ML06,),
    needs=("paths",),
)
def model_files(context: AuditContext) -> CheckResult:
    """Scan every path in the context; nothing recognisable means nothing to assess."""
    policy = context.policy if isinstance(context.policy, Policy) else Policy()
    result = scan_paths(context.paths or [], policy, jobs=context.jobs, progress=context.progress)
    recognised = [s for s in result.scanned if s.format != "unknown"]
    if not recognised and not result.findings and not result.errors:
        raise NothingToAssess("no model file, container or model folder found")
    return CheckResult(
        findings=result.findings,
        scanned=result.scanned,
        errors=result.errors,
        metrics={
            "files": len({s.path for s in result.scanned}),
            "items": len(result.scanned),
            "recognised": len(recognised),
            "policy": policy.source or "built-in",
        },
    )
