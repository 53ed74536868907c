"""The dependency audit: find dependency files, read them, look up advisories, judge each package.

`audit_dependencies` walks the paths it is given for dependency files (recognised by
`mlwarden.scan.deps.inputs`), reads installed environments when asked, fetches the advisories
about every package named (`sources`), and turns what matches into findings (risk ML06):

- ``deps.known-vulnerability``: an exact version (pinned, locked or installed) is affected;
- ``deps.unpinned-vulnerable-range``: a version range (not a pin) admits affected versions;
  which one gets installed depends on the resolver, so pinning or locking is needed to know;
- ``deps.unpinned`` (info): dependencies of a file without a lock beside it whose exact
  version is unknown (ranges, URLs, VCS references).

No advisory source (offline without a database, the API unreachable) is an error, never a clean
result. Not for: parsing (`inputs`), version matching (`osv`) or fetching (`sources`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from mlwarden.findings import Finding, Location, Risk, Severity
from mlwarden.report.model import ErrorEntry, ScannedFile, Table
from mlwarden.scan.deps import ml_advisories
from mlwarden.scan.deps.inputs import (
    SPECIFIER_ALTERNATIVES,
    Dependency,
    InputFormat,
    InputProblem,
    ParsedInput,
    recognise,
)
from mlwarden.scan.deps.osv import (
    COMPARABLE_RANGE_TYPES,
    Advisory,
    AffectedRange,
    SeverityAssessment,
    admitted_versions,
    advisory_severity,
    is_exact_version,
    match_version,
    version_key,
)
from mlwarden.scan.deps.settings import DepsSettings
from mlwarden.scan.deps.sources import OFFLINE_FIX, PackageQuery, SourceResult

CHECK_ID = "ml06.dependencies"
KNOWN_VULNERABILITY_RULE = "deps.known-vulnerability"
UNPINNED_VULNERABLE_RULE = "deps.unpinned-vulnerable-range"
UNPINNED_RULE = "deps.unpinned"

SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "node_modules",
        "site-packages",
        "dist-packages",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
    }
)
"""Folders never searched for dependency files: version control, virtual environments (also
any folder holding a ``pyvenv.cfg``), installed packages and caches. Installed environments
are audited with `DepsSettings.installed` / `DepsSettings.site_packages` instead."""
CANDIDATE_SUFFIXES = (".txt", ".in", ".toml", ".lock", ".json")
"""Only files with these endings are looked at while walking a folder."""
HEAD_BYTES = 8192
"""Bytes of a file read to recognise it by content."""
MAX_SUMMARY_CHARS = 120
MAX_DETAIL_CHARS = 600
MAX_LISTED = 50
"""Dependencies listed by name in one ``deps.unpinned`` finding."""

CATEGORY_ADVICE = {
    "unsafe deserialisation": (
        "Until then, load only model files from sources you trust, prefer formats that hold no "
        "code (safetensors, ONNX) and scan files with `mlwarden scan` before loading them."
    ),
    "template injection": (
        "Until then, load chat templates and models only from sources you trust."
    ),
    "remote code loading": "Never pass trust_remote_code=True for repositories you do not control.",
    "model file parsing": "Until then, open model files only from sources you trust.",
}

ProgressFn = Callable[[str, int, int], None]


@dataclass
class DepsAuditResult:
    """What the dependency audit found."""

    findings: list[Finding] = field(default_factory=list)
    scanned: list[ScannedFile] = field(default_factory=list)
    errors: list[ErrorEntry] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    inputs: list[ParsedInput] = field(default_factory=list)
    """Every dependency file and environment read."""
    source_errors: list[ErrorEntry] = field(default_factory=list)
    """Why the advisory source could not answer (also in `errors`); empty when it did."""


def audit_dependencies(
    paths: Sequence[str | os.PathLike[str]],
    settings: DepsSettings | None = None,
    *,
    progress: ProgressFn | None = None,
) -> DepsAuditResult:
    """Audit the dependency files under `paths` (files or folders) and the environments
    `settings` names against OSV advisories. Missing paths are errors, never skipped."""
    settings = settings or DepsSettings()
    result = DepsAuditResult()
    files = list(_discover(paths, result))
    for done, (disk, shown, fmt) in enumerate(files, start=1):
        _read_file(disk, shown, fmt, result)
        if progress:
            progress("reading dependency files", done, len(files))
    _read_environments(settings, result)
    for parsed in result.inputs:
        result.errors.extend(parsed.errors)
    _Judge(settings, result, progress).run()
    return result


# Finding the inputs


def _discover(
    paths: Sequence[str | os.PathLike[str]], result: DepsAuditResult
) -> Iterator[tuple[Path, str, InputFormat]]:
    """(file on disk, path as shown, format) of each dependency file, each file once."""
    seen: set[Path] = set()
    for raw in paths:
        shown = os.fspath(raw)
        path = Path(shown)
        if not os.path.lexists(shown):
            result.errors.append(ErrorEntry(shown, "no such file or directory"))
            continue
        candidates: Iterator[tuple[Path, str, bool]]
        if path.is_dir() and not path.is_symlink():
            candidates = ((p, str(p), False) for p in _walk(path))
        else:
            candidates = iter([(path, shown, True)])
        for disk, shown_path, explicit in candidates:
            key = disk.resolve()
            if key in seen or not disk.is_file():
                continue
            fmt = _format_of(disk, explicit)
            if fmt is not None:
                seen.add(key)
                yield disk, shown_path, fmt


def _walk(root: Path) -> Iterator[Path]:
    """Candidate files under `root`; a symbolic link only when it points inside `root`."""
    inside = root.resolve()
    for folder, dirs, files in os.walk(root, followlinks=False):
        if "pyvenv.cfg" in files and Path(folder) != root:
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            if name.lower().endswith(CANDIDATE_SUFFIXES):
                path = Path(folder) / name
                if not path.is_symlink() or path.resolve().is_relative_to(inside):
                    yield path


def _format_of(path: Path, explicit: bool) -> InputFormat | None:
    try:
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES).decode("utf-8", errors="replace")
    except OSError:
        head = ""
    return recognise(path, head, explicit=explicit)


def _read_file(disk: Path, shown: str, fmt: InputFormat, result: DepsAuditResult) -> None:
    try:
        parsed = fmt.parse(disk, shown)
    except InputProblem as exc:
        result.errors.append(ErrorEntry(shown, f"cannot read {fmt.name} file: {exc}"))
        parsed = ParsedInput(path=shown, format=fmt.name, is_lock=fmt.is_lock, files=[shown])
    result.inputs.append(parsed)


def _read_environments(settings: DepsSettings, result: DepsAuditResult) -> None:
    from mlwarden.scan.deps.inputs.installed import read_environment, running_environment

    if settings.installed:
        folders = running_environment()
        shown = "installed environment (" + ", ".join(str(f) for f in folders) + ")"
        result.inputs.append(read_environment(folders, shown))
    for folder in settings.site_packages:
        result.inputs.append(read_environment([folder], str(folder)))


# Judging


@dataclass
class _Group:
    """Advisories about one package that are the same vulnerability (linked by aliases)."""

    members: list[Advisory]

    @property
    def lead(self) -> Advisory:
        """The member shown first: a GitHub advisory when there is one (its ranges and ratings
        are reviewed), else the first."""
        return next((a for a in self.members if a.id.startswith("GHSA-")), self.members[0])

    @property
    def ids(self) -> set[str]:
        return {i for a in self.members for i in (a.id, *a.aliases)}

    @property
    def aliases(self) -> list[str]:
        return sorted(self.ids - {self.lead.id})

    def severity(self) -> SeverityAssessment:
        """The worst rating any member gives (a computed or database rating before none)."""
        assessed = [advisory_severity(a) for a in self.members]
        rated = [s for s in assessed if s.source != "default"] or assessed
        return max(rated, key=lambda s: s.severity.rank)


def _groups(advisories: list[Advisory]) -> list[_Group]:
    """Advisories joined when one's id or aliases name another."""
    groups: list[_Group] = []
    for advisory in sorted(advisories, key=lambda a: a.id):
        names = {advisory.id, *advisory.aliases}
        joined = [g for g in groups if g.ids & names]
        for group in joined:
            groups.remove(group)
        groups.append(_Group([m for g in joined for m in g.members] + [advisory]))
    return groups


