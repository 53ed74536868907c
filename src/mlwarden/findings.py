"""The common currency of mlwarden: risks, severities, locations and findings.

Every check, scanner and attack reports what it found as `Finding` values defined here, and every
renderer reads only these. Nothing here computes or formats; it only names things.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Risk(enum.Enum):
    """The OWASP Machine Learning Security Top 10 (2023)."""

    ML01 = "ML01"
    ML02 = "ML02"
    ML03 = "ML03"
    ML04 = "ML04"
    ML05 = "ML05"
    ML06 = "ML06"
    ML07 = "ML07"
    ML08 = "ML08"
    ML09 = "ML09"
    ML10 = "ML10"

    @property
    def title(self) -> str:
        """The official OWASP title of the risk."""
        return RISK_TITLES[self]

    @property
    def url(self) -> str:
        """The OWASP page that describes the risk."""
        slug = RISK_TITLES[self].replace(" ", "_")
        return f"https://owasp.org/www-project-machine-learning-security-top-10/docs/{self.value}_2023-{slug}"


RISK_TITLES: Mapping[Risk, str] = {
    Risk.ML01: "Input Manipulation Attack",
    Risk.ML02: "Data Poisoning Attack",
    Risk.ML03: "Model Inversion Attack",
    Risk.ML04: "Membership Inference Attack",
    Risk.ML05: "Model Theft",
    Risk.ML06: "AI Supply Chain Attacks",
    Risk.ML07: "Transfer Learning Attack",
    Risk.ML08: "Model Skewing",
    Risk.ML09: "Output Integrity Attack",
    Risk.ML10: "Model Poisoning",
}


class Severity(str, enum.Enum):
    """How bad a finding is, ordered: ``Severity.HIGH > Severity.MEDIUM``."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info up to 4 for critical."""
        return _SEVERITY_ORDER.index(self)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Read a severity name, case-insensitively (``"High"`` -> ``Severity.HIGH``)."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {text!r}; expected one of: {names}") from None


_SEVERITY_ORDER = (Severity.INFO, Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)


@dataclass(frozen=True)
class Location:
    """Where a finding is: a file, optionally a member inside it, and a position."""

    path: str
    """The file as the user named it (or relative to the scanned folder)."""
    member: str | None = None
    """Archive member chain, outermost first, joined by ``!`` (``model.zip!archive/data.pkl``)."""
    offset: int | None = None
    """Byte offset inside the member (or the file) where the evidence starts."""
    line: int | None = None
    """1-based line, for text files."""
    column: int | None = None
    """1-based column, for text files."""

    def __str__(self) -> str:
        text = self.path
        if self.member:
            text += f"!{self.member}"
        if self.line is not None:
            text += f":{self.line}"
            if self.column is not None:
                text += f":{self.column}"
        if self.offset is not None:
            text += f"@{self.offset}"
        return text


@dataclass(frozen=True)
class Finding:
    """One thing mlwarden found, with the evidence to act on it."""

    risk: Risk
    """The OWASP ML Top 10 risk this finding belongs to."""
    check: str
    """The check family that produced it (``ml06.model_files``)."""
    rule: str
    """The stable id of the specific detector (``pickle.dangerous-call``); SARIF's ruleId."""
    severity: Severity
    title: str
    """One line a person reads first."""
    detail: str = ""
    """What exactly was seen and why it matters."""
    location: Location | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    """Machine-readable facts behind the finding (call chain, opcode, metrics, sample ids)."""
    remediation: str = ""
    """What to do about it."""
