"""``python -m mlwarden``: the same as the ``mlwarden`` command."""

from __future__ import annotations

from mlwarden.cli import run

run()
