"""Resolve what a name in audited code refers to, so that rules match fully qualified names.

``import pickle as pk; pk.loads(b)``, ``from joblib import load as jl; jl(f)`` and
``import tensorflow as tf; tf.keras.models.load_model(p)`` all resolve to the name a rule knows
(``pickle.loads``, ``joblib.load``, ``tensorflow.keras.models.load_model``). The table is flat per
file: an import inside a function is visible everywhere after it, and a name is never unbound
again. That is deliberate: rules err towards seeing a dangerous call rather than missing one.
Not for: deciding what is dangerous (see `rules/`).
"""

from __future__ import annotations

import ast

CONVENTIONAL_ALIASES: dict[str, str] = {"np": "numpy", "pd": "pandas", "tf": "tensorflow"}
"""Names that mean these modules by convention even when their import is not in the file
(a notebook cell that failed, a snippet pasted from elsewhere)."""

_IMPORT_FUNCTIONS = frozenset({"__import__", "importlib.import_module"})


class ImportTable:
    """Local names bound by imports (and by plain aliases of imported names) in one file."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def add_import(self, node: ast.Import) -> None:
        """Record ``import a.b`` (binds ``a``) and ``import a.b as c`` (binds ``c``)."""
        for alias in node.names:
            if alias.asname:
                self._names[alias.asname] = alias.name
            else:
                root = alias.name.partition(".")[0]
                self._names[root] = root

    def add_import_from(self, node: ast.ImportFrom) -> None:
        """Record ``from a import b as c``; relative imports keep their leading dots."""
        module = "." * node.level + (node.module or "")
        for alias in node.names:
            if alias.name == "*":
                continue
            prefix = module if module.endswith(".") or not module else module + "."
            self._names[alias.asname or alias.name] = prefix + alias.name

    def add_alias(self, name: str, value: ast.expr) -> None:
        """Record ``name = <imported name>`` (``load = pickle.loads``); ignore anything else."""
        root = value
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and root.id in self._names:
            qualified = self.resolve(value)
            if qualified is not None:
                self._names[name] = qualified

    def bound(self, name: str) -> str | None:
        """What an imported local name stands for, or None when no import bound it."""
        return self._names.get(name)

    def resolve(self, expr: ast.expr) -> str | None:
        """The dotted name `expr` refers to, or None when it is not a (resolvable) name.

        Names no import bound stay as written (``eval``, ``client.chat.completions.create``), so
        builtins and plain variables still produce a dotted name.
        """
        attributes: list[str] = []
        while isinstance(expr, ast.Attribute):
            attributes.append(expr.attr)
            expr = expr.value
        if isinstance(expr, ast.Name):
            base = self._names.get(expr.id) or CONVENTIONAL_ALIASES.get(expr.id, expr.id)
        elif isinstance(expr, ast.Call) and not attributes:
            return self._resolve_dynamic(expr)
        elif isinstance(expr, ast.Call):
            resolved = self._resolve_dynamic(expr)
            if resolved is None:
                return None
            base = resolved
        else:
            return None
        attributes.append(base)
        attributes.reverse()
        return ".".join(attributes)

    def _resolve_dynamic(self, call: ast.Call) -> str | None:
        """``__import__("os")`` -> ``os``; ``getattr(pickle, "loads")`` -> ``pickle.loads``."""
        func = self.resolve(call.func)
        args = call.args
        if func in _IMPORT_FUNCTIONS and args:
            return _str_value(args[0])
        if func == "getattr" and len(args) >= 2 and (attr := _str_value(args[1])) is not None:
            base = self.resolve(args[0])
            return None if base is None else f"{base}.{attr}"
        return None


def attribute_chain(expr: ast.expr) -> list[str]:
    """The names along an attribute chain: ``x.b.c`` -> ``["x", "b", "c"]``, ``f().b`` -> ``["b"]``.

    Unlike `ImportTable.resolve`, this keeps the attribute names even when the root is a call
    or a subscript, which is what rules that look at method names need.
    """
    names: list[str] = []
    while isinstance(expr, ast.Attribute):
        names.append(expr.attr)
        expr = expr.value
    if isinstance(expr, ast.Name):
        names.append(expr.id)
    names.reverse()
    return names


def _str_value(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value
    return None
