"""Rule for running text as code or as a shell command: ``eval``, ``exec``, ``compile``,
``os.system``, ``subprocess`` with ``shell=True`` — and, worse, running a model's output that way.

A call whose input is not a literal is reported; when that input comes from a model (an LLM's
``generate``/``invoke``/``chat.completions.create`` answer, a ``transformers.pipeline`` result,
or anything computed from one) it is reported at a higher severity, because whoever can steer the
model's output (a prompt injection in a retrieved web page) then runs code here.

The data flow is tracked within one function at a time (the module counts as one), through plain
assignments, augmented assignments, ``:=``, ``for`` targets, and any expression built from a
tainted value (attributes, subscripts, calls, f-strings, operators). It does not follow values
across functions, through object attributes (``self.answer``), containers mutated in place, or
comprehension variables; it does not know types. A tainted value that misses those paths is still
reported as non-literal input, just at the lower severity.
Not for: deserialisation (see `deserialisation`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from mlwarden.findings import Severity
from mlwarden.scan.code.context import FileContext, argument, is_true, keyword, walk_expression
from mlwarden.scan.code.imports import attribute_chain
from mlwarden.scan.code.rules import register_rule

DYNAMIC_EXEC_RULE = "code.dynamic-exec"
RULES = (DYNAMIC_EXEC_RULE,)

CODE_SINKS = frozenset(
    {"eval", "exec", "compile", "builtins.eval", "builtins.exec", "builtins.compile"}
)
SHELL_SINKS = frozenset(
    {
        "os.system",
        "os.popen",
        "subprocess.getoutput",
        "subprocess.getstatusoutput",
        "asyncio.create_subprocess_shell",
    }
)
"""Calls that always hand their input to a shell."""
SHELL_FLAG_SINKS = frozenset(
    {
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "subprocess.Popen",
    }
)
"""Calls that hand their input to a shell with ``shell=True``."""

MODEL_OUTPUT_METHODS = frozenset(
    {
        "generate",
        "agenerate",
        "generate_content",
        "generate_text",
        "predict",
        "invoke",
        "ainvoke",
        "chat",
        "achat",
        "complete",
        "acomplete",
        "completion",
        "acompletion",
        "chat_completion",
        "text_generation",
    }
)
"""Method or function names whose result is a model's output."""

_CREATE_NAMESPACES = frozenset(
    {"completions", "completion", "chatcompletion", "chat", "messages", "responses"}
)
"""``<...>.create`` is a model call under one of these (``client.chat.completions.create``)."""

_PIPELINE_FACTORIES = frozenset({"transformers.pipeline"})
_FLOW = "dynamic-exec.flow"


@dataclass
class _Flow:
    """The assignments of one function, replayed in order only when a sink needs them: most
    functions have no sink, so recording costs one append per assignment."""

    history: list[tuple[tuple[ast.expr, ...], ast.expr, bool]] = field(default_factory=list)
    """(targets, value, keeps old taint) per assignment, in source order."""
    replayed: int = 0
    tainted: set[str] = field(default_factory=set)
    """Names holding model output (as of the last replayed assignment)."""
    pipelines: set[str] = field(default_factory=set)
    """Names holding a ``transformers.pipeline`` (calling one gives model output)."""

    def catch_up(self, ctx: FileContext) -> None:
        for targets, value, add in self.history[self.replayed :]:
            self._apply(targets, value, add, ctx)
        self.replayed = len(self.history)

    def _apply(
        self, targets: tuple[ast.expr, ...], value: ast.expr, add: bool, ctx: FileContext
    ) -> None:
        dirty = self.carries_output(value, ctx)
        makes_pipeline = (
            isinstance(value, ast.Call) and ctx.qualname(value.func) in _PIPELINE_FACTORIES
        )
        for target in targets:
            for name in _bound_names(target):
                if dirty:
                    self.tainted.add(name)
                elif not add:
                    self.tainted.discard(name)
                if makes_pipeline:
                    self.pipelines.add(name)
                elif not add:
                    self.pipelines.discard(name)

    def carries_output(self, expr: ast.expr, ctx: FileContext) -> bool:
        for node in walk_expression(expr):
            if isinstance(node, ast.Name) and node.id in self.tainted:
                return True
            if isinstance(node, ast.Call) and self._is_model_call(node):
                return True
        return False

    def _is_model_call(self, call: ast.Call) -> bool:
        chain = [part.lower() for part in attribute_chain(call.func)]
        if not chain:
            return False
        last = chain[-1]
        if last in MODEL_OUTPUT_METHODS:
            return True
        if last in ("create", "acreate") and _CREATE_NAMESPACES.intersection(chain[:-1]):
            return True
        return isinstance(call.func, ast.Name) and call.func.id in self.pipelines


