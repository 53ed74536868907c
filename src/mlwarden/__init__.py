"""mlwarden: find and fix the OWASP Machine Learning Security Top 10 in real ML systems.

The public entry points are small and import nothing heavy until used::

    import mlwarden
    report = mlwarden.scan(["models/"])
    print(report.max_severity())
    weights = mlwarden.load("models/bert", key="signer.pub")  # verified, scanned, then loaded
    target = mlwarden.target(model, input_shape=(1, 28, 28))  # any model, as attacks see it
    mlwarden.evaluate.robustness(target, x, y, eps=[0.03])    # subpackages load on first use
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mlwarden.integrity.loading import load as load
    from mlwarden.scan.api import scan as scan
    from mlwarden.targets import target as target

__all__ = ["__version__", "load", "scan", "target"]

_SUBPACKAGES = frozenset(
    {"attacks", "audit", "defenses", "evaluate", "integrity", "privacy", "report", "targets"}
)


def __getattr__(name: str) -> Any:
    # Lazy so that `import mlwarden` stays fast and `mlwarden scan` never imports a framework.
    if name == "scan":
        import mlwarden.scan as scan_package  # callable: mlwarden.scan(paths) -> Report

        return scan_package
    if name == "load":  # verify the signature, scan, then load with the safest loader
        from mlwarden.integrity.loading import load

        return load
    if name == "target":  # wrap any model as a Target; torch and the rest load when used
        from mlwarden.targets import target

        return target
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"mlwarden.{name}")
    raise AttributeError(f"module 'mlwarden' has no attribute {name!r}")
