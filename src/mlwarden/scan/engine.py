"""The scan engine: walk paths, recognise each source by content, dispatch to its handler.

It owns recursion into containers (depth limit, one failing member never stops its siblings),
turns limit hits and handler failures into findings, and runs files in parallel (`parallel.py`).
Not for: understanding any format (see `formats/`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from mlwarden.findings import Finding, Location, Risk, Severity
from mlwarden.report.model import ErrorEntry, ScannedFile
from mlwarden.scan.blob import Blob, FileBlob
from mlwarden.scan.context import CHECK_ID, FileScan, LimitExceeded, ScanContext
from mlwarden.scan.formats import folder_analysers, handlers
from mlwarden.scan.parallel import map_ordered
from mlwarden.scan.policy import Policy

SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".ruff_cache"})
"""Folders never descended into (version-control metadata and caches)."""

PARALLEL_MIN_FILES = 32
"""Below this many files, worker start-up costs more than it saves."""


@dataclass
class ScanResult:
    """Everything found in a set of paths."""

    findings: list[Finding] = field(default_factory=list)
    scanned: list[ScannedFile] = field(default_factory=list)
    errors: list[ErrorEntry] = field(default_factory=list)

    def merge(self, other: FileScan | ScanResult) -> None:
        self.findings.extend(other.findings)
        self.scanned.extend(other.scanned)
        self.errors.extend(other.errors)


class _FileJob(NamedTuple):
    disk_path: str
    shown_path: str
    base_dir: str | None


ProgressFn = Callable[[str, int, int], None]


def scan_paths(
    paths: Sequence[str | os.PathLike[str]],
    policy: Policy,
    *,
    jobs: int = 1,
    progress: ProgressFn | None = None,
) -> ScanResult:
    """Scan files and folders; missing paths are errors, never silently skipped."""
    result = ScanResult()
    file_jobs: list[_FileJob] = []
    for raw in paths:
        shown = os.fspath(raw)
        if not os.path.lexists(shown):
            result.errors.append(ErrorEntry(shown, "no such file or directory"))
        elif os.path.isdir(shown) and not os.path.islink(shown):
            file_jobs.extend(_walk(shown, policy, result))
        else:
            file_jobs.append(_FileJob(shown, shown, os.path.dirname(os.path.abspath(shown))))
    total = len(file_jobs)
    if progress:
        progress("scanning", 0, total)
    for done, file_result in enumerate(_run_jobs(file_jobs, policy, jobs), start=1):
        result.merge(file_result)
        if progress:
            progress("scanning", done, total)
    return result


def _walk(root: str, policy: Policy, result: ScanResult) -> Iterator[_FileJob]:
    """Files under `root` in a stable order; folder analysers see each folder as a whole.

    Folders are read with `os.scandir`, whose entries already know their type on most file
    systems: no `lstat` per file. Symbolic links to folders are not followed.
    """
    root_abs = os.path.realpath(root)
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=_entry_name)
        except OSError as exc:
            result.errors.append(ErrorEntry(folder, f"cannot read folder: {exc.strerror or exc}"))
            continue
        regular = []
        subfolders = []
        for entry in entries:
            if _is_folder(entry):
                if entry.name not in SKIPPED_DIRS and not entry.is_symlink():
                    subfolders.append(entry.path)
            elif entry.is_symlink():
                _note_symlink(entry.path, root_abs, result)
            elif entry.is_file(follow_symlinks=False) or _is_regular(entry.path):
                regular.append(entry.name)
                yield _FileJob(entry.path, entry.path, root)
            else:
                _note_special(entry.path, result)
        folder_scan = FileScan(folder, policy, policy.limits, base_dir=root)
        for analyse in folder_analysers():
            analyse(folder, folder, regular, folder_scan)
        result.merge(folder_scan)
        pending.extend(reversed(subfolders))  # depth first, in name order


def _entry_name(entry: os.DirEntry[str]) -> str:
    return entry.name


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _note_symlink(disk: str, root_abs: str, result: ScanResult) -> None:
    target = os.path.realpath(disk)
    if target == root_abs or target.startswith(root_abs + os.sep):
        return  # its target is scanned where it lives
    result.findings.append(
        _folder_finding(
            "folder.symlink-outside",
            Severity.MEDIUM,
            "Symbolic link points outside the scanned folder; its target was not scanned",
            f"{disk} -> {target}. A loader following it reads a file the scan never saw.",
            disk,
            "Replace the link with the file itself, or scan the target too.",
            {"target": target},
        )
    )


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return True  # let scan_file report the error


def _note_special(disk: str, result: ScanResult) -> None:
    # Opening a FIFO or a device would block or read forever; neither is a model file.
    result.findings.append(
        _folder_finding(
            "folder.special-file",
            Severity.LOW,
            "Not a regular file (pipe, socket or device); not scanned",
            f"{disk} is not a regular file, so it was not opened.",
            disk,
            "Remove special files from model folders.",
        )
    )


def _folder_finding(
    rule: str,
    severity: Severity,
    title: str,
    detail: str,
    path: str,
    remediation: str,
    evidence: dict[str, str] | None = None,
) -> Finding:
    return Finding(
        risk=Risk.ML06,
        check=CHECK_ID,
        rule=rule,
        severity=severity,
        title=title,
        detail=detail,
        location=Location(path),
        evidence=evidence or {},
        remediation=remediation,
    )


def _run_jobs(file_jobs: list[_FileJob], policy: Policy, jobs: int) -> Iterator[ScanResult]:
    handlers()  # import every format once here, not once in each worker
    return map_ordered(
        _scan_job, file_jobs, (policy,), jobs=jobs, min_items=PARALLEL_MIN_FILES, lost=_lost_job
    )


def _scan_job(job: _FileJob, policy: Policy) -> ScanResult:
    # Only the results travel back from a worker, not the policy the FileScan holds.
    state = scan_file(job.disk_path, job.shown_path, policy, job.base_dir)
    return ScanResult(state.findings, state.scanned, state.errors)


def _lost_job(job: _FileJob, reason: str) -> ScanResult:
    return ScanResult(errors=[ErrorEntry(job.shown_path, f"not scanned: {reason}")])


def scan_file(
    disk_path: str, shown_path: str, policy: Policy, base_dir: str | None = None
) -> FileScan:
    """Scan one file and everything nested in it."""
    state = FileScan(shown_path, policy, policy.limits, base_dir=base_dir)
    try:
        info = os.stat(disk_path)
    except OSError as exc:
        state.errors.append(ErrorEntry(shown_path, f"cannot read: {exc.strerror or exc}"))
        return state
    if not stat.S_ISREG(info.st_mode):
        state.errors.append(ErrorEntry(shown_path, "not a regular file (pipe, socket or device)"))
        return state
    size = info.st_size
    blob = FileBlob(disk_path, size)
    ctx = ScanContext(state, blob, file_path=disk_path, _scan_child=_scan_child)
    try:
        _scan_source(ctx)
    except OSError as exc:
        state.errors.append(ErrorEntry(shown_path, f"cannot read: {exc.strerror or exc}"))
    finally:
        blob.close()
    _assign_severities(state)
    return state


def scan_blob(blob: Blob, shown_path: str, policy: Policy) -> FileScan:
    """Scan bytes that are not on disk (used by tests and by callers holding a stream)."""
    state = FileScan(shown_path, policy, policy.limits)
    _scan_source(ScanContext(state, blob, _scan_child=_scan_child))
    _assign_severities(state)
    return state


RAW_DATA_FORMAT = "tensor-data"
"""Inventory format of raw tensor bytes that hold no recognisable content."""


def _scan_source(ctx: ScanContext, raw_data: bool = False) -> None:
    """Recognise `ctx.blob` by content and scan it; record it in the inventory."""
    index = len(ctx.state.scanned)
    ctx.format = RAW_DATA_FORMAT if raw_data else "unknown"
    # The entry is reserved now (parents list before their members) and written once, below.
    ctx.state.scanned.append(None)  # type: ignore[arg-type]
    try:
        _recognise_and_scan(ctx, raw_data)
    finally:
        ctx.state.scanned[index] = ScannedFile(
            ctx.state.path, ctx.member, ctx.format, ctx.blob.size
        )


def _recognise_and_scan(ctx: ScanContext, raw_data: bool) -> None:
    head = ctx.blob.head()
    for handler in handlers(raw_data=raw_data):
        try:
            if raw_data:
                matched = handler.sniff_raw(head, ctx.blob)
            else:
                matched = handler.sniff(head, ctx.blob)
        except (ValueError, IndexError, OverflowError):
            matched = False
        if not matched:
            continue
        ctx.format = handler.name
        try:
            handler.scan(ctx)
        except LimitExceeded as exc:
            ctx.limit_hit(exc)
        except OSError:
            raise
        except Exception as exc:
            ctx.add(
                "scan.unparseable",
                Severity.HIGH,
                f"Content recognised as {handler.name} could not be fully analysed",
                f"The {handler.name} reader stopped with {type(exc).__name__}: {exc}. A loader "
                "may still accept this content; what follows the failure was not verified.",
                evidence={"format": handler.name, "error": f"{type(exc).__name__}: {exc}"},
                remediation="Treat the file as untrusted; inspect it by hand or obtain it in "
                "a safe format.",
            )
        break


def _scan_child(parent: ScanContext, blob: Blob, name: str, raw_data: bool = False) -> None:
    child = ScanContext(
        parent.state,
        blob,
        members=(*parent.members, name),
        depth=parent.depth + 1,
        _scan_child=_scan_child,
    )
    if child.depth > parent.limits.max_depth:
        parent.limit_hit(
            LimitExceeded(
                "max_depth",
                f"containers nested deeper than {parent.limits.max_depth} levels at {child.member}",
            )
        )
        return
    parent.check_time()
    try:
        _scan_source(child, raw_data)
    except OSError as exc:
        child.error(f"cannot read member: {exc.strerror or exc}")


def _assign_severities(state: FileScan) -> None:
    """Give each inventory entry the worst severity found on it or inside it."""
    if not state.findings:
        return  # every entry keeps severity None
    worst: dict[str | None, Severity] = {}
    for finding in state.findings:
        member = finding.location.member if finding.location else None
        chain = member.split("!") if member else []
        for depth in range(len(chain) + 1):
            key = "!".join(chain[:depth]) or None
            if key not in worst or finding.severity > worst[key]:
                worst[key] = finding.severity
    state.scanned = [
        ScannedFile(s.path, s.member, s.format, s.size, worst.get(s.member)) for s in state.scanned
    ]


def resolve_inputs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The paths as `Path` objects, in the order given, without duplicates."""
    seen: dict[str, Path] = {}
    for p in paths:
        seen.setdefault(os.fspath(p), Path(p))
    return list(seen.values())
