"""`mlwarden.scan(paths)`: the scanner's Python entry point."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mlwarden.audit.runner import AuditContext, ProgressFn, run_audit
from mlwarden.report.model import Report
from mlwarden.scan.policy import Policy


def scan(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    policy: Policy | str | os.PathLike[str] | None = None,
    jobs: int = 1,
    progress: ProgressFn | None = None,
) -> Report:
    """Scan model files, containers and folders statically; nothing is imported or executed.

    `paths`: one path or several (files or folders). `policy`: a `Policy`, a path to a TOML
    policy file, or None for the built-in allowlist. `jobs`: worker processes (1 .. cores).
    Returns a `Report`; ``report.exit_code(Severity.HIGH)`` gives the CI verdict.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if policy is None:
        resolved = Policy()
    elif isinstance(policy, Policy):
        resolved = policy
    else:
        resolved = Policy.from_file(Path(policy))
    if jobs < 1:
        from mlwarden.errors import UsageError

        raise UsageError(f"jobs must be at least 1, got {jobs}")
    context = AuditContext(
        paths=[Path(p) for p in paths], policy=resolved, jobs=jobs, progress=progress
    )
    return run_audit(context, only=["ml06.model_files"])
