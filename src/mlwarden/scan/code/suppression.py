"""Suppression comments: ``# mlwarden: ignore[rule-id]`` silences one rule on one line.

``# mlwarden: ignore[code.a, code.b]`` names several rules; a bare ``# mlwarden: ignore``
silences every rule on its line. A comment applies to findings reported on its line, or whose
expression spans its line (the closing line of a call written over several lines). Not for:
reading comments out of source (the engine does that with `tokenize`).
"""

from __future__ import annotations

import re

DIRECTIVE = re.compile(r"#\s*mlwarden:\s*ignore\b(?:\[([^\]]*)\])?")
"""The suppression comment; group 1 holds the rule ids when it names any."""

_ANY_RULE_MARK = "*"


class Suppressions:
    """The suppression comments of one piece of source, by line."""

    def __init__(self) -> None:
        self._by_line: dict[int, set[str]] = {}

    def add_comment(self, line: int, comment: str) -> None:
        """Read the directives in one comment (line 1-based); comments without one are ignored."""
        for match in DIRECTIVE.finditer(comment):
            rules = self._by_line.setdefault(line, set())
            if match.group(1) is None:
                rules.add(_ANY_RULE_MARK)
            else:
                rules.update(r.strip() for r in match.group(1).split(",") if r.strip())

    def covers(self, rule: str, first_line: int, last_line: int) -> bool:
        """Whether a comment on any line from `first_line` to `last_line` silences `rule`."""
        if not self._by_line:
            return False
        for line in range(first_line, last_line + 1):
            rules = self._by_line.get(line)
            if rules and (rule in rules or _ANY_RULE_MARK in rules):
                return True
        return False
