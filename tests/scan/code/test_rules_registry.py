"""The rule registry: families register by node type, every rule id is stable and documented."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

from mlwarden.scan.code import rule_ids
from mlwarden.scan.code.engine import TOO_LARGE_RULE, UNPARSEABLE_RULE
from mlwarden.scan.code.rules import RULE_MODULES, node_rules, text_rules

DOC = Path(__file__).resolve().parents[3] / "docs" / "code-audit.md"
ENGINE_RULES = {UNPARSEABLE_RULE, TOO_LARGE_RULE}


def every_rule_id() -> set[str]:
    return {rule for ids in rule_ids().values() for rule in ids} | ENGINE_RULES


def test_rule_ids_are_unique_stable_and_namespaced():
    ids = [rule for family in rule_ids().values() for rule in family]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"code\.[a-z0-9-]+", rule) for rule in every_rule_id())
    assert every_rule_id() == {
        "code.pickle-load",
        "code.torch-load",
        "code.numpy-allow-pickle",
        "code.yaml-unsafe-load",
        "code.keras-unsafe-mode",
        "code.trust-remote-code",
        "code.torch-hub-load",
        "code.unpinned-hub-download",
        "code.dynamic-exec",
        "code.hardcoded-secret",
        "code.tls-verify-disabled",
        "code.unparseable",
        "code.too-large",
    }


def test_every_rule_id_has_its_own_section_in_the_docs():
    text = DOC.read_text(encoding="utf-8")
    for rule in every_rule_id():
        assert f"| `{rule}` |" in text, rule
    for rule in every_rule_id() - ENGINE_RULES:
        assert f"### `{rule}`" in text, rule


def test_every_registered_rule_lives_in_a_listed_family_module():
    modules = set(RULE_MODULES.values())
    registered = [rule for rules in node_rules().values() for rule in rules] + list(text_rules())
    assert registered
    assert {rule.__module__ for rule in registered} == modules


def test_rules_are_dispatched_by_node_type():
    table = node_rules()
    assert all(isinstance(kind, type) and issubclass(kind, ast.AST) for kind in table)
    assert ast.Call in table and ast.Constant in table


def test_each_family_module_lists_its_rules():
    for module in RULE_MODULES.values():
        assert importlib.import_module(module).RULES