@dataclass
class _Verdict:
    """One group's match against one dependency."""

    group: _Group
    fixed: list[str]
    ranges: list[str]
    ranges_osv: list[dict[str, Any]]
    notes: list[str]
    admitted: list[str] = field(default_factory=list)


class _Judge:
    def __init__(
        self, settings: DepsSettings, result: DepsAuditResult, progress: ProgressFn | None
    ) -> None:
        self.settings = settings
        self.result = result
        self.progress = progress
        self.ignore = {k.strip().upper(): v for k, v in settings.ignore.items()}
        self.ignored: list[dict[str, Any]] = []
        self.unknown: dict[str, list[str]] = {}
        self.unpinned: dict[str, list[str]] = {}
        self.resolved = 0

    def run(self) -> None:
        dependencies = self._dependencies()
        resolved = self._resolved_by_lock()
        to_judge = []
        for dependency, parsed in dependencies:
            if (
                not dependency.pinned
                and dependency.direct_url is None
                and ((_folder(dependency.source), dependency.name) in resolved)
            ):
                self.resolved += 1
                continue
            to_judge.append((dependency, parsed))
        source = self._advisories(to_judge)
        groups = {name: _groups(advisories) for name, advisories in source.by_package.items()}
        for dependency, parsed in to_judge:
            self._judge(dependency, parsed, groups.get(dependency.name, []), source)
        self._unpinned_findings()
        self._inventory()
        self._metrics(dependencies, source)

    def _dependencies(self) -> list[tuple[Dependency, ParsedInput]]:
        seen: set[tuple[Any, ...]] = set()
        found = []
        for parsed in self.result.inputs:
            for dependency in parsed.dependencies:
                key = (
                    dependency.name,
                    dependency.version,
                    dependency.specifier,
                    dependency.direct_url,
                    dependency.source,
                    dependency.line,
                )
                if key not in seen:
                    seen.add(key)
                    found.append((dependency, parsed))
        return found

    def _resolved_by_lock(self) -> set[tuple[str, str]]:
        """(folder, name) of every package a lock file fixes: a range beside it is resolved."""
        return {
            (_folder(parsed.path), dependency.name)
            for parsed in self.result.inputs
            if parsed.is_lock and parsed.format != "installed"
            for dependency in parsed.dependencies
        }

    def _advisories(self, dependencies: list[tuple[Dependency, ParsedInput]]) -> SourceResult:
        queries = sorted(
            {PackageQuery(d.name, d.version) for d, _ in dependencies if d.direct_url is None},
            key=lambda q: (q.name, q.version or ""),
        )
        if not queries:
            return SourceResult(source="none needed (no package to look up)")
        if self.settings.osv_db is not None:
            from mlwarden.scan.deps.sources.offline import load_offline

            source = load_offline(self.settings.osv_db, {q.name for q in queries})
        elif self.settings.online:
            from mlwarden.scan.deps.sources.online import query_online

            source = query_online(
                self.settings.osv_url,
                queries,
                timeout_s=self.settings.timeout_s,
                progress=self.progress,
            )
        else:
            source = SourceResult(source="none")
            source.errors.append(
                ErrorEntry(
                    "dependency audit",
                    "no advisory source: offline and no OSV database given, so no dependency "
                    f"could be checked; {OFFLINE_FIX}",
                )
            )
        self.result.errors.extend(source.errors)
        self.result.source_errors.extend(source.errors)
        return source

    def _judge(
        self,
        dependency: Dependency,
        parsed: ParsedInput,
        groups: list[_Group],
        source: SourceResult,
    ) -> None:
        if dependency.direct_url is not None:
            self._note(self.unknown, parsed, dependency, f"{dependency.direct_url}")
            return
        if dependency.version is not None:
            if not is_exact_version(dependency.version):
                note = f"=={dependency.version} is not a PEP 440 version; ranges not compared"
                self._note(self.unknown, parsed, dependency, note)
            for group in groups:
                verdict = self._pinned_verdict(dependency, group, source)
                if verdict is not None and not self._ignored(dependency, group):
                    self.result.findings.append(_known_finding(dependency, parsed, verdict))
            return
        self._note(self.unpinned, parsed, dependency, dependency.specifier or "any version")
        verdicts = []
        for group in groups:
            verdict = self._range_verdict(dependency, group)
            if verdict is not None and not self._ignored(dependency, group):
                verdicts.append(verdict)
        if verdicts:
            self.result.findings.append(_range_finding(dependency, parsed, verdicts))

    def _pinned_verdict(
        self, dependency: Dependency, group: _Group, source: SourceResult
    ) -> _Verdict | None:
        version = dependency.version or ""
        verdict = _Verdict(group, [], [], [], [])
        matched = False
        for advisory in group.members:
            for affected in advisory.for_package(dependency.name):
                match = match_version(affected, version)
                verdict.notes += match.notes
                _add_ranges(verdict, affected.ranges)
                if match.affected:
                    matched = True
                    verdict.fixed += match.fixed
            if (dependency.name, version, advisory.id) in source.confirmed:
                matched = True
                verdict.notes.append(f"{source.source} reports {version} as affected")
        if not matched:
            return None
        verdict.fixed = _sorted_versions(verdict.fixed)
        verdict.notes = list(dict.fromkeys(verdict.notes))
        return verdict

    def _range_verdict(self, dependency: Dependency, group: _Group) -> _Verdict | None:
        try:
            specifiers = [
                SpecifierSet(s) for s in dependency.specifier.split(SPECIFIER_ALTERNATIVES)
            ]
        except InvalidSpecifier:
            specifiers = [SpecifierSet()]
        verdict = _Verdict(group, [], [], [], [])
        for advisory in group.members:
            for affected in advisory.for_package(dependency.name):
                admitted = admitted_versions(affected, specifiers)
                if admitted:
                    verdict.admitted += admitted
                    _add_ranges(verdict, affected.ranges)
                    verdict.fixed += [
                        e.version
                        for r in affected.ranges
                        if r.type in COMPARABLE_RANGE_TYPES
                        for e in r.events
                        if e.kind == "fixed"
                    ]
        if not verdict.admitted:
            return None
        verdict.admitted = list(dict.fromkeys(verdict.admitted))[:5]
        verdict.fixed = _sorted_versions(verdict.fixed)
        return verdict

    def _ignored(self, dependency: Dependency, group: _Group) -> bool:
        hit = next((i for i in sorted(group.ids) if i.upper() in self.ignore), None)
        if hit is None:
            return False
        self.ignored.append(
            {
                "advisory": group.lead.id,
                "ignored_as": hit,
                "package": dependency.name,
                "version": dependency.version or dependency.specifier or "any",
                "location": _where(dependency),
                "justification": self.ignore[hit.upper()],
            }
        )
        return True

    def _note(
        self, bucket: dict[str, list[str]], parsed: ParsedInput, dep: Dependency, what: str
    ) -> None:
        if parsed.is_lock and bucket is self.unpinned:
            return
        bucket.setdefault(dep.source, []).append(f"{dep.name} ({what})")

    def _unpinned_findings(self) -> None:
        for source in sorted(set(self.unpinned) | set(self.unknown)):
            ranges = self.unpinned.get(source, [])
            unknown = self.unknown.get(source, [])
            total = len(ranges) + len(unknown)
            listed = [*unknown, *ranges][:MAX_LISTED]
            more = f" and {total - len(listed)} more" if total > len(listed) else ""
            self.result.findings.append(
                Finding(
                    risk=Risk.ML06,
                    check=CHECK_ID,
                    rule=UNPINNED_RULE,
                    severity=Severity.INFO,
                    title=f"{total} dependencies have no exact version; they were audited "
                    "as ranges or not at all",
                    detail=(
                        "Without an exact version the audit can only say whether a range admits "
                        "vulnerable versions; a URL or VCS reference cannot be checked at all. "
                        f"Not pinned: {', '.join(listed)}{more}."
                    ),
                    location=Location(path=source),
                    evidence={"ranges": ranges, "unknown_version": unknown},
                    remediation=(
                        "Pin exact versions or commit a lock file (uv lock, poetry lock, "
                        "pip-compile, pylock.toml) beside this file and audit it."
                    ),
                )
            )

    def _inventory(self) -> None:
        worst: dict[str, Severity] = {}
        for finding in self.result.findings:
            if finding.location is not None:
                path = finding.location.path
                if path not in worst or finding.severity > worst[path]:
                    worst[path] = finding.severity
        listed: set[str] = set()
        for parsed in self.result.inputs:
            for path in parsed.files:
                if path in listed:
                    continue
                listed.add(path)
                size = parsed.size if path == parsed.path else _size(path)
                severity = max(
                    (s for p, s in worst.items() if p == path or p.startswith(path + os.sep)),
                    default=None,
                )
                self.result.scanned.append(ScannedFile(path, None, parsed.format, size, severity))

    def _metrics(
        self, dependencies: list[tuple[Dependency, ParsedInput]], source: SourceResult
    ) -> None:
        known = [f for f in self.result.findings if f.rule == KNOWN_VULNERABILITY_RULE]
        ranges = [f for f in self.result.findings if f.rule == UNPINNED_VULNERABLE_RULE]
        deps = [d for d, _ in dependencies]
        metrics: dict[str, Any] = {
            "advisory_source": source.source,
            "advisories_read": source.advisories_read,
            "dependency_files": len({f for p in self.result.inputs for f in p.files}),
            "dependencies": len(deps),
            "pinned": sum(1 for d in deps if d.pinned),
            "ranges": sum(1 for d in deps if not d.pinned and d.direct_url is None),
            "unknown_version": sum(1 for d in deps if d.direct_url is not None),
            "resolved_by_lock": self.resolved,
            "known_vulnerabilities": len(known),
            "vulnerable_ranges": len(ranges),
            "ml_specific": sum(1 for f in known + ranges if f.evidence.get("ml_specific")),
            "ignored_count": len(self.ignored),
            "ignored": self.ignored,
            "skipped": list(dict.fromkeys(s for p in self.result.inputs for s in p.skipped)),
        }
        if known:
            metrics["vulnerabilities"] = Table(
                columns=("package", "version", "advisory", "severity", "fixed in", "where"),
                rows=tuple(
                    (
                        str(f.evidence["package"]),
                        str(f.evidence["version"]),
                        str(f.evidence["advisory"]),
                        f.severity.value,
                        ", ".join(f.evidence["fixed_versions"]) or "no fix",
                        str(f.location),
                    )
                    for f in sorted(known, key=lambda f: (-f.severity.rank, str(f.location)))
                ),
                title="Known vulnerabilities in exact versions",
            ).to_data()
        self.result.metrics = metrics


