"""Turn a file's bytes into Python source to parse: a plain module, or a notebook's code cells.

A notebook is read as JSON and only its code cells are kept. IPython syntax (line magics
``%pip``, cell magics ``%%bash``, shell escapes ``!ls``, ``files = !ls``, help queries
``obj?``) is replaced line by line with ``pass`` at the same indentation, so that the cell still
parses and every line keeps its number; the original text of those lines is kept for the rules
that read raw text (secrets on a ``!huggingface-cli login --token ...`` line). Nothing here
parses Python or runs anything. Not for: walking folders (`engine`) or rules (`rules/`).
"""

from __future__ import annotations

import io
import json
import re
import tokenize
from dataclasses import dataclass
from typing import Any

PYTHON_BODY_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug"})
"""Cell magics whose body is Python: only their first line is blanked."""

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_MAGIC_LINE = re.compile(
    r"""^\s*(?:
        [%!]                                   # %magic, !shell
      | [\w.]+\s*=\s*[%!]                      # files = !ls, t = %timeit f()
      | \?                                     # ?obj
      | [\w.\[\]()'"]+\?\??\s*$                # obj?, obj??
    )""",
    re.VERBOSE,
)


class SourceError(Exception):
    """The file cannot be read as Python source or as a notebook; the message says why."""


@dataclass(frozen=True)
class CodeUnit:
    """One piece of Python to audit: a whole module, or one notebook cell."""

    source: str
    """Python text, IPython syntax blanked; line numbers are those of the original."""
    member: str | None = None
    """``cell <n>`` (1-based, counting every cell of the notebook) or None for a module."""
    blanked: tuple[tuple[int, str], ...] = ()
    """(line, original text) of every line replaced because it was IPython syntax."""
    problem: str | None = None
    """Why this unit cannot be audited (a cell whose source is not text), else None."""


def python_source(data: bytes) -> CodeUnit:
    """Decode a module's bytes the way Python would (PEP 263 coding cookie, BOM, UTF-8)."""
    if b"\x00" in data:
        raise SourceError("contains NUL bytes; this is not Python source")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return CodeUnit(data.decode(encoding))
    except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot decode as Python source: {exc}") from None


def notebook_cells(data: bytes) -> list[CodeUnit]:
    """The code cells of a Jupyter notebook (nbformat 3 or 4), IPython syntax blanked.

    A notebook whose kernel language is not Python gives no cells.
    """
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise SourceError(f"not a valid notebook: {_short(exc)}") from None
    if not isinstance(document, dict):
        raise SourceError("not a valid notebook: the top level is not a JSON object")
    if not _is_python(document.get("metadata")):
        return []
    cells = _cell_list(document)
    units = []
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        member = f"cell {number}"
        text = _cell_text(cell.get("source", cell.get("input", "")))
        if text is None:
            units.append(CodeUnit("", member, problem="the cell's source is not text"))
        else:
            units.append(_blank_ipython(text, member))
    return units


def _cell_list(document: dict[str, Any]) -> list[Any]:
    if isinstance(document.get("cells"), list):
        return list(document["cells"])
    worksheets = document.get("worksheets")
    if isinstance(worksheets, list):  # nbformat 3
        return [
            cell
            for sheet in worksheets
            if isinstance(sheet, dict) and isinstance(sheet.get("cells"), list)
            for cell in sheet["cells"]
        ]
    raise SourceError("not a valid notebook: no list of cells")


def _is_python(metadata: Any) -> bool:
    if not isinstance(metadata, dict):
        return True
    for key in ("language_info", "kernelspec"):
        info = metadata.get(key)
        if isinstance(info, dict):
            language = info.get("name" if key == "language_info" else "language")
            if isinstance(language, str) and language.strip():
                return language.strip().lower() == "python"
    return True


def _cell_text(source: Any) -> str | None:
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(part, str) for part in source):
        return "".join(source)
    return None


def _blank_ipython(text: str, member: str) -> CodeUnit:
    lines = _LINE_BREAK.split(text)
    blanked: list[tuple[int, str]] = []
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    whole_cell = False
    if first is not None and lines[first].lstrip().startswith("%%"):
        magic = lines[first].lstrip()[2:].split(maxsplit=1)
        whole_cell = not magic or magic[0] not in PYTHON_BODY_CELL_MAGICS
        blanked.append((first + 1, lines[first]))
        lines[first] = ""
    continuing = False
    for index, line in enumerate(lines):
        if index == first and blanked:
            continue
        if whole_cell or continuing or _MAGIC_LINE.match(line):
            blanked.append((index + 1, line))
            indent = line[: len(line) - len(line.lstrip())]
            lines[index] = "" if whole_cell or continuing else indent + "pass"
            continuing = line.rstrip().endswith("\\")
    blanked.sort()
    return CodeUnit("\n".join(lines), member, tuple(blanked))


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."
