"""Static analysis of model files, containers and folders. Never imports or runs what it reads.

`mlwarden.scan(paths)` is the entry point (`mlwarden.scan.api.scan`); `formats/` holds one module
per file format; `pickle/` is the symbolic pickle machine; `policy` says which globals are safe.

This package is itself callable, so that ``mlwarden.scan(paths)`` works although
``mlwarden.scan`` is also the name of this package.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from mlwarden.scan.api import scan

        return scan(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