# Findings


def _known_finding(dependency: Dependency, parsed: ParsedInput, verdict: _Verdict) -> Finding:
    name, version = dependency.name, dependency.version or ""
    group = verdict.group
    lead = group.lead
    severity = group.severity()
    ml = _ml(group, name)
    level = severity.severity
    if ml is not None and ml.code_execution_on_load and level < Severity.HIGH:
        level = Severity.HIGH
    cve = next((a for a in group.aliases if a.startswith("CVE-")), None)
    label = f"{lead.id} ({cve})" if cve else lead.id
    prefix = f"ML-specific vulnerability ({ml.category}) in" if ml else "Known vulnerability in"
    title = f"{prefix} {name} {version}: {label}: {_short(lead.summary or lead.details)}"
    fixed = verdict.fixed
    if fixed:
        remediation = (
            f"Upgrade {name} to >= {fixed[0]} (the lowest release that fixes {lead.id} above "
            f"{version}), then re-lock and re-run the audit."
        )
    else:
        remediation = (
            f"No fixed release of {name} is published for {lead.id}: remove or replace {name}, "
            f"or keep untrusted input away from the affected feature (see {lead.url})."
        )
    if ml is not None and ml.category in CATEGORY_ADVICE:
        remediation += " " + CATEGORY_ADVICE[ml.category]
    detail = (
        f"{name} {version} ({parsed.format}) is affected by {label}. "
        f"Affected: {'; '.join(verdict.ranges) or 'listed versions'}. "
        f"Fixed in: {', '.join(fixed) or 'no release yet'}. "
        f"{_paragraph(lead.details or lead.summary)}"
    ).strip()
    evidence = {
        "advisory": lead.id,
        "aliases": group.aliases,
        "package": name,
        "version": version,
        "affected_ranges": verdict.ranges,
        "affected_ranges_osv": verdict.ranges_osv,
        "fixed_versions": fixed,
        "url": lead.url,
        "input_format": parsed.format,
        **_severity_evidence(severity),
        **_ml_evidence(ml),
        **_context_evidence(dependency, verdict),
    }
    return Finding(
        risk=Risk.ML06,
        check=CHECK_ID,
        rule=KNOWN_VULNERABILITY_RULE,
        severity=level,
        title=title,
        detail=detail,
        location=Location(path=dependency.source, line=dependency.line),
        evidence=evidence,
        remediation=remediation,
    )


