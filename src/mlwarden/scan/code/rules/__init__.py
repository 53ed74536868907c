"""The rule registry: each rule family is one module that registers handlers by node type.

A node rule is a function ``(node, context) -> None`` registered with `register_rule` for the AST
node types it wants (``ast.Call``, ``ast.Assign`` ...); the engine walks each file's tree once and
hands every node to the rules registered for its type. A text rule is registered with
`register_text_rule` and a trigger pattern: it reads comments and the raw lines a notebook's
IPython syntax hid from the parser, and the engine only tokenizes a file when some trigger (or a
suppression comment) appears in it. Adding a rule family means adding one module and naming it in
`RULE_MODULES`; the engine never changes. Not for: walking or reporting (see `engine`, `context`).
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from mlwarden.scan.code.context import FileContext

NodeRule = Callable[[Any, "FileContext"], None]
"""``rule(node, context)``: look at one node, call ``context.report`` for each problem."""

TextRule = Callable[[str, int, int, "FileContext"], None]
"""``rule(text, line, column, context)``: look at a comment or a raw line starting at 1-based
(`line`, `column`)."""

_F = TypeVar("_F", bound=Callable[..., None])

RULE_MODULES: dict[str, str] = {
    "deserialisation": "mlwarden.scan.code.rules.deserialisation",
    "remote code": "mlwarden.scan.code.rules.remote_code",
    "hub downloads": "mlwarden.scan.code.rules.hub_downloads",
    "dynamic execution": "mlwarden.scan.code.rules.dynamic_exec",
    "secrets": "mlwarden.scan.code.rules.hardcoded_secrets",
    "TLS verification": "mlwarden.scan.code.rules.tls",
}
"""Rule family -> the module that registers its rules when imported. Each module lists the rule
ids it reports in ``RULES``."""

_NODE_RULES: dict[type[ast.AST], list[NodeRule]] = {}
_TEXT_RULES: list[tuple[str, TextRule]] = []
_trigger: re.Pattern[str] | None = None
_loaded = False


def register_rule(*node_types: type[ast.AST]) -> Callable[[_F], _F]:
    """Register the decorated function as a rule for every node of `node_types`."""

    def decorate(fn: _F) -> _F:
        for node_type in node_types:
            handlers = _NODE_RULES.setdefault(node_type, [])
            if fn not in handlers:
                handlers.append(fn)
        return fn

    return decorate


def register_text_rule(trigger: str) -> Callable[[_F], _F]:
    """Register the decorated function as a text rule; `trigger` is a regular expression that
    must match somewhere in a file for the rule to be worth running on it."""

    def decorate(fn: _F) -> _F:
        global _trigger
        if all(existing is not fn for _, existing in _TEXT_RULES):
            _TEXT_RULES.append((trigger, fn))
            _trigger = None
        return fn

    return decorate


def node_rules() -> Mapping[type[ast.AST], tuple[NodeRule, ...]]:
    """Node type -> the rules registered for it (built-in families loaded on first use)."""
    _load()
    return {kind: tuple(rules) for kind, rules in _NODE_RULES.items()}


def text_rules() -> tuple[TextRule, ...]:
    """Every registered text rule."""
    _load()
    return tuple(rule for _, rule in _TEXT_RULES)


def text_trigger() -> re.Pattern[str]:
    """One pattern matching wherever any text rule's trigger matches."""
    global _trigger
    _load()
    if _trigger is None:
        _trigger = re.compile("|".join(f"(?:{t})" for t, _ in _TEXT_RULES) or "(?!)")
    return _trigger


def rule_ids() -> dict[str, tuple[str, ...]]:
    """Rule family -> the ids of the rules it reports."""
    return {
        family: tuple(importlib.import_module(module).RULES)
        for family, module in RULE_MODULES.items()
    }


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in RULE_MODULES.values():
            importlib.import_module(module)
        _loaded = True
