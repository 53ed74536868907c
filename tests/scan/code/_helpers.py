"""Helpers for the code audit tests: look at findings, build notebooks and fake credentials."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

from mlwarden.findings import Finding


def rules(findings: list[Finding]) -> list[str]:
    """The rule ids of `findings`, in order."""
    return [f.rule for f in findings]


def only(findings: list[Finding], rule: str) -> list[Finding]:
    """The findings of one rule."""
    return [f for f in findings if f.rule == rule]


def write_notebook(path: Path, cells: list[tuple[str, str]], language: str = "python") -> Path:
    """Write an nbformat-4 notebook of (cell type, source) cells; sources as lists of lines."""
    document = {
        "cells": [
            {
                "cell_type": kind,
                "metadata": {},
                "source": source.splitlines(keepends=True),
                **({"outputs": [], "execution_count": None} if kind == "code" else {}),
            }
            for kind, source in cells
        ],
        "metadata": {"kernelspec": {"name": "k", "language": language}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def fake_token(
    prefix: str, length: int, alphabet: str = string.ascii_letters + string.digits, seed: int = 0
) -> str:
    """A credential-shaped value built at run time, so this test code holds no token itself."""
    rng = random.Random(seed)
    return prefix + "".join(rng.choice(alphabet) for _ in range(length))