def _range_finding(
    dependency: Dependency, parsed: ParsedInput, verdicts: list[_Verdict]
) -> Finding:
    name = dependency.name
    wanted = f"{name}{dependency.specifier}" if dependency.specifier else f"{name} (any version)"
    advisories = []
    worst = Severity.LOW
    ml_any = False
    floors = []
    unfixed = []
    for verdict in sorted(verdicts, key=lambda v: v.group.lead.id):
        group, lead = verdict.group, verdict.group.lead
        severity = group.severity()
        ml = _ml(group, name)
        level = severity.severity
        if ml is not None and ml.code_execution_on_load and level < Severity.HIGH:
            level = Severity.HIGH
        worst = max(worst, level)
        ml_any = ml_any or ml is not None
        if verdict.fixed:
            floors.append(verdict.fixed[-1])
        else:
            unfixed.append(lead.id)
        advisories.append(
            {
                "advisory": lead.id,
                "aliases": group.aliases,
                "severity": level.value,
                "summary": _short(lead.summary or lead.details),
                "admitted_versions": verdict.admitted,
                "affected_ranges": verdict.ranges,
                "fixed_versions": verdict.fixed,
                "url": lead.url,
                **_ml_evidence(ml),
            }
        )
    # a range is one step less certain than a pin: at most medium, at least low
    level = min(Severity.MEDIUM, _one_below(worst))
    floor = _sorted_versions(floors)[-1] if floors else None
    listed = ", ".join(
        f"{a['advisory']} (admits {', '.join(a['admitted_versions'])})" for a in advisories
    )
    remediation = (
        f"Pin {name} exactly or commit a lock file, then audit the lock file to know which "
        "version is used."
    )
    if floor:
        remediation += f" Raising the lower bound to {name}>={floor} excludes the fixed advisories."
    if unfixed:
        remediation += f" No fixed release exists yet for {', '.join(unfixed)}."
    return Finding(
        risk=Risk.ML06,
        check=CHECK_ID,
        rule=UNPINNED_VULNERABLE_RULE,
        severity=level,
        title=(
            f"{wanted} admits versions with {len(advisories)} known "
            f"{'vulnerability' if len(advisories) == 1 else 'vulnerabilities'}"
            + (" (ML-specific)" if ml_any else "")
        ),
        detail=(
            f"The requirement {wanted} ({parsed.format}) is a range, not a pin: it allows "
            f"versions affected by {listed}. Which version is installed depends on the resolver "
            "and the day; pin or lock the dependencies to know."
        ),
        location=Location(path=dependency.source, line=dependency.line),
        evidence={
            "package": name,
            "specifier": dependency.specifier,
            "advisories": advisories,
            "ml_specific": ml_any,
            "suggested_minimum": floor,
            "input_format": parsed.format,
            **_context_evidence(dependency, None),
        },
        remediation=remediation,
    )


