"""Symbolic values of the pickle machine: what a loader would build, without building it.

Each value records enough to explain itself as Python-like text (``render``), so a finding can
show the call chain a loader would run: ``builtins.getattr(builtins.__import__('os'), 'system')``.
Not for: deciding what is dangerous (see `policy` and `analyser`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

MAX_RENDER_CHARS = 600
"""Rendered evidence is cut to this many characters."""
_MAX_RENDER_DEPTH = 6
_MAX_RENDER_ITEMS = 6
_MAX_CONST_CHARS = 120


class Value:
    """Base class of symbolic values."""

    __slots__ = ()

    def children(self) -> Iterator[Value]:
        """Values this one was built from (for walking expressions)."""
        return iter(())


@dataclass(eq=False, slots=True)
class Const(Value):
    """A literal: None, bool, int, float, str, bytes."""

    value: object


@dataclass(eq=False, slots=True)
class Global(Value):
    """``module.name`` as found by GLOBAL, STACK_GLOBAL, INST or an extension code."""

    module: str
    name: str
    offset: int

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False, slots=True)
class Call(Value):
    """The result of calling `func` with `args` (REDUCE, INST, OBJ, NEWOBJ, NEWOBJ_EX)."""

    func: Value
    args: Value
    opcode: str
    offset: int
    kwargs: Value | None = None
    state: list[Value] = field(default_factory=list)
    """States applied by BUILD afterwards."""

    def children(self) -> Iterator[Value]:
        yield self.func
        yield self.args
        if self.kwargs is not None:
            yield self.kwargs
        yield from self.state


@dataclass(eq=False, slots=True)
class Seq(Value):
    """A tuple, list, set or frozenset (`kind`); lists and sets grow as the pickle runs."""

    kind: str
    items: list[Value]

    def children(self) -> Iterator[Value]:
        return iter(self.items)


@dataclass(eq=False, slots=True)
class Mapping(Value):
    """A dict; grows with SETITEM(S)."""

    items: list[tuple[Value, Value]]

    def children(self) -> Iterator[Value]:
        for key, value in self.items:
            yield key
            yield value

    def get(self, key: str) -> Value | None:
        """The value stored under the string constant `key`, if any."""
        for k, v in self.items:
            if isinstance(k, Const) and k.value == key:
                return v
        return None


@dataclass(eq=False, slots=True)
class Opaque(Value):
    """Something the machine cannot model as data (a persistent id, an out-of-band buffer)."""

    description: str
    parts: tuple[Value, ...] = ()

    def children(self) -> Iterator[Value]:
        return iter(self.parts)


class _MarkType:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MARK"


MARK = _MarkType()
"""The marker MARK pushes on the stack (kept apart from values)."""


def render(value: Value | _MarkType, depth: int = 0) -> str:
    """Python-like text for `value`, bounded in depth and length."""
    text = _render(value, depth)
    if len(text) > MAX_RENDER_CHARS:
        text = text[: MAX_RENDER_CHARS - 3] + "..."
    return text


def _render(value: Value | _MarkType, depth: int) -> str:
    if depth > _MAX_RENDER_DEPTH:
        return "..."
    if isinstance(value, Const):
        return _render_const(value.value)
    if isinstance(value, Global):
        return value.qualname
    if isinstance(value, Call):
        func = _render(value.func, depth + 1)
        args = _render_args(value.args, depth + 1)
        if value.kwargs is not None:
            args = (
                f"{args}, **{_render(value.kwargs, depth + 1)}"
                if args
                else f"**{_render(value.kwargs, depth + 1)}"
            )
        text = f"{func}({args})"
        if value.opcode in ("NEWOBJ", "NEWOBJ_EX"):
            text = f"{func}.__new__({func}{', ' + args if args else ''})"
        for state in value.state[:2]:
            text += f".__setstate__({_render(state, depth + 1)})"
        return text
    if isinstance(value, Seq):
        inner = ", ".join(_render(v, depth + 1) for v in value.items[:_MAX_RENDER_ITEMS])
        if len(value.items) > _MAX_RENDER_ITEMS:
            inner += ", ..."
        if value.kind == "tuple":
            return f"({inner}{',' if len(value.items) == 1 else ''})"
        if value.kind == "list":
            return f"[{inner}]"
        return f"{value.kind}({{{inner}}})"
    if isinstance(value, Mapping):
        pairs = ", ".join(
            f"{_render(k, depth + 1)}: {_render(v, depth + 1)}"
            for k, v in value.items[:_MAX_RENDER_ITEMS]
        )
        if len(value.items) > _MAX_RENDER_ITEMS:
            pairs += ", ..."
        return "{" + pairs + "}"
    if isinstance(value, Opaque):
        return f"<{value.description}>"
    return "<mark>"


def _render_args(args: Value, depth: int) -> str:
    if isinstance(args, Seq) and args.kind == "tuple":
        inner = ", ".join(_render(v, depth) for v in args.items[:_MAX_RENDER_ITEMS])
        return inner + (", ..." if len(args.items) > _MAX_RENDER_ITEMS else "")
    return f"*{_render(args, depth)}"


def _render_const(value: object) -> str:
    text = repr(value)
    if len(text) > _MAX_CONST_CHARS:
        text = text[: _MAX_CONST_CHARS - 4] + "...'"
    return text


def walk(value: Value, limit: int = 10_000) -> Iterator[Value]:
    """Every value reachable from `value` (each once), breadth-first, at most `limit`."""
    seen: set[int] = set()
    queue = deque([value])
    while queue and len(seen) < limit:
        current = queue.popleft()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        queue.extend(current.children())
