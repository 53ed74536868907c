"""The check registry: each check declares the risks it covers and what it needs to run.

A check is a function ``(context) -> CheckResult``. Later capabilities add checks by registering
them in their own module and naming that module in `BUILTIN_CHECK_MODULES`; nothing else in the
runner changes. Not for: running checks (see `runner`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlwarden.errors import UsageError
from mlwarden.findings import Finding, Risk
from mlwarden.report.model import ErrorEntry, Figure, ScannedFile

if TYPE_CHECKING:
    from mlwarden.audit.runner import AuditContext

BUILTIN_CHECKS: dict[str, str] = {
    "ml01.evasion": "mlwarden.evaluate.check",
    "ml03.inversion": "mlwarden.privacy.check",
    "ml04.membership": "mlwarden.privacy.check",
    "ml06.code": "mlwarden.scan.code.check",
    "ml06.model_files": "mlwarden.scan.check",
    "ml06.dependencies": "mlwarden.scan.deps.check",
    "ml10.signature": "mlwarden.integrity.check",
}
"""Check id -> the module that registers it. A check's module is imported only when that check
is asked for (or all are listed), so `mlwarden scan` never imports the attack machinery."""

BUILTIN_CHECK_MODULES = tuple(dict.fromkeys(BUILTIN_CHECKS.values()))
"""Modules that register the built-in checks when imported."""


@dataclass
class CheckResult:
    """What one check contributes to the report."""

    findings: list[Finding] = field(default_factory=list)
    scanned: list[ScannedFile] = field(default_factory=list)
    errors: list[ErrorEntry] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)


class NothingToAssess(Exception):
    """Raised by a check whose needs were met but which found nothing to assess.

    The runner records the check as not assessed with this message as the reason.
    """


CheckFn = Callable[["AuditContext"], CheckResult]


@dataclass(frozen=True)
class Check:
    """A registered check."""

    id: str
    """Stable id, ``<risk>.<topic>`` (``ml06.model_files``)."""
    title: str
    risks: tuple[Risk, ...]
    needs: frozenset[str]
    """Context fields that must be present (``paths``, ``target``, ``data``, ``train_fn``)."""
    run: CheckFn


_CHECKS: dict[str, Check] = {}
_loaded = False


def register_check(
    check_id: str, *, title: str, risks: tuple[Risk, ...], needs: tuple[str, ...]
) -> Callable[[CheckFn], CheckFn]:
    """Register the decorated function as check `check_id`."""

    def decorate(fn: CheckFn) -> CheckFn:
        if check_id in _CHECKS and _CHECKS[check_id].run is not fn:
            raise ValueError(f"check {check_id!r} is registered twice")
        _CHECKS[check_id] = Check(check_id, title, risks, frozenset(needs), fn)
        return fn

    return decorate


def all_checks() -> list[Check]:
    """Every registered check, built-in ones included, in id order."""
    _load_builtin()
    return [_CHECKS[k] for k in sorted(_CHECKS)]


def get_check(check_id: str) -> Check:
    """The check called `check_id`, or a `UsageError` naming the known ones."""
    if check_id in BUILTIN_CHECKS and check_id not in _CHECKS:
        importlib.import_module(BUILTIN_CHECKS[check_id])
    if check_id not in _CHECKS:
        _load_builtin()
    try:
        return _CHECKS[check_id]
    except KeyError:
        known = ", ".join(sorted(_CHECKS))
        raise UsageError(f"unknown check {check_id!r}; known checks: {known}") from None


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        for module in BUILTIN_CHECK_MODULES:
            importlib.import_module(module)
        _loaded = True
