"""What a rule sees while the engine walks one file: names, scopes, string values, and `report`.

One `FileContext` lives for one file (for a notebook, across all its cells, because an import in
the first cell serves the others). The engine keeps `scope` current as it enters and leaves
functions; rules keep their own per-scope facts in `Scope.facts`. Helpers here answer the
questions every rule asks (what does this call resolve to, what literal is this argument) so that
rules only decide. Not for: walking (`engine`) or deciding what is dangerous (`rules/`).
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mlwarden.findings import Severity
from mlwarden.scan.code.imports import ImportTable

CHECK_ID = "ml06.code"

_LEAF_FIELDS = frozenset(
    {"ctx", "op", "ops", "id", "attr", "name", "module", "level", "kind", "type_comment"}
    | {"is_async", "conversion", "names"}
)
"""Fields that never hold a node a rule looks at (names, operators, load/store markers, the
aliases of an import statement, which the engine reads from the statement itself)."""
_CHILD_FIELDS: dict[type[ast.AST], tuple[str, ...]] = {ast.Constant: ()}

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass
class Scope:
    """A function body (or the module): where names are bound and facts about them hold."""

    parent: Scope | None = None
    strings: dict[str, str | None] = field(default_factory=dict)
    """Names bound in this scope: to the string literal last assigned (``MODEL_ID = "gpt2"``),
    or None when bound to anything else (a parameter, a call's result), which hides an
    enclosing scope's literal of the same name."""
    facts: dict[str, Any] = field(default_factory=dict)
    """Per-rule facts, keyed by the rule's own key (tainted names, pipeline objects)."""

    def string(self, name: str) -> str | None:
        """The string literal `name` holds here or in an enclosing scope, if known."""
        scope: Scope | None = self
        while scope is not None:
            if name in scope.strings:
                return scope.strings[name]
            scope = scope.parent
        return None


@dataclass(frozen=True)
class Hit:
    """What a rule reported, before suppression comments are applied."""

    rule: str
    severity: Severity
    title: str
    detail: str
    remediation: str
    line: int
    column: int | None
    """1-based, in characters."""
    first_line: int
    last_line: int
    """The lines of the expression that triggered it (a suppression comment on any counts)."""
    evidence: dict[str, Any]
    member: str | None


class FileContext:
    """The state of auditing one file; rules read it and call `report`."""

    def __init__(self, path: str, base_dir: str | None) -> None:
        self.path = path
        """The file as shown to the user."""
        self.base_dir = base_dir
        """The folder the user named (or the file's own folder), for telling local paths."""
        self.imports = ImportTable()
        self.module_scope = Scope()
        self.scope = self.module_scope
        self.hits: list[Hit] = []
        self.member: str | None = None
        self._source = ""
        self._lines: list[str] | None = None
        self._last_resolved: tuple[ast.expr | None, str | None] = (None, None)

    def begin_unit(self, source: str, member: str | None) -> None:
        """Start auditing one module or notebook cell (imports and module facts carry over)."""
        self._source = source
        self._lines = None
        self._last_resolved = (None, None)
        self.member = member
        self.scope = self.module_scope

    def line_text(self, line: int) -> str:
        """The text of a 1-based line of the current unit ('' past the end)."""
        if self._lines is None:
            self._lines = _LINE_BREAK.split(self._source)
        return self._lines[line - 1] if 0 < line <= len(self._lines) else ""

    def text_of(self, expr: ast.AST, limit: int = 120) -> str:
        """The source text of `expr` as written, shortened to `limit` characters."""
        first, last = getattr(expr, "lineno", 0), getattr(expr, "end_lineno", None)
        start, end = getattr(expr, "col_offset", 0), getattr(expr, "end_col_offset", None)
        if not first or last is None or end is None:
            return "<expression>"
        shown_last = min(last, first + 10)  # enough to show; never the whole of a huge literal
        lines = [self.line_text(n).encode("utf-8") for n in range(first, shown_last + 1)]
        if shown_last == last:
            lines[-1] = lines[-1][:end]
        lines[0] = lines[0][start:]
        text = " ".join(line.decode("utf-8", "replace").strip() for line in lines)
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def qualname(self, expr: ast.expr) -> str | None:
        """The fully qualified name `expr` refers to (``pickle.loads``), or None."""
        # Several rules ask about the same call in a row; resolve it once.
        last, name = self._last_resolved
        if last is not expr:
            name = self.imports.resolve(expr)
            self._last_resolved = (expr, name)
        return name

    def string_value(self, expr: ast.expr | None) -> str | None:
        """The string `expr` certainly holds: a literal, an all-literal f-string, a name last
        assigned a literal in this function or the module, or None when unknown."""
        if isinstance(expr, ast.Constant):
            return expr.value if isinstance(expr.value, str) else None
        if isinstance(expr, ast.Name):
            return self.scope.string(expr.id)
        if isinstance(expr, ast.JoinedStr):
            parts = [self.string_value(v) for v in expr.values]
            return None if any(p is None for p in parts) else "".join(p or "" for p in parts)
        return None

    def path_exists(self, text: str) -> bool:
        """Whether `text` names a file or folder next to the audited file or in the audited
        folder (so it is a local path, not a hub id)."""
        folders = {os.path.dirname(os.path.abspath(self.path)), self.base_dir or ""}
        return any(folder and os.path.exists(os.path.join(folder, text)) for folder in folders)

    def report(
        self,
        rule: str,
        severity: Severity,
        node: ast.AST | None,
        *,
        title: str,
        detail: str,
        remediation: str,
        evidence: dict[str, Any] | None = None,
        at: tuple[int, int | None] | None = None,
    ) -> None:
        """Record a finding at `node` (or at `at` = (line, 1-based column) when given)."""
        first = last = at[0] if at else 1
        column: int | None = None
        position = getattr(node, "lineno", None)
        if position is not None:
            first = position
            last = getattr(node, "end_lineno", None) or first
            column = self._char_column(first, getattr(node, "col_offset", 0))
        line = at[0] if at else first
        if at:
            column = at[1]
            first, last = min(first, line), max(last, line)
        self.hits.append(
            Hit(
                rule=rule,
                severity=severity,
                title=title,
                detail=detail,
                remediation=remediation,
                line=line,
                column=column,
                first_line=first,
                last_line=last,
                evidence=evidence or {},
                member=self.member,
            )
        )

    def _char_column(self, line: int, byte_offset: int) -> int:
        # The AST counts columns in UTF-8 bytes; people and SARIF count characters.
        text = self.line_text(line)
        if text.isascii():
            return byte_offset + 1
        return len(text.encode("utf-8")[:byte_offset].decode("utf-8", "ignore")) + 1


def child_fields(kind: type[ast.AST]) -> tuple[str, ...]:
    """The fields of node type `kind` that may hold nodes a rule looks at, in source order."""
    fields = _CHILD_FIELDS.get(kind)
    if fields is None:
        fields = tuple(f for f in kind._fields if f not in _LEAF_FIELDS)
        _CHILD_FIELDS[kind] = fields
    return fields


def child_nodes(node: ast.AST) -> list[ast.AST]:
    """The nodes directly under `node`, in source order, without operators and load/store
    markers; about twice as fast as `ast.iter_child_nodes`, which matters on every commit."""
    children: list[ast.AST] = []
    for name in child_fields(type(node)):
        value = getattr(node, name, None)
        if type(value) is list:
            children.extend(item for item in value if isinstance(item, ast.AST))
        elif isinstance(value, ast.AST):
            children.append(value)
    return children


def walk_expression(expr: ast.AST) -> Iterator[ast.AST]:
    """Every node of `expr` (itself included), without recursion."""
    pending = [expr]
    while pending:
        node = pending.pop()
        yield node
        pending.extend(child_nodes(node))


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    """The value passed to `call` as keyword `name`, or None."""
    for item in call.keywords:
        if item.arg == name:
            return item.value
    return None


def keyword_node(call: ast.Call, name: str) -> ast.keyword | None:
    """The keyword node `name` of `call` (for reporting at its position), or None."""
    for item in call.keywords:
        if item.arg == name:
            return item
    return None


def argument(call: ast.Call, position: int, name: str) -> ast.expr | None:
    """The argument given at `position` (0-based) or as keyword `name`, or None."""
    if position < len(call.args) and not any(
        isinstance(a, ast.Starred) for a in call.args[: position + 1]
    ):
        return call.args[position]
    return keyword(call, name)


def is_true(expr: ast.expr | None) -> bool:
    """Whether `expr` is the literal ``True``."""
    return isinstance(expr, ast.Constant) and expr.value is True


def is_false(expr: ast.expr | None) -> bool:
    """Whether `expr` is the literal ``False``."""
    return isinstance(expr, ast.Constant) and expr.value is False


def last_name(qualified: str | None) -> str:
    """The last component of a dotted name (``torch.hub.load`` -> ``load``); '' for None."""
    return qualified.rpartition(".")[2] if qualified else ""
