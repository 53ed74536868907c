"""The Top-10 audit: a registry of checks and a runner that turns a plan into one `Report`."""

from mlwarden.audit.registry import Check, CheckResult, NothingToAssess, get_check, register_check
from mlwarden.audit.runner import AuditContext, run_audit

__all__ = [
    "AuditContext",
    "Check",
    "CheckResult",
    "NothingToAssess",
    "get_check",
    "register_check",
    "run_audit",
]
