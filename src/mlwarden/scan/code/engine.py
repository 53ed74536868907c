"""The code audit engine: find Python files and notebooks, parse each once, walk each tree once.

Every file is read as bytes, decoded (or, for a notebook, read as JSON and cut into code cells),
parsed with `ast.parse` and walked a single time; each node goes to the rules registered for its
type (`rules.node_rules`). Comments are read with `tokenize`, and only in files where a
suppression comment or a text rule's trigger appears. Nothing audited is imported or executed.
A file that cannot be read, decoded or parsed, or is over the size cap, becomes a finding or an
error entry; it never stops the other files. Not for: what is dangerous (`rules/`).
"""

from __future__ import annotations

import ast
import contextlib
import gc
import io
import os
import stat
import tokenize
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlwarden.errors import UsageError
from mlwarden.findings import Finding, Location, Risk, Severity
from mlwarden.report.model import ErrorEntry, ScannedFile
from mlwarden.scan.code.context import CHECK_ID, FileContext, Hit, Scope, child_fields
from mlwarden.scan.code.rules import NodeRule, node_rules, text_rules, text_trigger
from mlwarden.scan.code.sources import (
    CodeUnit,
    SourceError,
    notebook_cells,
    python_source,
)
from mlwarden.scan.code.suppression import Suppressions
from mlwarden.scan.parallel import map_ordered

PYTHON_SUFFIXES = (".py", ".pyw")
NOTEBOOK_SUFFIXES = (".ipynb",)

SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        ".venv",
        "venv",
        "site-packages",
        "node_modules",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".ipynb_checkpoints",
    }
)
"""Folders never descended into: version control, caches, virtual environments and installed
third-party code (audit your own code; dependencies are the dependency audit's job). A folder
holding a ``pyvenv.cfg`` is a virtual environment whatever its name, and is skipped too."""

UNPARSEABLE_RULE = "code.unparseable"
TOO_LARGE_RULE = "code.too-large"

MIB = 1024 * 1024
PARALLEL_MIN_FILES = 64
"""Below this many files, worker start-up costs more than parsing in one process."""

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CodeLimits:
    """Caps on what one file may cost to audit."""

    max_source_bytes: int = 4 * MIB
    """Largest ``.py`` file parsed; bigger ones are generated code or data (a finding)."""
    max_notebook_bytes: int = 64 * MIB
    """Largest notebook read (outputs with pictures make notebooks large)."""

    def __post_init__(self) -> None:
        for name in ("max_source_bytes", "max_notebook_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UsageError(f"CodeLimits.{name} must be a byte count >= 0, got {value!r}")


@dataclass
class CodeAuditResult:
    """Everything the code audit found in a set of paths."""

    findings: list[Finding] = field(default_factory=list)
    scanned: list[ScannedFile] = field(default_factory=list)
    """One entry per audited file, format ``python`` or ``notebook``."""
    errors: list[ErrorEntry] = field(default_factory=list)
    suppressed: int = 0
    """Findings silenced by ``# mlwarden: ignore`` comments."""

    def merge(self, other: CodeAuditResult) -> None:
        """Add another result's contents to this one."""
        self.findings.extend(other.findings)
        self.scanned.extend(other.scanned)
        self.errors.extend(other.errors)
        self.suppressed += other.suppressed

    def metrics(self) -> dict[str, Any]:
        """Files and notebooks audited, findings per rule, findings suppressed."""
        formats = Counter(s.format for s in self.scanned)
        return {
            "files": len(self.scanned),
            "python_files": formats.get("python", 0),
            "notebooks": formats.get("notebook", 0),
            "findings": dict(sorted(Counter(f.rule for f in self.findings).items())),
            "suppressed": self.suppressed,
        }


@dataclass(frozen=True)
class _FileJob:
    disk_path: str
    shown_path: str
    base_dir: str | None


def audit_code(
    paths: Sequence[str | os.PathLike[str]],
    *,
    progress: ProgressFn | None = None,
    jobs: int = 1,
    limits: CodeLimits | None = None,
) -> CodeAuditResult:
    """Audit the Python files and notebooks among `paths` (files and folders, walked).

    `progress(description, done, total)` is called as files are done; `jobs` (>= 1) worker
    processes share the files once there are at least `PARALLEL_MIN_FILES`; `limits` caps the
    size of each file. A path that does not exist is an error entry; a named file that is not
    Python is skipped. Raises `UsageError` for a bad `jobs` value.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise UsageError(f"jobs must be a whole number >= 1, got {jobs!r}")
    limits = limits or CodeLimits()
    result = CodeAuditResult()
    file_jobs = list(_collect(paths, result))
    total = len(file_jobs)
    if progress:
        progress("auditing code", 0, total)
    for done, file_result in enumerate(_run(file_jobs, limits, jobs), start=1):
        result.merge(file_result)
        if progress:
            progress("auditing code", done, total)
    return result


def _collect(
    paths: Sequence[str | os.PathLike[str]], result: CodeAuditResult
) -> Iterator[_FileJob]:
    seen: set[str] = set()
    for raw in paths:
        shown = os.fspath(raw)
        if not os.path.lexists(shown):
            result.errors.append(ErrorEntry(shown, "no such file or directory"))
            continue
        if os.path.isdir(shown):
            jobs: Iterator[_FileJob] = _walk(shown)
        elif _is_code_file(shown) or (
            _is_regular(shown, follow=True) and _has_python_shebang(shown)
        ):
            jobs = iter([_FileJob(shown, shown, os.path.dirname(os.path.abspath(shown)))])
        else:
            continue
        for job in jobs:
            key = os.path.realpath(job.disk_path)
            if key not in seen:
                seen.add(key)
                yield job


def _walk(root: str) -> Iterator[_FileJob]:
    """Code files under `root`, in a stable order; links are never followed."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in SKIPPED_DIRS and not os.path.exists(os.path.join(folder, d, "pyvenv.cfg"))
        )
        for name in sorted(files):
            disk = os.path.join(folder, name)
            if _is_code_file(name) and _is_regular(disk):
                yield _FileJob(disk, disk, root)


