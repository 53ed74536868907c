"""Compare a signed manifest with the model on disk and name every difference.

Files present in both with other digests are *modified*; files only on disk are *added*; files only
in the signature are *removed*; a removed and an added file with identical content are one
*renamed* file. Shards are compared per file, so a one-byte change names its file once. Not for:
hashing (`manifest`) or signatures (`signing`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlwarden.integrity.manifest import Manifest


@dataclass(frozen=True)
class Difference:
    """One way the model on disk differs from what was signed."""

    kind: str
    """``modified``, ``added``, ``removed`` or ``renamed``."""
    path: str
    """The file as it is now (for ``removed``: as it was signed)."""
    renamed_from: str | None = None
    expected: str | None = None
    """The signed digest (first differing resource for sharded files)."""
    actual: str | None = None


def compare(expected: Manifest, actual: Manifest) -> list[Difference]:
    """Every difference between the signed manifest and the one computed now, sorted by path."""
    signed = expected.by_file()
    now = actual.by_file()
    differences: list[Difference] = []
    for path in sorted(signed.keys() & now.keys()):
        if _content(signed[path]) != _content(now[path]):
            old, new = _first_change(signed[path], now[path])
            differences.append(Difference("modified", path, expected=old, actual=new))
    removed = sorted(signed.keys() - now.keys())
    added = sorted(now.keys() - signed.keys())
    added_by_content: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for path in added:
        added_by_content.setdefault(_content(now[path]), []).append(path)
    renamed_to: set[str] = set()
    for path in removed:
        candidates = added_by_content.get(_content(signed[path]), [])
        if candidates:
            new_path = candidates.pop(0)
            renamed_to.add(new_path)
            differences.append(Difference("renamed", new_path, renamed_from=path))
        else:
            differences.append(Difference("removed", path, expected=_digest(signed[path])))
    differences.extend(
        Difference("added", path, actual=_digest(now[path]))
        for path in added
        if path not in renamed_to
    )
    return sorted(differences, key=lambda d: (d.path, d.kind))


def _content(items: tuple[tuple[str, str, str], ...]) -> tuple[tuple[str, str], ...]:
    """What a file is, independent of its name: (shard span, digest) per resource."""
    content = []
    for name, algorithm, digest in items:
        span = ":".join(name.rsplit(":", 2)[1:]) if "-sharded-" in algorithm else ""
        content.append((span, f"{algorithm}:{digest}"))
    return tuple(content)


def _digest(items: tuple[tuple[str, str, str], ...]) -> str:
    return items[0][2] if len(items) == 1 else f"{len(items)} shards"


def _first_change(
    old: tuple[tuple[str, str, str], ...], new: tuple[tuple[str, str, str], ...]
) -> tuple[str, str]:
    for before, after in zip(old, new, strict=False):
        if before != after:
            return before[2], after[2]
    return _digest(old), _digest(new)
