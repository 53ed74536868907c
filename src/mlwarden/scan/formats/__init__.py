"""The registry of file formats the scanner recognises by content.

Each module here implements `FormatHandler` for one format and registers an instance. The engine
asks handlers in priority order whether the first bytes are theirs; the first that says yes scans
the source. Adding a format means adding a module and naming it in `BUILTIN_FORMAT_MODULES`.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Sequence

from mlwarden.scan.blob import Blob
from mlwarden.scan.context import FileScan, ScanContext

BUILTIN_FORMAT_MODULES = (
    "mlwarden.scan.formats.zip",
    "mlwarden.scan.formats.sevenzip",
    "mlwarden.scan.formats.compressed",
    "mlwarden.scan.formats.tar",
    "mlwarden.scan.formats.hdf5",
    "mlwarden.scan.formats.gguf",
    "mlwarden.scan.formats.numpy",
    "mlwarden.scan.formats.safetensors",
    "mlwarden.scan.formats.onnx",
    "mlwarden.scan.formats.pickle",
    "mlwarden.scan.formats.json",
    "mlwarden.scan.formats.opaque",
    "mlwarden.scan.formats.huggingface",
)
"""Modules that register the built-in handlers and folder analysers when imported."""


class FormatHandler(abc.ABC):
    """Recognises one format by content and scans it."""

    name: str
    """Format name reported in the inventory (``pickle``, ``zip``, ``safetensors`` ...)."""
    priority: int = 50
    """Handlers are asked in ascending priority; cheap, unambiguous magic numbers go first."""

    def sniff_raw(self, head: bytes, blob: Blob) -> bool:
        """Whether raw tensor data (a storage member of a PyTorch archive) is in this format.

        Tensor bytes are arbitrary, so only formats with a magic number strong enough not to
        occur by chance say yes; loaders copy these members as bytes and never parse them.
        """
        return False

    @abc.abstractmethod
    def sniff(self, head: bytes, blob: Blob) -> bool:
        """True if the source is in this format. `head` is its first bytes (up to 4 KiB)."""

    @abc.abstractmethod
    def scan(self, ctx: ScanContext) -> None:
        """Report findings on `ctx.blob`; hand nested members to `ctx.scan_child`.

        A handler may refine `ctx.format` (a zip becomes ``pytorch-zip``). It raises
        `LimitExceeded` when a cap is hit; any other exception is reported as unverifiable
        content by the engine.
        """


FolderAnalyser = Callable[[str, str, list[str], FileScan], None]
"""``analyse(folder_on_disk, folder_as_shown, file_names, results)``: looks at a folder as a
whole (a Hugging Face model folder) and reports into `results`."""


_HANDLERS: list[FormatHandler] = []
_RAW_HANDLERS: list[FormatHandler] = []
"""The handlers that override `sniff_raw`, in the same order."""
_FOLDER_ANALYSERS: list[FolderAnalyser] = []
_loaded = False


def register(handler: FormatHandler) -> FormatHandler:
    """Add a format handler (keeps the list sorted by priority)."""
    _HANDLERS.append(handler)
    _HANDLERS.sort(key=lambda h: h.priority)
    _RAW_HANDLERS[:] = [h for h in _HANDLERS if type(h).sniff_raw is not FormatHandler.sniff_raw]
    return handler


def register_folder_analyser(analyser: FolderAnalyser) -> FolderAnalyser:
    """Add a folder analyser."""
    _FOLDER_ANALYSERS.append(analyser)
    return analyser


def handlers(*, raw_data: bool = False) -> Sequence[FormatHandler]:
    """The registered handlers in the order they are asked (a read-only view).

    With `raw_data`, only those that can recognise content inside raw tensor data (the ones
    overriding `FormatHandler.sniff_raw`).
    """
    _load_builtin()
    return _RAW_HANDLERS if raw_data else _HANDLERS


def folder_analysers() -> list[FolderAnalyser]:
    """All registered folder analysers."""
    _load_builtin()
    return list(_FOLDER_ANALYSERS)


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN_FORMAT_MODULES:
            importlib.import_module(module)
