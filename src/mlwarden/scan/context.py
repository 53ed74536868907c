"""What a format handler sees while it scans one source: where it is, and how to report.

One `FileScan` collects everything found in one top-level file; a `ScanContext` is the view of
one source inside it (the file itself, or a member nested some levels deep). Handlers report
findings, hand nested members back to the engine with `scan_child`, and call `check_time` in
long loops so that a hostile file can never hang the scan.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlwarden.findings import Finding, Location, Risk, Severity
from mlwarden.report.model import ErrorEntry, ScannedFile
from mlwarden.scan.blob import Blob
from mlwarden.scan.limits import Limits
from mlwarden.scan.policy import Policy

CHECK_ID = "ml06.model_files"


class LimitExceeded(Exception):
    """A resource limit was hit; the engine turns it into a finding and moves on."""

    def __init__(self, limit: str, detail: str) -> None:
        super().__init__(f"{limit}: {detail}")
        self.limit = limit
        self.detail = detail


@dataclass
class FileScan:
    """Results for one top-level file and everything inside it."""

    path: str
    """The file as shown to the user."""
    policy: Policy
    limits: Limits
    base_dir: str | None = None
    """The folder the user scanned, for resolving references that must stay inside it."""
    findings: list[Finding] = field(default_factory=list)
    scanned: list[ScannedFile] = field(default_factory=list)
    errors: list[ErrorEntry] = field(default_factory=list)
    decompressed_bytes: int = 0
    deadline: float = 0.0

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.limits.file_timeout_s


ChildScanner = Callable[["ScanContext", Blob, str, bool], None]


@dataclass
class ScanContext:
    """The view a handler gets of one source."""

    state: FileScan
    blob: Blob
    members: tuple[str, ...] = ()
    """Archive member chain leading to this source (empty for the file itself)."""
    depth: int = 0
    file_path: str | None = None
    """The real path on disk when this source is a whole file, else None."""
    _scan_child: ChildScanner | None = field(default=None, repr=False)
    format: str = "unknown"

    @property
    def policy(self) -> Policy:
        return self.state.policy

    @property
    def limits(self) -> Limits:
        return self.state.limits

    @property
    def member(self) -> str | None:
        """The member chain as shown in locations (``a.zip!archive/data.pkl``), or None."""
        return "!".join(self.members) if self.members else None

    def location(
        self, offset: int | None = None, line: int | None = None, column: int | None = None
    ) -> Location:
        """A location inside this source."""
        return Location(self.state.path, self.member, offset, line, column)

    def add(
        self,
        rule: str,
        severity: Severity,
        title: str,
        detail: str = "",
        *,
        offset: int | None = None,
        line: int | None = None,
        column: int | None = None,
        evidence: Mapping[str, Any] | None = None,
        remediation: str = "",
        risk: Risk = Risk.ML06,
    ) -> Finding:
        """Report a finding located in this source."""
        finding = Finding(
            risk=risk,
            check=CHECK_ID,
            rule=rule,
            severity=severity,
            title=title,
            detail=detail,
            location=self.location(offset, line, column),
            evidence=dict(evidence or {}),
            remediation=remediation or _default_remediation(rule),
        )
        self.state.findings.append(finding)
        return finding

    def limit_hit(self, exc: LimitExceeded, *, offset: int | None = None) -> None:
        """Report a resource limit hit as a finding: the content past it was not verified."""
        self.add(
            "scan.limit-exceeded",
            Severity.HIGH,
            f"Scan limit reached ({exc.limit}); the rest of this content was not verified",
            exc.detail,
            offset=offset,
            evidence={"limit": exc.limit},
            remediation="Inspect the file by hand, or raise the limit in a policy file "
            "([limits] section) if the file is trusted and legitimately large.",
        )

    def error(self, message: str) -> None:
        """Record that this source could not be scanned (makes the verdict incomplete)."""
        self.state.errors.append(ErrorEntry(self.state.path, message, self.member))

    def check_time(self) -> None:
        """Raise `LimitExceeded` once the per-file time limit has passed."""
        if time.monotonic() > self.state.deadline:
            raise LimitExceeded(
                "file_timeout_s",
                f"scanning took longer than {self.limits.file_timeout_s:g} s",
            )

    def count_decompressed(self, n: int) -> None:
        """Account `n` decompressed bytes against the per-file cap."""
        self.state.decompressed_bytes += n
        if self.state.decompressed_bytes > self.limits.max_decompressed_bytes:
            raise LimitExceeded(
                "max_decompressed_bytes",
                f"more than {self.limits.max_decompressed_bytes} bytes decompressed "
                "(a decompression bomb, or a file larger than the limit)",
            )

    def scan_child(self, blob: Blob, name: str, *, raw_data: bool = False) -> None:
        """Scan a nested source (an archive member, a decompressed stream) named `name`.

        `raw_data` marks bytes a loader copies without parsing (PyTorch tensor storages): only
        formats with a strong magic number are looked for, and no hidden-pickle search runs.
        """
        if self._scan_child is None:
            raise RuntimeError("scan_child called outside the engine")
        self._scan_child(self, blob, name, raw_data)


_REMEDIATIONS = {
    "pickle": "Do not load this file with pickle, torch.load(weights_only=False), joblib or "
    "numpy allow_pickle. Obtain the model from a trusted source in a safe format "
    "(safetensors, ONNX, skops) or allow the named classes in a policy file if you trust them.",
}


def _default_remediation(rule: str) -> str:
    return _REMEDIATIONS.get(rule.split(".", 1)[0], "")
