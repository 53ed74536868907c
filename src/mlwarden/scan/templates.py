"""Static analysis of Jinja chat templates shipped inside model files (GGUF, tokenizer configs).

A chat template is rendered by the inference runtime every time a prompt is built. Runtimes that
render it outside Jinja's sandbox (llama-cpp-python before 0.2.72, CVE-2024-34359 "Llama Drama")
let a template walk from any object to ``__globals__`` / ``__builtins__`` and run code. This module
parses a template with Jinja's own parser (never renders it) and walks the syntax tree for the
moves such an escape needs: private attribute access, names of Python internals assembled from
pieces, and the well-known gadget globals.

Not for: deciding what a template renders, or linting benign templates.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

from mlwarden.findings import Severity
from mlwarden.scan.context import ScanContext

ESCAPE_RULE = "template.sandbox-escape"
SUSPICIOUS_RULE = "template.suspicious"
UNPARSEABLE_RULE = "template.unparseable"

MAX_TEMPLATE_CHARS = 4 * 1024 * 1024
"""Longer templates are not parsed (real chat templates are a few KiB)."""
MAX_ISSUES_REPORTED = 20
"""Findings reported per template; the rest are counted in the evidence."""
MAX_FOLDED_CHARS = 4096
"""Statically computed strings longer than this are not followed further."""
MAX_EXPRESSION_CHARS = 240
"""Expressions shown as evidence are cut to this length."""
MAX_CHAIN_REASONS = 6
"""Steps of one escape chain named in its finding."""

REFERENCE_CVE = "CVE-2024-34359"

PYTHON_INTERNALS = frozenset(
    {
        "__class__",
        "__mro__",
        "__subclasses__",
        "__globals__",
        "__builtins__",
        "__init__",
        "__import__",
        "__base__",
        "__bases__",
        "__dict__",
        "__getattribute__",
        "__getattr__",
        "__code__",
        "__func__",
        "__self__",
        "__module__",
        "__loader__",
        "__spec__",
        "__reduce__",
        "__reduce_ex__",
        "__call__",
        "__closure__",
        "__getitem__",
        "__new__",
        "__subclasshook__",
        "__wrapped__",
        "__objclass__",
        "__enter__",
        "__exit__",
        "__setattr__",
        "__delattr__",
        "__dir__",
        "__slots__",
        "__init_subclass__",
        "__qualname__",
        "__name__",
        "__defaults__",
        "__kwdefaults__",
        "__traceback__",
        "__frame__",
        "__file__",
        "__package__",
        "__all__",
    }
)
"""Dunder names that an escape walks through; a template naming one is never benign."""

DANGEROUS_ATTRIBUTES = frozenset(
    {
        "popen",
        "f_globals",
        "f_locals",
        "f_builtins",
        "f_back",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "cr_code",
        "ag_frame",
        "ag_code",
        "tb_frame",
        "tb_next",
        "func_globals",
        "func_code",
        "im_func",
        "im_self",
        "im_class",
        "mro",
        "import_module",
        "exec_module",
        "load_module",
        "check_output",
        "getoutput",
    }
)
"""Attributes without a leading underscore that only code execution or frame walking uses."""

GADGET_GLOBALS = frozenset(
    {
        "cycler",
        "joiner",
        "lipsum",
        "namespace",
        "config",
        "request",
        "url_for",
        "get_flashed_messages",
        "os",
    }
)
"""Globals whose attributes lead to Python internals (the classic SSTI starting points)."""

BENIGN_GADGET_ATTRIBUTES = {"cycler": frozenset({"next", "reset", "current"})}

DANGEROUS_CALLS = frozenset(
    {
        "eval",
        "exec",
        "compile",
        "getattr",
        "setattr",
        "globals",
        "locals",
        "vars",
        "open",
        "import_module",
        "system",
        "popen",
    }
)
"""Functions no chat runtime defines; calling one means the template expects an unsafe runtime."""

ATTRIBUTE_PATH_FILTERS = frozenset(
    {
        "map",
        "selectattr",
        "rejectattr",
        "sort",
        "groupby",
        "sum",
        "unique",
        "min",
        "max",
    }
)
"""Filters that resolve a dotted attribute path given as a string argument."""

STRINGIFYING_FILTERS = frozenset({"string", "pprint", "e", "escape", "urlencode", "list"})
OBJECT_PRODUCING_FILTERS = frozenset(
    {"select", "reject", "map", "attr", "selectattr", "rejectattr", "groupby", "batch", "slice"}
)

_DUNDER_FRAGMENT = re.compile(r"^(__\w*|\w*__)$")


@dataclass(frozen=True)
class TemplateIssue:
    """One construct in a template that an escape would use."""

    rule: str
    severity: Severity
    reason: str
    expression: str
    line: int


@dataclass(frozen=True)
class TemplateAnalysis:
    """What was found in one template."""

    issues: tuple[TemplateIssue, ...] = ()
    parse_error: str | None = None
    parse_error_line: int | None = None


class _GenerationTag(Extension):
    """Parses the ``{% generation %}`` block that transformers' chat renderer adds."""

    tags = {"generation"}  # noqa: RUF012 - Jinja reads it as a class attribute

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body).set_lineno(lineno)