def _flow(ctx: FileContext) -> _Flow:
    flow = ctx.scope.facts.get(_FLOW)
    if flow is None:
        flow = ctx.scope.facts[_FLOW] = _Flow()
    assert isinstance(flow, _Flow)
    return flow


def is_model_output(expr: ast.expr, ctx: FileContext) -> bool:
    """Whether `expr` is, or is computed from, a model's output within the current function."""
    flow = _flow(ctx)
    flow.catch_up(ctx)
    return flow.carries_output(expr, ctx)


def _bound_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Starred):
        return _bound_names(target.value)
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _bound_names(element)]
    return []


@register_rule(ast.Assign)
def _track_assign(node: ast.Assign, ctx: FileContext) -> None:
    _flow(ctx).history.append((tuple(node.targets), node.value, False))


@register_rule(ast.AnnAssign)
def _track_annotated(node: ast.AnnAssign, ctx: FileContext) -> None:
    if node.value is not None:
        _flow(ctx).history.append(((node.target,), node.value, False))


@register_rule(ast.AugAssign)
def _track_augmented(node: ast.AugAssign, ctx: FileContext) -> None:
    _flow(ctx).history.append(((node.target,), node.value, True))


@register_rule(ast.NamedExpr)
def _track_walrus(node: ast.NamedExpr, ctx: FileContext) -> None:
    _flow(ctx).history.append(((node.target,), node.value, False))


@register_rule(ast.For, ast.AsyncFor)
def _track_loop(node: ast.For | ast.AsyncFor, ctx: FileContext) -> None:
    _flow(ctx).history.append(((node.target,), node.iter, False))


def _is_literal(expr: ast.expr, ctx: FileContext) -> bool:
    """Whether `expr` is built only from literals (and names bound to string literals)."""
    pending = [expr]
    while pending:
        part = pending.pop()
        if isinstance(part, (ast.List, ast.Tuple)):
            pending.extend(part.elts)
        elif isinstance(part, ast.BinOp):
            pending += (part.left, part.right)
        elif not isinstance(part, ast.Constant) and ctx.string_value(part) is None:
            return False
    return True


def _sink(node: ast.Call, ctx: FileContext) -> tuple[str, str] | None:
    """(called name, what it does with its input) when `node` runs code or a shell command."""
    name = ctx.qualname(node.func)
    if name in CODE_SINKS:
        return name, "runs it as Python code"
    if name in SHELL_SINKS:
        return name, "runs it as a shell command"
    if name in SHELL_FLAG_SINKS and is_true(keyword(node, "shell")):
        return name, "runs it as a shell command (shell=True)"
    return None


@register_rule(ast.Call)
def dynamic_exec(node: ast.Call, ctx: FileContext) -> None:
    """Report code and shell execution of non-literal input, higher when it is model output."""
    sink = _sink(node, ctx)
    if sink is None:
        return
    name, effect = sink
    first = argument(node, 0, "source")
    for alternative in ("args", "cmd", "command"):
        first = first or keyword(node, alternative)
    if first is None or _is_literal(first, ctx):
        return
    shown = ctx.text_of(first)
    evidence = {"call": name, "argument": shown}
    if is_model_output(first, ctx):
        ctx.report(
            DYNAMIC_EXEC_RULE,
            Severity.HIGH,
            node,
            title=f"{name}() on model output",
            detail=f"{name}() receives {shown}, which is computed from a model's output, and "
            f"{effect}. Whoever can steer the model (a prompt injection in a document it reads, "
            "a poisoned fine-tune) runs code on this machine.",
            remediation="Never execute model output. Parse it as data (json.loads, "
            "ast.literal_eval for literals) and validate it against what you expect, or run "
            "generated code only in a sandbox without credentials or network.",
            evidence={**evidence, "model_output": True},
        )
        return
    ctx.report(
        DYNAMIC_EXEC_RULE,
        Severity.MEDIUM,
        node,
        title=f"{name}() on non-literal input",
        detail=f"{name}() receives {shown} and {effect}; if any part of it comes from a file, "
        "a request or a model, that source decides what runs.",
        remediation="Replace it with code that does the one thing needed (ast.literal_eval for "
        "literals, a dict of allowed functions, subprocess.run([...]) with a list and no shell).",
        evidence={**evidence, "model_output": False},
    )
