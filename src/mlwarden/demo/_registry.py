"""The registry of corpus techniques: what each sample is, and the function that writes it.

`_malicious` and `_benign` register one builder per technique with the decorators here; the
public `corpus` module builds and lists them. Not for: the payloads themselves.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mlwarden.findings import Severity

Kind = Literal["malicious", "benign"]
RealLoader = Literal["pickle", "pickle-stream", "torch", "joblib", "numpy", "npz"]
"""How a real framework would load the sample (used to prove payloads are real):
``pickle`` is one `pickle.load`, ``pickle-stream`` repeats it until the end of the file,
``npz`` is `numpy.load(allow_pickle=True)` then reading every member."""


@dataclass(frozen=True)
class BuildContext:
    """What a builder needs: where to write, and the only file a payload may ever create."""

    path: Path
    """The sample's path (a file, or a folder for folder samples)."""
    marker: Path
    """The marker file; a payload, if ever run, creates this and does nothing else."""

    def shell_command(self) -> str:
        """A shell command that only creates the marker."""
        return f"touch {shlex.quote(str(self.marker))}"

    def python_statement(self) -> str:
        """A Python statement that only creates the marker."""
        return f"open({str(self.marker)!r}, 'w').close()"


Builder = Callable[[BuildContext], "bytes | None"]
"""Returns the file's bytes, or None after writing `ctx.path` itself (folders, framework savers)."""


@dataclass(frozen=True)
class Technique:
    """One corpus entry, before it is built."""

    id: str
    kind: Kind
    format: str
    file_name: str
    description: str
    reference: str
    expected_rules: tuple[str, ...]
    min_severity: Severity
    needs: tuple[str, ...]
    real_loader: RealLoader | None
    build: Builder


_TECHNIQUES: dict[str, Technique] = {}


def registered() -> list[Technique]:
    """Every registered technique in registration order."""
    return list(_TECHNIQUES.values())


def malicious(
    technique_id: str,
    *,
    format: str,
    file: str,
    description: str,
    reference: str,
    rules: tuple[str, ...] = ("pickle.",),
    min_severity: Severity = Severity.HIGH,
    needs: tuple[str, ...] = (),
    loader: RealLoader | None = None,
) -> Callable[[Builder], Builder]:
    """Register a malicious sample's builder."""
    return _register(
        technique_id,
        "malicious",
        format,
        file,
        description,
        reference,
        rules,
        min_severity,
        needs,
        loader,
    )


def benign(
    technique_id: str,
    *,
    format: str,
    file: str,
    description: str,
    reference: str = "legitimate file: the default gate must pass it",
    needs: tuple[str, ...] = (),
) -> Callable[[Builder], Builder]:
    """Register a benign sample's builder."""
    return _register(
        technique_id,
        "benign",
        format,
        file,
        description,
        reference,
        (),
        Severity.HIGH,
        needs,
        None,
    )


def _register(
    technique_id: str,
    kind: Kind,
    format: str,
    file: str,
    description: str,
    reference: str,
    rules: tuple[str, ...],
    min_severity: Severity,
    needs: tuple[str, ...],
    loader: RealLoader | None,
) -> Callable[[Builder], Builder]:
    def decorate(build: Builder) -> Builder:
        if technique_id in _TECHNIQUES:
            raise ValueError(f"technique {technique_id!r} is registered twice")
        _TECHNIQUES[technique_id] = Technique(
            technique_id,
            kind,
            format,
            file,
            description,
            reference,
            rules,
            min_severity,
            needs,
            loader,
            build,
        )
        return build

    return decorate