def _parser_environment() -> SandboxedEnvironment:
    # The extensions are the ones chat runtimes enable; without them valid templates would not
    # parse. Nothing here is ever rendered.
    return SandboxedEnvironment(
        extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do", _GenerationTag],
    )


_ENVIRONMENT = _parser_environment()


def inspect_template(source: str) -> TemplateAnalysis:
    """Parse `source` (never render it) and list the escape constructs it contains."""
    if len(source) > MAX_TEMPLATE_CHARS:
        return TemplateAnalysis(
            parse_error=f"template is {len(source)} characters long, more than the "
            f"{MAX_TEMPLATE_CHARS} analysed",
        )
    try:
        tree = _ENVIRONMENT.parse(source)
    except TemplateSyntaxError as exc:
        return TemplateAnalysis(parse_error=exc.message or str(exc), parse_error_line=exc.lineno)
    except (RecursionError, MemoryError, ValueError, OverflowError) as exc:
        return TemplateAnalysis(parse_error=f"{type(exc).__name__}: {exc}")
    try:
        issues = _Walker().walk(tree)
    except RecursionError:
        return TemplateAnalysis(parse_error="template nested too deeply to analyse")
    return TemplateAnalysis(issues=tuple(issues))


def analyse_template(
    ctx: ScanContext,
    source: str,
    *,
    origin: str,
    offset: int | None = None,
) -> TemplateAnalysis:
    """Inspect a template and report its issues into `ctx`; `origin` says where it came from."""
    analysis = inspect_template(source)
    if analysis.parse_error is not None:
        ctx.add(
            UNPARSEABLE_RULE,
            Severity.MEDIUM,
            f"Chat template in {origin} does not parse; it could not be verified",
            f"Jinja reports: {analysis.parse_error}. Runtimes with a different template engine "
            "may still render it.",
            offset=offset,
            evidence={
                "origin": origin,
                "error": analysis.parse_error,
                "line": analysis.parse_error_line,
            },
            remediation="Review the template by hand before serving this model, or replace it "
            "with a known chat template.",
        )
        return analysis
    for issue in analysis.issues[:MAX_ISSUES_REPORTED]:
        _report_issue(ctx, issue, origin, offset, len(analysis.issues))
    return analysis


def _report_issue(
    ctx: ScanContext, issue: TemplateIssue, origin: str, offset: int | None, total: int
) -> None:
    evidence: dict[str, Any] = {
        "origin": origin,
        "expression": issue.expression,
        "reason": issue.reason,
        "template_line": issue.line,
    }
    if total > MAX_ISSUES_REPORTED:
        evidence["issues_in_template"] = total
    if issue.rule == ESCAPE_RULE:
        evidence["cve"] = REFERENCE_CVE
        ctx.add(
            ESCAPE_RULE,
            issue.severity,
            f"Chat template in {origin} reaches Python internals: {issue.reason}",
            f"The template contains `{issue.expression}` (template line {issue.line}). A runtime "
            "that renders templates outside Jinja's sandbox runs arbitrary code through it, "
            f"as in {REFERENCE_CVE} (llama-cpp-python).",
            offset=offset,
            evidence=evidence,
            remediation="Do not load this model; replace the chat template with a known one "
            "and render templates only in an ImmutableSandboxedEnvironment.",
        )
    else:
        ctx.add(
            issue.rule,
            issue.severity,
            f"Chat template in {origin} has an unusual construct: {issue.reason}",
            f"The template contains `{issue.expression}` (template line {issue.line}); chat "
            "templates do not need it.",
            offset=offset,
            evidence=evidence,
            remediation="Review the template by hand before serving this model.",
        )