def _ml(group: _Group, name: str) -> ml_advisories.MlAssessment | None:
    assessments = [ml_advisories.assess(a, name) for a in [group.lead, *group.members]]
    found = [a for a in assessments if a is not None]
    if not found:
        return None
    return max(found, key=lambda a: (a.code_execution_on_load, a.category != "ML framework"))


def _severity_evidence(severity: SeverityAssessment) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "advisory_severity": severity.severity.value,
        "severity_source": severity.source,
    }
    if severity.cvss:
        evidence["cvss_vector"] = severity.cvss
        evidence["cvss_score"] = severity.cvss_score
    return evidence


def _ml_evidence(ml: ml_advisories.MlAssessment | None) -> dict[str, Any]:
    if ml is None:
        return {"ml_specific": False}
    return {
        "ml_specific": True,
        "category": ml.category,
        "ml_stack": ml.stack,
        "code_execution_on_load": ml.code_execution_on_load,
        "matched_patterns": list(ml.matched),
    }


def _context_evidence(dependency: Dependency, verdict: _Verdict | None) -> dict[str, Any]:
    evidence: dict[str, Any] = {}
    if dependency.group:
        evidence["group"] = dependency.group
    if dependency.marker:
        evidence["marker"] = dependency.marker
    if verdict is not None and verdict.notes:
        evidence["matching_notes"] = verdict.notes
    if verdict is not None and len(verdict.group.members) > 1:
        evidence["related_advisories"] = sorted(a.id for a in verdict.group.members)
    return evidence


