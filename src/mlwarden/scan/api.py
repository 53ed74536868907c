"""`mlwarden.scan(paths)`: the scanner's Python entry point (model files, code, dependencies)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlwarden.audit.runner import AuditContext, ProgressFn, run_audit
from mlwarden.errors import UsageError
from mlwarden.report.model import Report
from mlwarden.scan.parallel import auto_jobs
from mlwarden.scan.policy import Policy

SCAN_KINDS: dict[str, str] = {
    "models": "ml06.model_files",
    "code": "ml06.code",
    "deps": "ml06.dependencies",
}
"""What `scan` can look at -> the audit check that does it."""

UNREQUESTED_OSV_TIMEOUT_S = 3.0
"""Seconds the OSV API gets when the dependency audit runs only because no kind was chosen."""


def scan(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    policy: Policy | str | os.PathLike[str] | None = None,
    jobs: int | None = None,
    progress: ProgressFn | None = None,
    kinds: Sequence[str] | None = None,
    deps: Any = None,
) -> Report:
    """Scan model files, Python code and dependency files statically; nothing is executed.

    `paths`: one path or several (files or folders). `policy`: a `Policy`, a path to a TOML
    policy file, or None for the built-in allowlist. `jobs`: worker processes (>= 1; None: the
    CPUs available, at most 8).
    `kinds`: any of ``models``, ``code``, ``deps`` (default: all three; the dependency audit is
    then reported as not assessed, not failed, when no advisory source answers). `deps`: a
    `mlwarden.scan.deps.DepsSettings` (advisory source, environments). Returns a `Report`;
    ``report.exit_code(Severity.HIGH)`` gives the CI verdict.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if policy is None:
        resolved = Policy()
    elif isinstance(policy, Policy):
        resolved = policy
    else:
        resolved = Policy.from_file(Path(policy))
    if jobs is None:
        jobs = auto_jobs()
    elif jobs < 1:
        raise UsageError(f"jobs must be at least 1, got {jobs}")
    chosen = list(dict.fromkeys(kinds)) if kinds is not None else list(SCAN_KINDS)
    unknown = [k for k in chosen if k not in SCAN_KINDS]
    if unknown or not chosen:
        raise UsageError(
            f"unknown scan kind {', '.join(unknown) or '(none)'}; expected: {', '.join(SCAN_KINDS)}"
        )
    if "deps" in chosen and deps is None:
        from mlwarden.scan.deps.settings import DepsSettings

        # Not asked for explicitly: a short timeout, so a scan without network is not held up.
        deps = (
            DepsSettings(required=True)
            if kinds is not None
            else DepsSettings(required=False, timeout_s=UNREQUESTED_OSV_TIMEOUT_S)
        )
    context = AuditContext(
        paths=[Path(p) for p in paths], policy=resolved, jobs=jobs, progress=progress, deps=deps
    )
    report = run_audit(context, only=[SCAN_KINDS[k] for k in chosen])
    report.errors = list(dict.fromkeys(report.errors))  # a missing path is every check's error
    return report