_Static = str | int | list[Any] | None
"""A value computed from literals alone, or None when it depends on render-time data."""


class _Walker:
    """Walks one template tree in document order, folding literal strings as it goes."""

    def __init__(self) -> None:
        self.symbols: dict[str, _Static] = {}
        self.bound: set[str] = set()
        """Names the template itself defines (variables, loop targets, macros)."""
        self.issues: list[TemplateIssue] = []
        # Keyed by id(); the node is kept alongside so that its id is never reused.
        self._cache: dict[int, tuple[nodes.Node, _Static]] = {}

    def walk(self, tree: nodes.Template) -> list[TemplateIssue]:
        self._visit(tree)
        return self.issues

    def _visit(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Macro) or (
            isinstance(node, nodes.Name) and node.ctx in ("store", "param")
        ):
            self.bound.add(node.name)
        found = self._judge(node)
        if found is not None:
            rule, severity, reason = found
            if severity is Severity.CRITICAL:
                # One finding per escape chain: the outermost expression is the evidence, and
                # the reasons of the steps inside it are listed with it.
                reason = "; ".join(self._chain_reasons(node, reason))
            self.issues.append(
                TemplateIssue(rule, severity, reason, _describe(node), node.lineno or 0)
            )
            if severity is Severity.CRITICAL:
                return
        for child in node.iter_child_nodes():
            self._visit(child)
        self._record_assignment(node)

    def _chain_reasons(self, top: nodes.Node, first: str) -> list[str]:
        reasons = [first]
        for inner in top.find_all(nodes.Expr):
            found = self._judge(inner)
            if found is not None and found[2] not in reasons:
                reasons.append(found[2])
            if len(reasons) >= MAX_CHAIN_REASONS:
                break
        return reasons[::-1]

    def _record_assignment(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Assign) and isinstance(node.target, nodes.Name):
            self.symbols[node.target.name] = self._static(node.node)
        elif isinstance(node, nodes.AssignBlock) and isinstance(node.target, nodes.Name):
            parts = [self._static(n) for n in _output_nodes(node.body)]
            text = None
            if parts and all(isinstance(p, str) for p in parts):
                text = "".join(str(p) for p in parts)
            self.symbols[node.target.name] = text

    def _judge(self, node: nodes.Node) -> tuple[str, Severity, str] | None:
        for check in self._checks:
            found = check(self, node)
            if found is not None:
                return found
        return None

    def _check_attribute(self, node: nodes.Node) -> tuple[str, Severity, str] | None:
        if isinstance(node, nodes.Getattr):
            if _is_private_name(node.attr):
                return ESCAPE_RULE, Severity.CRITICAL, f"private attribute `{node.attr}`"
            if node.attr in DANGEROUS_ATTRIBUTES:
                return ESCAPE_RULE, Severity.CRITICAL, f"attribute `{node.attr}`"
            return self._gadget_access(node.node, node.attr)
        if isinstance(node, nodes.Getitem):
            key = self._static(node.arg)
            if isinstance(key, str) and (_is_private_name(key) or key == "popen"):
                return ESCAPE_RULE, Severity.CRITICAL, f"private item `{key}`"
            if isinstance(key, str):
                return self._gadget_access(node.node, key)
            if _harvests_characters(node.node):
                return (
                    ESCAPE_RULE,
                    Severity.CRITICAL,
                    "characters picked out of an object's text form",
                )
        if isinstance(node, nodes.NSRef) and _is_private_name(node.attr):
            return ESCAPE_RULE, Severity.CRITICAL, f"private attribute `{node.attr}`"
        return None

    def _gadget_access(self, base: nodes.Node, attr: str) -> tuple[str, Severity, str] | None:
        if not isinstance(base, nodes.Name) or base.name not in GADGET_GLOBALS:
            return None
        if base.name in self.bound:
            return None
        if attr in BENIGN_GADGET_ATTRIBUTES.get(base.name, frozenset()):
            return None
        return ESCAPE_RULE, Severity.CRITICAL, f"attribute `{attr}` of the `{base.name}` global"

    def _check_filter(self, node: nodes.Node) -> tuple[str, Severity, str] | None:
        if not isinstance(node, nodes.Filter):
            return None
        if node.name == "attr":
            name = self._static(node.args[0]) if node.args else None
            if not isinstance(name, str):
                return (
                    SUSPICIOUS_RULE,
                    Severity.MEDIUM,
                    "attribute name computed at render time (`attr` filter)",
                )
            if _is_private_name(name) or name in DANGEROUS_ATTRIBUTES:
                return ESCAPE_RULE, Severity.CRITICAL, f"`attr` filter reaching `{name}`"
        if node.name in ATTRIBUTE_PATH_FILTERS:
            for value in self._filter_strings(node):
                if any(_is_private_name(part) for part in value.split(".")):
                    return (
                        ESCAPE_RULE,
                        Severity.CRITICAL,
                        f"`{node.name}` filter reading attribute `{value}`",
                    )
        return None

    def _filter_strings(self, node: nodes.Filter) -> Iterator[str]:
        for arg in node.args:
            value = self._static(arg)
            if isinstance(value, str):
                yield value
        for keyword in node.kwargs:
            value = self._static(keyword.value)
            if isinstance(value, str):
                yield value

    def _check_names(self, node: nodes.Node) -> tuple[str, Severity, str] | None:
        if isinstance(node, nodes.Name) and node.name.startswith("__"):
            return ESCAPE_RULE, Severity.CRITICAL, f"Python internal `{node.name}`"
        if isinstance(node, nodes.Keyword) and node.key.startswith("__"):
            return ESCAPE_RULE, Severity.CRITICAL, f"keyword argument named `{node.key}`"
        if (
            isinstance(node, nodes.Call)
            and isinstance(node.node, nodes.Name)
            and node.node.name in DANGEROUS_CALLS
            and node.node.name not in self.bound
        ):
            return ESCAPE_RULE, Severity.CRITICAL, f"call to `{node.node.name}`"
        return None

    def _check_strings(self, node: nodes.Node) -> tuple[str, Severity, str] | None:
        if not isinstance(node, nodes.Expr) or isinstance(node, nodes.TemplateData):
            return None
        value = self._static(node)
        if isinstance(value, str) and _names_internal(value):
            how = "written" if isinstance(node, nodes.Const) else "assembled"
            return (
                ESCAPE_RULE,
                Severity.CRITICAL,
                f"string naming a Python internal {how}: {value[:80]!r}",
            )
        return None

    def _check_loading(self, node: nodes.Node) -> tuple[str, Severity, str] | None:
        if isinstance(node, (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
            kind = type(node).__name__.lower()
            return (
                SUSPICIOUS_RULE,
                Severity.MEDIUM,
                f"`{kind}` of another template (chat runtimes provide none)",
            )
        return None

    _checks: tuple[Callable[[_Walker, nodes.Node], tuple[str, Severity, str] | None], ...] = (
        _check_names,
        _check_attribute,
        _check_filter,
        _check_strings,
        _check_loading,
    )

    def _static(self, node: nodes.Node | None) -> _Static:
        if node is None:
            return None
        key = id(node)
        if key not in self._cache:
            self._cache[key] = (node, _bounded(self._fold(node)))
        return self._cache[key][1]

    def _fold(self, node: nodes.Node) -> _Static:
        if isinstance(node, nodes.Const):
            value = node.value
            if isinstance(value, bool):
                return None
            return value if isinstance(value, (str, int)) else None
        if isinstance(node, nodes.Name):
            return self.symbols.get(node.name)
        if isinstance(node, (nodes.List, nodes.Tuple)):
            items = [self._static(item) for item in node.items]
            return None if any(item is None for item in items) else items
        if isinstance(node, nodes.Concat):
            parts = [self._static(part) for part in node.nodes]
            if any(part is None or isinstance(part, list) for part in parts):
                return None
            return "".join(str(part) for part in parts)
        if isinstance(node, nodes.BinExpr):
            return _fold_operator(node.operator, self._static(node.left), self._static(node.right))
        if isinstance(node, nodes.Filter):
            args = [self._static(arg) for arg in node.args]
            return _fold_filter(node.name, self._static(node.node), args)
        if isinstance(node, nodes.Getitem):
            return _fold_index(self._static(node.node), self._static(node.arg))
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
            args = [self._static(arg) for arg in node.args]
            return _fold_method(self._static(node.node.node), node.node.attr, args)
        return None


def _is_private_name(name: str) -> bool:
    return name.startswith("_")


def _names_internal(value: str) -> bool:
    """True for strings that spell (a piece of) a dunder name, like ``__class__`` or ``__cla``."""
    if value in PYTHON_INTERNALS:
        return True
    if any(name in value for name in PYTHON_INTERNALS):
        return True
    if len(value) >= 2 and not value.strip("_"):
        return True
    return len(value) > 2 and _DUNDER_FRAGMENT.match(value) is not None


def _harvests_characters(node: nodes.Node) -> bool:
    """``(lipsum|string)[18]``: indexing the text of an object to collect characters."""
    if not isinstance(node, nodes.Filter) or node.name not in STRINGIFYING_FILTERS:
        return False
    inner = node.node
    while isinstance(inner, nodes.Filter) and inner.name in STRINGIFYING_FILTERS:
        inner = inner.node
    if isinstance(inner, nodes.Name):
        return inner.name in GADGET_GLOBALS
    if isinstance(inner, nodes.Filter):
        return inner.name in OBJECT_PRODUCING_FILTERS
    return isinstance(inner, (nodes.Tuple, nodes.List, nodes.Dict, nodes.Call))


def _bounded(value: _Static) -> _Static:
    if isinstance(value, str) and len(value) > MAX_FOLDED_CHARS:
        return None
    if isinstance(value, int) and abs(value) > 10**9:
        return None
    if isinstance(value, list) and len(value) > MAX_FOLDED_CHARS:
        return None
    return value


def _fold_operator(operator: str, left: _Static, right: _Static) -> _Static:
    if operator == "+":
        if isinstance(left, str) and isinstance(right, str):
            return left + right
        if isinstance(left, int) and isinstance(right, int):
            return left + right
        return None
    if operator == "*":
        if isinstance(left, str) and isinstance(right, int) and 0 <= right <= MAX_FOLDED_CHARS:
            return left * right
        if isinstance(left, int) and isinstance(right, str) and 0 <= left <= MAX_FOLDED_CHARS:
            return right * left
        return None
    if operator == "%" and isinstance(left, str):
        return _percent_format(left, right)
    return None


def _percent_format(template: str, args: _Static) -> _Static:
    # Width and precision fields could ask for gigabytes of padding; only plain fields fold.
    if re.search(r"%[-+ #0]*\d", template) or re.search(r"%\.\d", template):
        return None
    values: tuple[Any, ...] = tuple(args) if isinstance(args, list) else (args,)
    if any(v is None for v in values):
        return None
    try:
        return template % values
    except (TypeError, ValueError, OverflowError):
        return None


def _fold_filter(name: str, value: _Static, args: list[_Static]) -> _Static:
    if name == "join" and isinstance(value, list):
        sep = args[0] if args and isinstance(args[0], str) else ""
        if all(isinstance(v, (str, int)) for v in value):
            return sep.join(str(v) for v in value)
        return None
    if name == "format" and isinstance(value, str):
        return _percent_format(value, args)
    if name == "replace" and isinstance(value, str) and len(args) >= 2:
        old, new = args[0], args[1]
        if isinstance(old, str) and isinstance(new, str) and old:
            return value.replace(old, new)
        return None
    if name in ("first", "last") and isinstance(value, (str, list)) and value:
        return value[0] if name == "first" else value[-1]
    if name == "list" and isinstance(value, str):
        return list(value)
    if isinstance(value, str):
        simple: dict[str, Callable[[str], str]] = {
            "lower": str.lower,
            "upper": str.upper,
            "trim": str.strip,
            "string": str,
            "title": str.title,
            "capitalize": str.capitalize,
            "reverse": lambda s: s[::-1],
        }
        if name in simple:
            return simple[name](value)
    if name == "reverse" and isinstance(value, list):
        return value[::-1]
    return None


def _fold_index(value: _Static, index: _Static) -> _Static:
    if (
        isinstance(value, (str, list))
        and isinstance(index, int)
        and -len(value) <= index < len(value)
    ):
        return value[index]
    return None


def _fold_method(value: _Static, method: str, args: list[_Static]) -> _Static:
    if not isinstance(value, str):
        return None
    if method in ("lower", "upper", "strip", "title", "capitalize", "swapcase") and not args:
        return getattr(value, method)()  # type: ignore[no-any-return]
    if method == "replace" and len(args) == 2 and all(isinstance(a, str) for a in args):
        return value.replace(str(args[0]), str(args[1])) if args[0] else None
    if method == "join" and len(args) == 1 and isinstance(args[0], list):
        if all(isinstance(a, str) for a in args[0]):
            return value.join(args[0])
        return None
    if method == "format" and all(isinstance(a, (str, int)) for a in args):
        return _brace_format(value, args)
    return None


def _brace_format(template: str, args: list[_Static]) -> _Static:
    # Only positional fields without attribute or index lookups and without widths are folded.
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return None
    for _, field, spec, _conversion in fields:
        if field is None:
            continue
        if (field and not field.isdigit()) or spec:
            return None
    try:
        return template.format(*args)
    except (IndexError, KeyError, ValueError):
        return None


def _output_nodes(body: list[nodes.Node]) -> Iterator[nodes.Node]:
    for stmt in body:
        if isinstance(stmt, nodes.Output):
            for item in stmt.nodes:
                if isinstance(item, nodes.TemplateData):
                    yield nodes.Const(item.data)
                else:
                    yield item
        else:
            yield stmt


def _describe(node: nodes.Node) -> str:
    """A compact Jinja-like rendering of an expression, for evidence."""
    text = _render(node, 0)
    if len(text) > MAX_EXPRESSION_CHARS:
        return text[: MAX_EXPRESSION_CHARS - 3] + "..."
    return text


_MAX_RENDER_DEPTH = 40


def _render(node: nodes.Node | None, depth: int) -> str:
    if node is None:
        return ""
    if depth > _MAX_RENDER_DEPTH:
        return "..."
    r = _render
    d = depth + 1
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Const):
        return repr(node.value)
    if isinstance(node, nodes.Getattr):
        return f"{r(node.node, d)}.{node.attr}"
    if isinstance(node, nodes.Getitem):
        base = r(node.node, d)
        if isinstance(node.node, (nodes.Filter, nodes.BinExpr, nodes.Concat, nodes.Test)):
            base = f"({base})"
        return f"{base}[{r(node.arg, d)}]"
    if isinstance(node, nodes.Slice):
        return f"{r(node.start, d)}:{r(node.stop, d)}" + (
            f":{r(node.step, d)}" if node.step else ""
        )
    if isinstance(node, (nodes.Filter, nodes.Test)):
        sep = "|" if isinstance(node, nodes.Filter) else " is "
        args = _render_args(node.args, node.kwargs, d)
        return f"{r(node.node, d)}{sep}{node.name}" + (f"({args})" if args else "")
    if isinstance(node, nodes.Call):
        return f"{r(node.node, d)}({_render_args(node.args, node.kwargs, d)})"
    if isinstance(node, nodes.Concat):
        return " ~ ".join(r(n, d) for n in node.nodes)
    if isinstance(node, nodes.BinExpr):
        return f"{r(node.left, d)} {node.operator} {r(node.right, d)}"
    if isinstance(node, nodes.UnaryExpr):
        return f"{node.operator} {r(node.node, d)}"
    if isinstance(node, (nodes.List, nodes.Tuple)):
        inner = ", ".join(r(n, d) for n in node.items)
        return f"[{inner}]" if isinstance(node, nodes.List) else f"({inner})"
    if isinstance(node, nodes.Keyword):
        return f"{node.key}={r(node.value, d)}"
    if isinstance(node, nodes.NSRef):
        return f"{node.name}.{node.attr}"
    if isinstance(node, (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        return f"{type(node).__name__.lower()} {r(node.template, d)}"
    return type(node).__name__


def _render_args(
    args: list[nodes.Expr], kwargs: list[nodes.Keyword] | list[nodes.Pair], depth: int
) -> str:
    parts = [_render(a, depth) for a in args] + [_render(k, depth) for k in kwargs]
    return ", ".join(parts)
