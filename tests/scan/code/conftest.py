"""The `audit` fixture: write a snippet, audit it, return its findings."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from mlwarden.findings import Finding
from mlwarden.scan.code import audit_code

AuditFn = Callable[..., list[Finding]]


@pytest.fixture
def audit(tmp_path: Path) -> AuditFn:
    """``audit(source, name="snippet.py")`` -> the findings for that one file (no errors)."""

    def run(source: str, name: str = "snippet.py") -> list[Finding]:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        result = audit_code([path])
        assert result.errors == []
        return result.findings

    return run
