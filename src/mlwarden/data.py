"""Read evaluation data (`load_data`) and write adversarial examples (`save_adversarial`).

Data comes as ``.npz`` (inputs and labels under conventional or named keys) or ``.npy`` (inputs,
with labels in a separate file), both recognised by content, or as ``.csv`` / ``.tsv`` (one
sample per row, a label column). Inputs come back float32 and labels int64 class indices;
whatever cannot be used (empty files, NaN, non-numeric cells, non-integer labels, mismatched
lengths) is an `InputError` that says where. NumPy files are always read with
``allow_pickle=False``: data never runs code. Not for: checking data against a model (attacks
do that with `validate_batch` and `validate_labels`) or training data pipelines.
"""

from __future__ import annotations

import csv
import os
import secrets
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlwarden.errors import InputError

if TYPE_CHECKING:
    from mlwarden.attacks.evasion.base import AttackResult

INPUT_KEYS = ("x", "X", "data", "inputs")
"""Keys looked for, in this order, for the inputs in an ``.npz``."""
LABEL_KEYS = ("y", "Y", "labels", "targets")
"""Keys looked for, in this order, for the labels in an ``.npz``."""

_NPY_MAGIC = b"\x93NUMPY"


def load_data(
    path: str | os.PathLike[str],
    *,
    labels: str | os.PathLike[str] | None = None,
    x_key: str | None = None,
    y_key: str | None = None,
    label_column: int | str | None = None,
    limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (float32, ``(n, ...)``) and labels (int64 class indices, ``(n,)``) from a file.

    Args:
        path: an ``.npz``, ``.npy`` or ``.csv`` file.
        labels: a file of labels (``.npy``, or text with one label per line); required for
            ``.npy`` inputs, optional for ``.npz`` (replaces its labels).
        x_key, y_key: ``.npz`` keys of the inputs and labels; by default the first of
            `INPUT_KEYS` and of `LABEL_KEYS` present.
        label_column: CSV label column, by index (negative counts from the end) or by header
            name; the last column by default.
        limit: keep only the first `limit` samples, >= 1.
    """
    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 1):
        raise InputError(f"limit must be a positive number of samples, got {limit}")
    source = _existing_file(path)
    kind = _kind(source)
    if kind == "npz":
        x, y = _read_npz(source, x_key, y_key, labels is not None)
    elif kind == "npy":
        x, y = _read_npy(source), None
    else:
        x, y = _read_csv(source, label_column)
    if y is None:
        if labels is None:
            raise InputError(
                f"{source} holds inputs only; give the labels file (--labels, labels= in Python)"
            )
        y = _read_labels(_existing_file(labels))
    return _checked(x, y, source, limit)


def save_adversarial(path: str | os.PathLike[str], result: AttackResult) -> Path:
    """Write `result` to an ``.npz`` atomically; returns the path written.

    Keys: ``x`` (clean inputs), ``x_adv``, ``y``, ``success``, ``predictions`` (labels at
    ``x_adv``), ``norms`` (perturbation norms under the attack's norm), and ``y_target`` for
    targeted attacks. A temporary file in the same folder is renamed over `path` once complete,
    so `path` is never left half-written.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise InputError(f"folder {target.parent} does not exist; create it first")
    if target.is_dir():
        raise InputError(f"{target} is a folder; give a file name such as {target / 'adv.npz'}")
    arrays: dict[str, Any] = {
        "x": result.x,
        "x_adv": result.x_adv,
        "y": result.y,
        "success": result.success,
        "predictions": result.predictions,
        "norms": result.norms,
    }
    if result.y_target is not None:
        arrays["y_target"] = result.y_target
    # Same folder, so the rename is atomic; opened by name so the umask applies as usual.
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with temporary.open("xb") as out:
            np.savez_compressed(out, **arrays)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


# -- reading -----------------------------------------------------------------------------------


def _existing_file(path: str | os.PathLike[str]) -> Path:
    source = Path(path)
    if not source.is_file():
        raise InputError(f"no data file at {source}")
    if source.stat().st_size == 0:
        raise InputError(f"{source} is empty")
    return source


def _kind(source: Path) -> str:
    if zipfile.is_zipfile(source):
        return "npz"
    if _is_npy(source):
        return "npy"
    if source.suffix.lower() in (".csv", ".txt", ".tsv"):
        return "csv"
    raise InputError(f"{source} is not an .npz, .npy or .csv file; convert the data to one")


def _read_npz(
    source: Path, x_key: str | None, y_key: str | None, labels_given: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        archive = np.load(source, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"cannot read {source} as .npz: {exc}") from None
    with archive:
        keys = list(archive.files)
        available = ", ".join(keys) or "none"
        if x_key is None:
            x_key = next((k for k in INPUT_KEYS if k in keys), None)
            if x_key is None:
                raise InputError(
                    f"{source} has no inputs under {', '.join(INPUT_KEYS)} (keys: {available}); "
                    "name them with x_key= (--x-key)"
                )
        elif x_key not in keys:
            raise InputError(f"{source} has no key {x_key!r} for the inputs; its keys: {available}")
        if y_key is None and not labels_given:
            y_key = next((k for k in LABEL_KEYS if k in keys), None)
            if y_key is None:
                raise InputError(
                    f"{source} has no labels under {', '.join(LABEL_KEYS)} (keys: {available}); "
                    "name them with y_key= (--y-key) or give a labels file"
                )
        elif y_key is not None and y_key not in keys:
            raise InputError(f"{source} has no key {y_key!r} for the labels; its keys: {available}")
        x = _npz_array(archive, x_key, source)
        y = _npz_array(archive, y_key, source) if y_key is not None else None
    return x, y


def _npz_array(archive: Any, key: str, source: Path) -> np.ndarray:
    try:
        return np.asarray(archive[key])
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise InputError(
                f"{source} stores {key!r} as Python objects, which mlwarden never unpickles; "
                "save plain numeric arrays"
            ) from None
        raise InputError(f"cannot read {key!r} from {source}: {exc}") from None


def _read_npy(source: Path) -> np.ndarray:
    try:
        return np.asarray(np.load(source, allow_pickle=False))
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise InputError(
                f"{source} stores Python objects, which mlwarden never unpickles; save a plain "
                "numeric array"
            ) from None
        raise InputError(f"cannot read {source}: {exc}") from None
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc}") from None


def _read_labels(source: Path) -> np.ndarray:
    if _is_npy(source):
        return _read_npy(source)
    rows = _csv_rows(source)
    if any(len(row) != 1 for row in rows):
        raise InputError(f"{source} must hold one label per line")
    values = [row[0].strip() for row in rows]
    first_line = 1
    if values and not _is_number(values[0]):
        values, first_line = values[1:], 2  # a header line
    return np.asarray(
        [_integer_label(v, source, line) for line, v in enumerate(values, start=first_line)],
        dtype=np.int64,
    )


def _is_npy(source: Path) -> bool:
    with source.open("rb") as handle:
        return handle.read(len(_NPY_MAGIC)) == _NPY_MAGIC


def _csv_rows(source: Path) -> list[list[str]]:
    try:
        with source.open(newline="", encoding="utf-8") as handle:
            sample = handle.read(64 * 1024)
            handle.seek(0)
            delimiter = "\t" if "\t" in sample and "," not in sample else ","
            return [row for row in csv.reader(handle, delimiter=delimiter) if any(row)]
    except UnicodeDecodeError:
        raise InputError(f"{source} is not UTF-8 text") from None
    except csv.Error as exc:
        raise InputError(f"{source} is not valid CSV: {exc}") from None


def _read_csv(source: Path, label_column: int | str | None) -> tuple[np.ndarray, np.ndarray]:
    rows = _csv_rows(source)
    if not rows:
        raise InputError(f"{source} has no rows")
    header: list[str] | None = None
    if not all(_is_number(cell) for cell in rows[0]):
        header, rows = [cell.strip() for cell in rows[0]], rows[1:]
    if not rows:
        raise InputError(f"{source} has a header but no samples")
    width = len(header) if header is not None else len(rows[0])
    if width < 2:
        raise InputError(f"{source} has {width} column; expected features and a label column")
    first_line = 2 if header is not None else 1
    for offset, row in enumerate(rows):
        if len(row) != width:
            raise InputError(
                f"{source} line {first_line + offset} has {len(row)} columns; expected {width}"
            )
    label_at = _label_index(label_column, header, width, source)
    names = header or [str(i) for i in range(width)]
    features = np.empty((len(rows), width - 1), dtype=np.float64)
    labels = np.empty(len(rows), dtype=np.int64)
    feature_columns = [c for c in range(width) if c != label_at]
    for offset, row in enumerate(rows):
        line = first_line + offset
        for j, column in enumerate(feature_columns):
            features[offset, j] = _number(row[column], source, line, column, names[column])
        labels[offset] = _integer_label(row[label_at].strip(), source, line, names[label_at])
    return features, labels


def _label_index(
    label_column: int | str | None, header: Sequence[str] | None, width: int, source: Path
) -> int:
    if label_column is None:
        return width - 1
    if isinstance(label_column, str) and not label_column.lstrip("-").isdigit():
        if header is None or label_column not in header:
            shown = ", ".join(header) if header is not None else "the file has no header"
            raise InputError(f"{source} has no column {label_column!r} ({shown})")
        return list(header).index(label_column)
    index = int(label_column)
    if not -width <= index < width:
        raise InputError(f"label column {index} is outside the {width} columns of {source}")
    return index % width


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _number(cell: str, source: Path, line: int, column: int, name: str) -> float:
    try:
        return float(cell)
    except ValueError:
        shown = repr(cell) if cell.strip() else "an empty cell"
        raise InputError(
            f"{source} line {line}, column {column + 1} ({name}): {shown} is not a number"
        ) from None


def _integer_label(cell: str, source: Path, line: int, name: str = "label") -> int:
    try:
        value = float(cell)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value != int(value):
        raise InputError(
            f"{source} line {line} ({name}): label {cell!r} is not an integer class index; "
            "map class names to 0, 1, ... first"
        )
    return int(value)


# -- checking ----------------------------------------------------------------------------------


def _checked(x: Any, y: Any, source: Path, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    inputs = np.asarray(x)
    labels = np.asarray(y)
    if inputs.dtype.kind not in "fiub":
        raise InputError(f"inputs in {source} are {inputs.dtype}, not numbers")
    if inputs.ndim < 2:
        raise InputError(
            f"inputs in {source} have shape {inputs.shape}; expected (n_samples, features...)"
        )
    if len(inputs) == 0:
        raise InputError(f"{source} holds no samples")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise InputError(f"labels have shape {labels.shape}; expected one class index per sample")
    if len(labels) != len(inputs):
        raise InputError(f"{len(inputs)} inputs but {len(labels)} labels in {source}")
    if labels.dtype.kind == "f":
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not whole.all():
            raise InputError(
                f"{int((~whole).sum())} labels in {source} are not integer class indices"
            )
    elif labels.dtype.kind not in "iub":
        raise InputError(
            f"labels in {source} are {labels.dtype}; map class names to integers 0, 1, ... first"
        )
    if limit is not None:
        inputs, labels = inputs[:limit], labels[:limit]
    features = np.ascontiguousarray(inputs, dtype=np.float32)
    bad_rows = int((~np.isfinite(features)).reshape(len(features), -1).any(axis=1).sum())
    if bad_rows:
        raise InputError(
            f"{bad_rows} samples in {source} contain NaN or infinite values; drop or impute them"
        )
    return features, labels.astype(np.int64)
