from __future__ import annotations

from collections.abc import Callable

import pytest

from mlwarden.findings import Finding, Severity
from mlwarden.scan.blob import BytesBlob
from mlwarden.scan.context import FileScan
from mlwarden.scan.engine import scan_blob
from mlwarden.scan.policy import Policy

Scan = Callable[..., FileScan]


@pytest.fixture
def scan_bytes() -> Scan:
    def scan(data: bytes, policy: Policy | None = None) -> FileScan:
        return scan_blob(BytesBlob(data), "sample", policy or Policy())

    return scan


def rules(state: FileScan, at_least: Severity = Severity.INFO) -> set[str]:
    return {f.rule for f in state.findings if f.severity >= at_least}


def worst(state: FileScan) -> Severity | None:
    return max((f.severity for f in state.findings), default=None)


def by_rule(state: FileScan, rule: str) -> list[Finding]:
    return [f for f in state.findings if f.rule == rule]
