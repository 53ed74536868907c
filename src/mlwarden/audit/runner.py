"""The audit runner: run every registered check whose needs are met, mark the rest not assessed.

Not for: defining checks (`registry`) or formatting results (`mlwarden.report`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlwarden.audit.registry import Check, CheckResult, NothingToAssess, all_checks, get_check
from mlwarden.errors import MlwardenError
from mlwarden.report.model import ErrorEntry, NotAssessed, Report

if TYPE_CHECKING:
    import numpy as np

ProgressFn = Callable[[str, int, int], None]
"""``progress(description, done, total)``; total 0 when unknown."""


@dataclass
class AuditContext:
    """Everything a check may need. A field left as None is a need that is not met."""

    paths: list[Path] | None = None
    """Files and folders to scan statically."""
    policy: Any = None
    """A `mlwarden.scan.policy.Policy`; None means the built-in policy."""
    jobs: int = 1
    """Worker processes for parallel work (1..cpu count)."""
    progress: ProgressFn | None = field(default=None, repr=False)
    """Called as work advances; None keeps quiet."""
    target: Any = field(default=None, repr=False)
    """The model under test, a `mlwarden.targets.base.Target`."""
    data: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    """Labelled samples ``(x, y)``: inputs in the target's input units and class indices."""
    evasion: Any = None
    """`mlwarden.evaluate.check.EvasionSettings` for ``ml01.evasion``; None means its defaults
    (a setting, never a check's need)."""
    integrity: Any = None
    """`mlwarden.integrity.check.IntegritySettings`: verify `paths` against their signatures
    (``ml10.signature``); a need, since without a key nothing can be verified."""
    deps: Any = None
    """`mlwarden.scan.deps.settings.DepsSettings` for ``ml06.dependencies`` (advisory source,
    installed environment); None means its defaults (a setting, never a check's need)."""
    privacy: Any = None
    """`mlwarden.privacy.settings.PrivacySettings` for ``ml04.membership`` and
    ``ml03.inversion`` (members, non-members, reference training, defences); a need, since
    without members and non-members nothing can be measured."""

    def met_needs(self) -> set[str]:
        """Names of the context fields that are present."""
        return {f.name for f in fields(self) if getattr(self, f.name) is not None}


def run_audit(
    context: AuditContext,
    *,
    only: Sequence[str] | None = None,
    skip: Sequence[str] = (),
) -> Report:
    """Run the checks (all registered, or `only` those ids, minus `skip`) and return one report."""
    started = time.perf_counter()
    checks = [get_check(c) for c in only] if only is not None else all_checks()
    skipped = {get_check(c).id for c in skip}
    report = Report(inputs=[str(p) for p in context.paths or []])
    met = context.met_needs()
    for check in checks:
        if check.id in skipped:
            report.not_assessed.append(NotAssessed(check.id, check.risks, "skipped by request"))
            continue
        missing = sorted(check.needs - met)
        if missing:
            reason = "needs " + ", ".join(missing)
            report.not_assessed.append(NotAssessed(check.id, check.risks, reason))
            continue
        _run_one(check, context, report)
    report.duration_s = time.perf_counter() - started
    return report


def _run_one(check: Check, context: AuditContext, report: Report) -> None:
    try:
        result = check.run(context)
    except NothingToAssess as reason:
        report.not_assessed.append(NotAssessed(check.id, check.risks, str(reason)))
        return
    except MlwardenError:
        raise
    except Exception as exc:  # a bug in one check must not hide the others' results
        report.errors.append(ErrorEntry(path=check.id, message=f"check failed: {exc!r}"))
        report.not_assessed.append(NotAssessed(check.id, check.risks, "check failed"))
        return
    record_result(report, check, result)


def record_result(report: Report, check: Check, result: CheckResult) -> None:
    """Add what `check` produced to `report`: it ran, its risks were assessed, its results."""
    report.checks_run.append(check.id)
    report.risks_assessed[check.id] = list(check.risks)
    report.extend(findings=result.findings, scanned=result.scanned, errors=result.errors)
    if result.metrics:
        report.metrics[check.id] = result.metrics
    report.figures.extend(result.figures)