def _add_ranges(verdict: _Verdict, ranges: Sequence[AffectedRange]) -> None:
    for affected_range in ranges:
        if affected_range.type not in COMPARABLE_RANGE_TYPES:
            continue  # GIT ranges name commits, not releases
        described = affected_range.describe()
        if described not in verdict.ranges:
            verdict.ranges.append(described)
            verdict.ranges_osv.append(affected_range.to_data())


def _sorted_versions(versions: list[str]) -> list[str]:
    """Distinct PEP 440 versions, lowest first."""
    return sorted({v for v in versions if is_exact_version(v)}, key=version_key)


def _one_below(severity: Severity) -> Severity:
    order = list(Severity)
    return order[max(order.index(severity) - 1, order.index(Severity.LOW))]


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_SUMMARY_CHARS else line[: MAX_SUMMARY_CHARS - 1] + "…"


def _paragraph(text: str) -> str:
    """The first paragraph of an advisory's text (Markdown headings left out), shortened."""
    lines = [line for line in text.strip().splitlines() if not line.lstrip().startswith("#")]
    paragraphs = [p for p in "\n".join(lines).split("\n\n") if p.strip()]
    first = " ".join(paragraphs[0].split()) if paragraphs else ""
    return first if len(first) <= MAX_DETAIL_CHARS else first[: MAX_DETAIL_CHARS - 1] + "…"


def _where(dependency: Dependency) -> str:
    return str(Location(path=dependency.source, line=dependency.line))


def _folder(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


def _size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None
