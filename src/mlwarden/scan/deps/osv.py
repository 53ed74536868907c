"""OSV advisories for PyPI packages: the model, version matching and severity.

An advisory (https://ossf.github.io/osv-schema/) lists, per affected package, ranges of
``ECOSYSTEM`` versions bounded by ``introduced`` / ``fixed`` / ``last_affected`` / ``limit``
events and explicit ``versions``. Matching follows the schema's algorithm with PEP 440
ordering (`packaging.version`). Where an advisory's own data cannot be compared (an event
version that is not PEP 440), the range is widened rather than dropped: a wrong "not affected"
is the one mistake an audit must not make. Not for: fetching advisories (`sources`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mlwarden.findings import Severity
from mlwarden.scan.deps.cvss import CvssScore, base_score

ECOSYSTEM = "PyPI"
COMPARABLE_RANGE_TYPES = frozenset({"ECOSYSTEM", "SEMVER"})
"""Range types whose events are package versions; ``GIT`` ranges name commits, and the
``versions`` list OSV derives from them is what is matched instead."""
MAX_EXAMPLE_VERSIONS = 5
"""Admitted vulnerable versions listed in a finding about a version range."""
DATABASE_SEVERITIES: Mapping[str, Severity] = {
    "CRITICAL": Severity.CRITICAL,
    "HIGH": Severity.HIGH,
    "MODERATE": Severity.MEDIUM,
    "MEDIUM": Severity.MEDIUM,
    "LOW": Severity.LOW,
}
"""``database_specific.severity`` (GitHub's ratings) -> mlwarden severity."""
_CVSS_SEVERITIES: Mapping[str, Severity] = {
    "none": Severity.INFO,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}
_EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")


class MalformedAdvisory(ValueError):
    """An OSV entry that does not have the schema's shape."""


@dataclass(frozen=True)
class Event:
    """One range event: ``introduced``, ``fixed``, ``last_affected`` or ``limit``."""

    kind: str
    version: str


@dataclass(frozen=True)
class AffectedRange:
    """One ``ranges`` entry of an affected package."""

    type: str
    events: tuple[Event, ...]

    def describe(self) -> str:
        """The range as a person reads it (``>= 3.0.0, < 3.9.0``; ``<= 1.2``; ``all versions``)."""
        pieces = []
        for event in self.events:
            if event.kind == "introduced" and event.version != "0":
                pieces.append(f">= {event.version}")
            elif event.kind == "fixed":
                pieces.append(f"< {event.version}")
            elif event.kind == "last_affected":
                pieces.append(f"<= {event.version}")
            elif event.kind == "limit" and event.version != "*":
                pieces.append(f"< {event.version} (limit)")
        return ", ".join(pieces) or "all versions"

    def to_data(self) -> dict[str, Any]:
        """The range as OSV writes it."""
        return {"type": self.type, "events": [{e.kind: e.version} for e in self.events]}


@dataclass(frozen=True)
class Affected:
    """What an advisory says about one PyPI package."""

    package: str
    """Canonical project name."""
    ranges: tuple[AffectedRange, ...]
    versions: tuple[str, ...]
    """Versions listed explicitly as affected."""


@dataclass(frozen=True)
class SeverityVector:
    """A ``severity`` entry: its type (``CVSS_V3``, ``CVSS_V4``) and score (a vector)."""

    type: str
    score: str


@dataclass(frozen=True)
class Advisory:
    """An OSV advisory, reduced to its PyPI packages."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    details: str
    affected: tuple[Affected, ...]
    severity: tuple[SeverityVector, ...]
    database_severity: str | None
    """``database_specific.severity`` (``CRITICAL``, ``HIGH``, ``MODERATE``, ``LOW``)."""
    modified: str = ""

    def for_package(self, name: str) -> list[Affected]:
        """The entries about project `name` (canonical)."""
        return [a for a in self.affected if a.package == name]

    @property
    def packages(self) -> set[str]:
        """Canonical names of the PyPI projects it affects."""
        return {a.package for a in self.affected}

    @property
    def url(self) -> str:
        """The advisory's page."""
        return f"https://osv.dev/vulnerability/{self.id}"


def parse_advisory(data: Any) -> Advisory | None:
    """An advisory from OSV JSON; None when it affects no PyPI package or was withdrawn.
    Raises `MalformedAdvisory` when the entry does not have the schema's shape."""
    if not isinstance(data, dict):
        raise MalformedAdvisory("an OSV entry must be a JSON object")
    advisory_id = data.get("id")
    if not isinstance(advisory_id, str) or not advisory_id:
        raise MalformedAdvisory("an OSV entry has no id")
    if data.get("withdrawn"):
        return None
    affected_raw = data.get("affected", [])
    if not isinstance(affected_raw, list):
        raise MalformedAdvisory(f"{advisory_id}: 'affected' is not a list")
    affected = tuple(a for a in (_affected(advisory_id, item) for item in affected_raw) if a)
    if not affected:
        return None
    database = data.get("database_specific")
    database_severity = database.get("severity") if isinstance(database, dict) else None
    return Advisory(
        id=advisory_id,
        aliases=tuple(_strings(data.get("aliases"), advisory_id, "aliases")),
        summary=_text(data.get("summary")),
        details=_text(data.get("details")),
        affected=affected,
        severity=_severity_vectors(data, affected_raw),
        database_severity=str(database_severity).upper() if database_severity else None,
        modified=_text(data.get("modified")),
    )


def _affected(advisory_id: str, item: Any) -> Affected | None:
    if not isinstance(item, dict):
        raise MalformedAdvisory(f"{advisory_id}: an 'affected' entry is not an object")
    package = item.get("package")
    if not isinstance(package, dict) or package.get("ecosystem") != ECOSYSTEM:
        return None
    name = package.get("name")
    if not isinstance(name, str) or not name:
        raise MalformedAdvisory(f"{advisory_id}: a PyPI package has no name")
    ranges_raw = item.get("ranges", [])
    if not isinstance(ranges_raw, list):
        raise MalformedAdvisory(f"{advisory_id}: 'ranges' of {name} is not a list")
    ranges = tuple(_range(advisory_id, r) for r in ranges_raw)
    versions = tuple(_strings(item.get("versions"), advisory_id, "versions"))
    return Affected(str(canonicalize_name(name)), ranges, versions)


def _range(advisory_id: str, raw: Any) -> AffectedRange:
    if not isinstance(raw, dict) or not isinstance(raw.get("events"), list):
        raise MalformedAdvisory(f"{advisory_id}: a range has no list of events")
    events = []
    for event in raw["events"]:
        if not isinstance(event, dict):
            raise MalformedAdvisory(f"{advisory_id}: a range event is not an object")
        for kind in _EVENT_KINDS:
            if kind in event:
                events.append(Event(kind, str(event[kind])))
    return AffectedRange(str(raw.get("type", "")), tuple(events))


def _severity_vectors(data: dict[str, Any], affected: list[Any]) -> tuple[SeverityVector, ...]:
    entries = list(data.get("severity") or [])
    for item in affected:
        if isinstance(item, dict) and not entries:
            entries += list(item.get("severity") or [])
    return tuple(
        SeverityVector(str(e.get("type", "")), str(e.get("score", "")))
        for e in entries
        if isinstance(e, dict)
    )


def _strings(value: Any, advisory_id: str, field_name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedAdvisory(f"{advisory_id}: {field_name!r} is not a list")
    return [str(v) for v in value]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


# Version matching


@functools.lru_cache(maxsize=65536)
def parse_version(text: str) -> Version | None:
    """A PEP 440 version, or None when `text` is not one."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


@dataclass(frozen=True)
class Match:
    """How one version relates to one affected package."""

    affected: bool
    fixed: tuple[str, ...] = ()
    """Versions that fix the ranges that matched, lowest first (empty: no fix published)."""
    ranges: tuple[AffectedRange, ...] = ()
    """The ranges that matched."""
    notes: tuple[str, ...] = ()
    """Where the advisory's data had to be widened to compare (never narrowed)."""


def match_version(affected: Affected, version: str) -> Match:
    """Whether `version` is affected: listed in ``versions`` (a local build such as
    ``2.5.1+cu121`` counts as its public version), or inside an ``ECOSYSTEM`` range. A version
    that is not PEP 440 matches only the explicit list."""
    parsed = parse_version(version)
    public = parse_version(parsed.public) if parsed is not None else None
    listed = version in affected.versions or (
        public is not None and any(parse_version(v) == public for v in affected.versions)
    )
    matched: list[AffectedRange] = []
    fixed: set[str] = set()
    notes: list[str] = []
    if parsed is not None:
        for affected_range in affected.ranges:
            if affected_range.type not in COMPARABLE_RANGE_TYPES:
                continue
            inside, range_notes = _in_range(parsed, affected_range)
            notes += range_notes
            if inside:
                matched.append(affected_range)
                fixed.update(_fixes_above(parsed, affected_range))
    if not matched and not listed:
        return Match(affected=False)
    if not matched:
        fixed.update(_fixes_above_any(parsed, affected.ranges))
    ordered = sorted(fixed, key=version_key)
    return Match(True, tuple(ordered), tuple(matched), tuple(dict.fromkeys(notes)))


def _in_range(version: Version, affected_range: AffectedRange) -> tuple[bool, list[str]]:
    """The OSV schema's evaluation of one range, over events sorted by version."""
    notes: list[str] = []
    events: list[tuple[Version, int, str]] = []
    limits: list[Version | None] = []
    order = {"introduced": 0, "fixed": 1, "last_affected": 1}
    for event in affected_range.events:
        bound = Version("0") if event.version == "0" else parse_version(event.version)
        if event.kind == "limit":
            limits.append(None if event.version == "*" else bound)
            if bound is None and event.version != "*":
                notes.append(f"limit {event.version!r} is not a PEP 440 version; ignored")
            continue
        if bound is None:
            if event.kind == "introduced":
                bound = Version("0")
                notes.append(f"introduced {event.version!r} is not PEP 440; read as 0")
            else:
                notes.append(f"{event.kind} {event.version!r} is not PEP 440; range left open")
                continue
        events.append((bound, order[event.kind], event.kind))
    vulnerable = False
    for bound, _, kind in sorted(events):
        if kind == "introduced" and version >= bound:
            vulnerable = True
        elif (kind == "fixed" and version >= bound) or (
            kind == "last_affected" and version > bound
        ):
            vulnerable = False
    known_limits = [limit for limit in limits if limit is not None]
    if vulnerable and known_limits and len(known_limits) == len(limits):
        vulnerable = any(version < limit for limit in known_limits)
    return vulnerable, notes


def _fixes_above(version: Version, affected_range: AffectedRange) -> list[str]:
    """The lowest ``fixed`` version of the range above `version` (as a list, empty if none)."""
    above = [
        (parsed, event.version)
        for event in affected_range.events
        if event.kind == "fixed"
        and (parsed := parse_version(event.version)) is not None
        and parsed > version
    ]
    return [min(above)[1]] if above else []


def _fixes_above_any(version: Version | None, ranges: Iterable[AffectedRange]) -> list[str]:
    fixes = []
    for affected_range in ranges:
        if affected_range.type not in COMPARABLE_RANGE_TYPES:
            continue
        for event in affected_range.events:
            parsed = parse_version(event.version) if event.kind == "fixed" else None
            if parsed is not None and (version is None or parsed > version):
                fixes.append(event.version)
    return fixes


def admitted_versions(affected: Affected, specifiers: Sequence[SpecifierSet]) -> list[str]:
    """Affected versions that some alternative of `specifiers` allows (an empty set allows
    everything): up to `MAX_EXAMPLE_VERSIONS` of the newest versions the advisory lists, else
    the lowest admitted version derived from the bounds (derived versions may never have been
    released, so only the one that proves the overlap is given).

    The derived candidates are every range boundary and every specifier boundary with its
    nearest successors: where a range and a specifier overlap, the lowest version of the
    overlap is one of them, so an advisory without a list is still matched."""
    listed = sorted(
        (v for v in affected.versions if parse_version(v) is not None),
        key=version_key,
        reverse=True,
    )
    derived = [*_range_candidates(affected), *_spec_candidates(specifiers)]
    examples = _admitted(affected, listed, specifiers)
    if examples:
        return examples
    unique = {parse_version(v): v for v in reversed(derived)}
    ordered = sorted((v for k, v in unique.items() if k is not None), key=version_key)
    return _admitted(affected, ordered, specifiers)[:1]


def _admitted(
    affected: Affected, candidates: Sequence[str], specifiers: Sequence[SpecifierSet]
) -> list[str]:
    admitted: list[str] = []
    for candidate in candidates:
        version = parse_version(candidate)
        if version is None or not any(s.contains(version, prereleases=True) for s in specifiers):
            continue
        if match_version(affected, candidate).affected:
            admitted.append(candidate)
            if len(admitted) >= MAX_EXAMPLE_VERSIONS:
                break
    return admitted


def _range_candidates(affected: Affected) -> list[str]:
    found = []
    for affected_range in affected.ranges:
        for event in affected_range.events:
            if event.kind in ("introduced", "last_affected"):
                parsed = Version("0") if event.version == "0" else parse_version(event.version)
                if parsed is not None:
                    found.append(str(parsed))
    return found


def _spec_candidates(specifiers: Sequence[SpecifierSet]) -> list[str]:
    found = []
    for specifier_set in specifiers:
        for spec in specifier_set:
            base = parse_version(spec.version.removesuffix(".*"))
            if base is None:
                continue
            release = base.release
            found += [
                str(base),
                ".".join(str(p) for p in (*release, 1)),
                ".".join(str(p) for p in (*release[:-1], release[-1] + 1)),
            ]
    return found


def version_key(text: str) -> Version:
    """A sort key for version text; what is not PEP 440 sorts first."""
    return parse_version(text) or Version("0")


def is_exact_version(text: str) -> bool:
    """Whether `text` is a PEP 440 version (so ranges can be compared against it)."""
    return parse_version(text) is not None


# Severity


@dataclass(frozen=True)
class SeverityAssessment:
    """An advisory's severity and where it came from."""

    severity: Severity
    source: str
    """``database_specific`` (the database's own rating), ``cvss`` (computed from a CVSS v3
    base vector) or ``default`` (no usable rating: medium)."""
    cvss: str | None = None
    cvss_score: float | None = None


def advisory_severity(advisory: Advisory) -> SeverityAssessment:
    """The database's rating when it gives one, else the CVSS v3 base score of its vector,
    else medium."""
    rating = DATABASE_SEVERITIES.get(advisory.database_severity or "")
    cvss = _best_cvss(advisory.severity)
    if rating is not None:
        return SeverityAssessment(
            rating, "database_specific", cvss.vector if cvss else None, _score(cvss)
        )
    if cvss is not None:
        return SeverityAssessment(
            _CVSS_SEVERITIES[cvss.rating], "cvss", cvss.vector, cvss.base_score
        )
    return SeverityAssessment(Severity.MEDIUM, "default")


def _best_cvss(vectors: Iterable[SeverityVector]) -> CvssScore | None:
    for vector in vectors:
        if vector.score.startswith("CVSS:3."):
            try:
                return base_score(vector.score)
            except ValueError:
                continue
    return None


def _score(cvss: CvssScore | None) -> float | None:
    return cvss.base_score if cvss is not None else None
