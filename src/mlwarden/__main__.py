"""``python -m mlwarden``: the same as the ``mlwarden`` command."""

from __future__ import annotations

import sys

from mlwarden.cli import main

sys.exit(main())
