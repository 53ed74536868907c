"""Where advisories come from: an offline OSV export (`offline`) or the OSV API (`online`).

Both answer the same question, which advisories concern these packages, as one
`SourceResult`; what could not be read or fetched is an error in it, never a silent gap.
Not for: deciding whether a version is affected (`mlwarden.scan.deps.osv`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlwarden.report.model import ErrorEntry
from mlwarden.scan.deps.osv import Advisory

OFFLINE_FIX = "audit offline with --osv-db FILE (an OSV export such as PyPI all.zip)"
"""The fix every 'no advisory source' message names."""


@dataclass(frozen=True)
class PackageQuery:
    """One package to look up: its canonical name and, when pinned, its exact version."""

    name: str
    version: str | None = None


@dataclass
class SourceResult:
    """The advisories a source holds for the packages asked about."""

    source: str
    """What answered, for people (``OSV export PyPI-all.zip``, ``OSV API https://...``)."""
    by_package: dict[str, list[Advisory]] = field(default_factory=dict)
    """Canonical name -> the advisories that concern it (each advisory once)."""
    confirmed: set[tuple[str, str, str]] = field(default_factory=set)
    """(name, version, advisory id) the source itself matched (the API does): reported even
    where the advisory's own ranges cannot show it."""
    errors: list[ErrorEntry] = field(default_factory=list)
    advisories_read: int = 0
    """PyPI advisories read (offline) or fetched (online)."""

    def add(self, advisory: Advisory, names: set[str] | None = None) -> None:
        """Index `advisory` under each package it affects (only `names`, when given)."""
        for name in sorted(advisory.packages):
            if names is not None and name not in names:
                continue
            bucket = self.by_package.setdefault(name, [])
            if all(existing.id != advisory.id for existing in bucket):
                bucket.append(advisory)
