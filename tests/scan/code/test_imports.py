"""Alias resolution: every way of naming a module resolves to its fully qualified name."""

from __future__ import annotations

import ast

import pytest

from mlwarden.scan.code.imports import ImportTable, attribute_chain


def resolved(setup: str, expression: str) -> str | None:
    table = ImportTable()
    for node in ast.parse(setup).body:
        if isinstance(node, ast.Import):
            table.add_import(node)
        elif isinstance(node, ast.ImportFrom):
            table.add_import_from(node)
        elif isinstance(node, ast.Assign):
            table.add_alias(node.targets[0].id, node.value)
    return table.resolve(ast.parse(expression, mode="eval").body)


@pytest.mark.parametrize(
    ("setup", "expression", "name"),
    [
        ("import pickle as pk", "pk.loads", "pickle.loads"),
        ("from joblib import load as jl", "jl", "joblib.load"),
        ("import torch", "torch.load", "torch.load"),
        ("import torch.hub", "torch.hub.load", "torch.hub.load"),
        (
            "import tensorflow as tf",
            "tf.keras.models.load_model",
            "tensorflow.keras.models.load_model",
        ),
        (
            "from tensorflow import keras",
            "keras.models.load_model",
            "tensorflow.keras.models.load_model",
        ),
        ("import keras.saving as ks", "ks.load_model", "keras.saving.load_model"),
        ("from torch import hub", "hub.load", "torch.hub.load"),
        ("import pickle\nl = pickle.loads", "l", "pickle.loads"),
        ("", "np.load", "numpy.load"),
        ("import numpy as np2", "np2.load", "numpy.load"),
        ("", "eval", "eval"),
        ("", "client.chat.completions.create", "client.chat.completions.create"),
        ("", "__import__('os').system", "os.system"),
        ("import pickle", "getattr(pickle, 'loads')", "pickle.loads"),
        ("from . import helpers", "helpers.load", ".helpers.load"),
        ("from .pkg import pickle", "pickle.loads", ".pkg.pickle.loads"),
    ],
)
def test_names_resolve_to_what_they_were_imported_as(setup, expression, name):
    assert resolved(setup, expression) == name


@pytest.mark.parametrize("expression", ["x[0].load", "f().load", "(a or b).load", "'s'.join"])
def test_expressions_that_are_not_names_do_not_resolve(expression):
    assert resolved("", expression) is None


def test_a_plain_variable_is_not_turned_into_an_alias():
    assert resolved("x = something.else_", "x.load") == "x.load"


def test_attribute_chain_keeps_method_names_after_a_call():
    node = ast.parse("OpenAI().chat.completions.create", mode="eval").body
    assert attribute_chain(node) == ["chat", "completions", "create"]
