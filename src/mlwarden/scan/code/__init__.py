"""The code audit (check ``ml06.code``): AST rules for ML code in Python files and notebooks.

`audit_code(paths)` walks files and folders, parses every ``.py``/``.pyw`` file and every
notebook's code cells once, and reports unsafe deserialisation, remote code, unpinned hub
downloads, execution of model output, hardcoded secrets and TLS verification turned off. It never
imports or executes what it reads. Rule ids and fixes: ``docs/code-audit.md``.
"""

from __future__ import annotations

from mlwarden.scan.code.engine import (
    NOTEBOOK_SUFFIXES,
    PYTHON_SUFFIXES,
    SKIPPED_DIRS,
    CodeAuditResult,
    CodeLimits,
    audit_code,
    audit_file,
)
from mlwarden.scan.code.rules import rule_ids

__all__ = [
    "NOTEBOOK_SUFFIXES",
    "PYTHON_SUFFIXES",
    "SKIPPED_DIRS",
    "CodeAuditResult",
    "CodeLimits",
    "audit_code",
    "audit_file",
    "rule_ids",
]