def _is_code_file(name: str) -> bool:
    return name.lower().endswith(PYTHON_SUFFIXES + NOTEBOOK_SUFFIXES)


def _is_regular(path: str, *, follow: bool = False) -> bool:
    # Opening a FIFO or a device would block or read forever; neither is code.
    try:
        info = os.stat(path) if follow else os.lstat(path)
    except OSError:
        return True  # audit_file reports why it cannot be read
    return stat.S_ISREG(info.st_mode)


def _has_python_shebang(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            first = handle.readline(256)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


def _run(file_jobs: list[_FileJob], limits: CodeLimits, jobs: int) -> Iterator[CodeAuditResult]:
    text_trigger()  # load every rule family once here, not once in each worker
    return map_ordered(
        _audit_job, file_jobs, (limits,), jobs=jobs, min_items=PARALLEL_MIN_FILES, lost=_lost_job
    )


def _audit_job(job: _FileJob, limits: CodeLimits) -> CodeAuditResult:
    return audit_file(job.disk_path, job.shown_path, job.base_dir, limits)


def _lost_job(job: _FileJob, reason: str) -> CodeAuditResult:
    return CodeAuditResult(errors=[ErrorEntry(job.shown_path, f"not audited: {reason}")])


def audit_file(
    disk_path: str,
    shown_path: str | None = None,
    base_dir: str | None = None,
    limits: CodeLimits | None = None,
) -> CodeAuditResult:
    """Audit one Python file or notebook (chosen by its suffix: ``.ipynb`` is a notebook)."""
    shown = shown_path or disk_path
    limits = limits or CodeLimits()
    notebook = disk_path.lower().endswith(NOTEBOOK_SUFFIXES)
    kind = "notebook" if notebook else "python"
    cap = limits.max_notebook_bytes if notebook else limits.max_source_bytes
    result = CodeAuditResult()
    if not _is_regular(disk_path, follow=True):
        result.errors.append(ErrorEntry(shown, "not a regular file (pipe, socket or device)"))
        return result
    try:
        with open(disk_path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            data = handle.read(cap + 1) if size <= cap else b""
    except OSError as exc:
        result.errors.append(ErrorEntry(shown, f"cannot read: {exc.strerror or exc}"))
        return result
    if size > cap or len(data) > cap:
        result.findings.append(_too_large(shown, max(size, len(data)), cap))
    else:
        try:
            with _collector_paused():
                _audit_bytes(data, notebook, shown, base_dir, result)
        except Exception as exc:  # a rule's bug must cost one file, never the audit
            result.errors.append(ErrorEntry(shown, f"internal error while auditing: {exc!r}"))
    worst = max((f.severity for f in result.findings), default=None)
    result.scanned.append(ScannedFile(shown, None, kind, size, worst))
    return result


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    # A syntax tree is a million small objects without reference cycles; the cyclic garbage
    # collector would rescan them all again and again while they are built (about 15% of the
    # audit's time). Reference counting frees them either way.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _audit_bytes(
    data: bytes, notebook: bool, shown: str, base_dir: str | None, result: CodeAuditResult
) -> None:
    try:
        units = notebook_cells(data) if notebook else [python_source(data)]
    except SourceError as exc:
        result.findings.append(_unparseable(shown, None, None, str(exc)))
        return
    ctx = FileContext(shown, base_dir)
    rules = node_rules()
    for unit in units:
        if unit.problem is not None:
            result.findings.append(_unparseable(shown, unit.member, None, unit.problem))
            continue
        try:
            tree = ast.parse(unit.source, filename=shown)
        except SyntaxError as exc:
            message = f"Python cannot parse it: {exc.msg}"
            result.findings.append(_unparseable(shown, unit.member, exc.lineno, message))
            continue
        except (RecursionError, MemoryError):
            message = "Python cannot parse it: too deeply nested for its parser"
            result.findings.append(_unparseable(shown, unit.member, None, message))
            continue
        except ValueError as exc:
            message = f"Python cannot parse it: {exc}"
            result.findings.append(_unparseable(shown, unit.member, None, message))
            continue
        ctx.begin_unit(unit.source, unit.member)
        _bind_module_imports(tree, ctx)
        _walk_tree(tree, ctx, rules)
        suppressions = _read_text(unit, ctx)
        _keep_unsuppressed(ctx.hits, suppressions, shown, result)
        ctx.hits.clear()


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_LEAVE_SCOPE = object()


def _walk_tree(
    tree: ast.AST, ctx: FileContext, rules: Mapping[type[ast.AST], tuple[NodeRule, ...]]
) -> None:
    """Visit every node once, in source order, handing it to the rules for its type."""
    stack: list[Any] = [tree]
    push = stack.append
    reversed_fields: dict[type[ast.AST], tuple[str, ...]] = {}
    while stack:
        node = stack.pop()
        if node is _LEAVE_SCOPE:
            ctx.scope = ctx.scope.parent or ctx.module_scope
            continue
        kind = type(node)
        if kind in _SCOPES:
            ctx.scope = Scope(parent=ctx.scope, strings=_parameters(node.args))
            stack.append(_LEAVE_SCOPE)
        elif kind is ast.Assign or kind is ast.AnnAssign:
            _note_assignment(node, ctx)
        elif kind in _OTHER_BINDINGS:
            _note_other_binding(node, ctx)
        elif kind is ast.Import:
            ctx.imports.add_import(node)
        elif kind is ast.ImportFrom:
            ctx.imports.add_import_from(node)
        for rule in rules.get(kind, ()):
            rule(node, ctx)
        fields = reversed_fields.get(kind)
        if fields is None:
            fields = reversed_fields[kind] = child_fields(kind)[::-1]
        for name in fields:  # pushed last-first, so popped in source order
            value = getattr(node, name, None)
            if type(value) is list:
                for item in reversed(value):
                    if isinstance(item, ast.AST):
                        push(item)
            elif isinstance(value, ast.AST):
                push(value)


def _note_assignment(node: ast.Assign | ast.AnnAssign, ctx: FileContext) -> None:
    """Keep the facts every rule relies on: string literals bound to names, import aliases."""
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    if node.value is None:
        return
    value = ctx.string_value(node.value)
    for target in targets:
        if not isinstance(target, ast.Name):
            continue
        ctx.scope.strings[target.id] = value
        if value is None and isinstance(node.value, (ast.Name, ast.Attribute)):
            ctx.imports.add_alias(target.id, node.value)


_OTHER_BINDINGS = (ast.AugAssign, ast.NamedExpr, ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)


def _note_other_binding(node: ast.AST, ctx: FileContext) -> None:
    """Names bound by ``+=``, ``:=``, ``for`` and ``with`` no longer hold a known literal."""
    if isinstance(node, (ast.With, ast.AsyncWith)):
        pending = [item.optional_vars for item in node.items if item.optional_vars is not None]
    elif isinstance(node, (ast.AugAssign, ast.NamedExpr, ast.For, ast.AsyncFor)):
        pending = [node.target]
    else:
        return
    while pending:
        target = pending.pop()
        if isinstance(target, ast.Name):
            ctx.scope.strings[target.id] = None
        elif isinstance(target, ast.Starred):
            pending.append(target.value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            pending.extend(target.elts)


def _parameters(arguments: ast.arguments) -> dict[str, str | None]:
    """A function's parameters, which hide module-level literals of the same name."""
    names = [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]
    names += [a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None]
    return dict.fromkeys(names)


def _bind_module_imports(tree: ast.Module, ctx: FileContext) -> None:
    """Bind the module's top-level imports first, so that functions defined above an import
    still see it (``try: import cPickle as pickle`` included)."""
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        statement = pending.pop()
        if isinstance(statement, ast.Import):
            ctx.imports.add_import(statement)
        elif isinstance(statement, ast.ImportFrom):
            ctx.imports.add_import_from(statement)
        elif isinstance(statement, (ast.If, ast.Try, ast.TryStar, ast.With)):
            for name in ("body", "orelse", "finalbody"):
                pending.extend(getattr(statement, name, ()))
            for handler in getattr(statement, "handlers", ()):
                pending.extend(handler.body)


def _read_text(unit: CodeUnit, ctx: FileContext) -> Suppressions:
    """Suppression comments, and text rules over comments and blanked IPython lines."""
    suppressions = Suppressions()
    trigger = text_trigger()
    checks = text_rules()
    for line, original in unit.blanked:
        suppressions.add_comment(line, original)
        if trigger.search(original):
            for check in checks:
                check(original, line, 1, ctx)
    if not (trigger.search(unit.source) or "mlwarden:" in unit.source):
        return suppressions
    try:
        for token in tokenize.generate_tokens(io.StringIO(unit.source).readline):
            if token.type != tokenize.COMMENT:
                continue
            line, column = token.start
            suppressions.add_comment(line, token.string)
            if trigger.search(token.string):
                for check in checks:
                    check(token.string, line, column + 1, ctx)
    except (tokenize.TokenError, SyntaxError):
        pass  # the parser accepted the source; comments up to here were read
    return suppressions


def _keep_unsuppressed(
    hits: list[Hit], suppressions: Suppressions, shown: str, result: CodeAuditResult
) -> None:
    seen: set[tuple[Any, ...]] = set()
    for hit in hits:
        key = (hit.rule, hit.member, hit.line, hit.column, hit.title)
        if key in seen:
            continue
        seen.add(key)
        if suppressions.covers(hit.rule, hit.first_line, hit.last_line):
            result.suppressed += 1
            continue
        result.findings.append(
            Finding(
                risk=Risk.ML06,
                check=CHECK_ID,
                rule=hit.rule,
                severity=hit.severity,
                title=hit.title,
                detail=hit.detail,
                location=Location(shown, member=hit.member, line=hit.line, column=hit.column),
                evidence=hit.evidence,
                remediation=hit.remediation,
            )
        )


def _unparseable(shown: str, member: str | None, line: int | None, reason: str) -> Finding:
    return Finding(
        risk=Risk.ML06,
        check=CHECK_ID,
        rule=UNPARSEABLE_RULE,
        severity=Severity.INFO,
        title="Not audited: not readable as Python",
        detail=f"{reason}. Python cannot run it as it is either, so nothing in it was checked.",
        location=Location(shown, member=member, line=line),
        evidence={"reason": reason},
        remediation="Fix or remove the file if it is meant to run (a Python 2 file, a template "
        "with placeholders and a corrupted notebook all end up here).",
    )


def _too_large(shown: str, size: int, cap: int) -> Finding:
    return Finding(
        risk=Risk.ML06,
        check=CHECK_ID,
        rule=TOO_LARGE_RULE,
        severity=Severity.LOW,
        title="Not audited: file over the size cap",
        detail=f"The file holds {size} bytes, over the {cap}-byte cap for code; nothing in it "
        "was checked. Files this large are usually generated code or embedded data.",
        location=Location(shown),
        evidence={"bytes": size, "cap_bytes": cap},
        remediation="Keep data out of .py files and notebooks (clear notebook outputs), or "
        "audit the file with a larger cap through the Python API (CodeLimits).",
    )
