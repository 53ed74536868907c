"""Audit check ``ml06.dependencies``: known vulnerabilities in the project's dependencies.

Reads ``context.paths`` for dependency files and ``context.deps`` (a `DepsSettings`; None means
the defaults) for the advisory source and the environments to audit. Not for: the audit itself
(`engine`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlwarden.audit.registry import CheckResult, NothingToAssess, register_check
from mlwarden.errors import UsageError
from mlwarden.findings import Risk
from mlwarden.scan.deps.engine import CHECK_ID, audit_dependencies
from mlwarden.scan.deps.settings import DepsSettings

if TYPE_CHECKING:
    from mlwarden.audit.runner import AuditContext


@register_check(
    CHECK_ID,
    title="Dependencies with known vulnerabilities (OSV advisories; nothing is installed or run)",
    risks=(Risk.ML06,),
    needs=(),
)
def dependencies(context: AuditContext) -> CheckResult:
    """Audit the dependency files under the context's paths and the environments its settings
    name; nothing to read means nothing to assess."""
    settings = context.deps if context.deps is not None else DepsSettings()
    if not isinstance(settings, DepsSettings):
        raise UsageError(
            f"the dependency audit's settings must be a DepsSettings, got {type(settings).__name__}"
        )
    wants_environment = settings.installed or bool(settings.site_packages)
    if not context.paths and not wants_environment:
        raise NothingToAssess("no paths and no installed environment to audit")
    result = audit_dependencies(context.paths or [], settings, progress=context.progress)
    if not result.inputs and not result.findings and not result.errors:
        raise NothingToAssess(
            "no dependency file found (requirements*.txt, pyproject.toml, poetry.lock, uv.lock, "
            "Pipfile.lock, pylock.toml)"
        )
    if result.source_errors and not settings.required:
        raise NothingToAssess(
            f"dependency files found, but no advisory source answered "
            f"({result.source_errors[0].message}); run `mlwarden scan --deps` with --osv-db FILE"
        )
    return CheckResult(
        findings=result.findings,
        scanned=result.scanned,
        errors=result.errors,
        metrics=result.metrics,
    )
