"""Reading a tar archive (`tar.py` recognises it): `tarfile` over the blob, member by member.

Members are read with `tarfile` from headers only: each regular member is handed to the engine
as an in-place region of the archive, so member data is never copied. `tarfile`, and so every
loader built on it, stops at the first invalid header or end-of-archive marker; whatever follows
is scanned too and reported, since other tools (``tar -i``) do read it. Imported only when a tar
header is found, so that `tarfile` stays off the start-up of every scan.
Not for: extracting anything to disk.
"""

from __future__ import annotations

import contextlib
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from mlwarden.findings import Severity
from mlwarden.scan.blob import Blob, SpooledBlob
from mlwarden.scan.context import LimitExceeded, ScanContext
from mlwarden.scan.formats._blobio import open_random_access
from mlwarden.scan.formats.tar import BLOCK_BYTES
from mlwarden.scan.limits import MIB

READ_CHUNK_BYTES = 1 * MIB
TRAILING_MEMBER = "<trailing>"
LEGACY_TORCH_MEMBERS = frozenset({"pickle", "storages", "tensors"})
"""What `torch.load` reads from a legacy (pre-1.6) tar checkpoint."""

_TAR_ERRORS = (tarfile.TarError, EOFError, ValueError, UnicodeError)


@dataclass
class _Pass:
    """Members read by one `tarfile` pass over ``[start, end of blob)``."""

    start: int
    members: list[tarfile.TarInfo] = field(default_factory=list)
    end: int = 0
    """Where the pass stopped, as an offset in the blob."""
    error: str | None = None
    limit_hit: bool = False


def scan_tar(ctx: ScanContext) -> None:
    """Scan every member `tarfile` reads, then whatever follows where it stopped."""
    names: list[str] = []
    for listing, tar, hidden in _passes(ctx):
        names.extend(m.name for m in listing.members)
        ctx.format = _archive_format(names)
        for member in listing.members:
            ctx.check_time()
            if hidden:
                _report_hidden(ctx, listing.start, member)
            _scan_member(ctx, tar, listing.start, member)
        if listing.limit_hit:
            ctx.limit_hit(
                LimitExceeded(
                    "max_members", f"the archive has more than {ctx.limits.max_members} members"
                )
            )
            return


def _passes(ctx: ScanContext) -> Iterator[tuple[_Pass, tarfile.TarFile | None, bool]]:
    """The members `tarfile` reads as a loader would, then those after where it stopped."""
    blob = ctx.blob
    with _open_tar(blob, 0, ignore_zeros=False) as (main, tar):
        _collect(ctx, main, tar)
        yield main, tar, False
    stop_block = blob.read_at(main.end, BLOCK_BYTES)
    stopped_early = main.error is not None or stop_block.strip(b"\x00") != b""
    if stopped_early:
        _report_corrupt(ctx, main)
    resume = main.end if stopped_early else _first_nonzero_block(ctx, blob, main.end)
    if resume is None or resume >= blob.size:
        return
    with _open_tar(blob, resume, ignore_zeros=True) as (rest, tar):
        _collect(ctx, rest, tar)
        if rest.members:
            yield rest, tar, True
    if not rest.members:
        _scan_trailing(ctx, resume)


@contextlib.contextmanager
def _open_tar(
    blob: Blob, start: int, *, ignore_zeros: bool
) -> Iterator[tuple[_Pass, tarfile.TarFile | None]]:
    """`tarfile` over ``[start, end)`` of a blob; None if it rejects the very first header."""
    listing = _Pass(start, end=start)
    source = blob if start == 0 else blob.region(start, blob.size - start)
    with open_random_access(source) as f:
        try:
            tar = tarfile.TarFile(fileobj=f, mode="r", ignore_zeros=ignore_zeros)
        except _TAR_ERRORS as exc:
            listing.error = f"{type(exc).__name__}: {exc}"
            yield listing, None
            return
        with tar:
            yield listing, tar


def _collect(ctx: ScanContext, listing: _Pass, tar: tarfile.TarFile | None) -> None:
    while tar is not None:
        ctx.check_time()
        try:
            member = tar.next()
        except _TAR_ERRORS as exc:
            listing.error = f"{type(exc).__name__}: {exc}"
            break
        if member is None:
            break
        if len(listing.members) >= ctx.limits.max_members:
            listing.limit_hit = True
            break
        listing.members.append(member)
    if tar is not None:
        listing.end = listing.start + tar.offset


def _first_nonzero_block(ctx: ScanContext, blob: Blob, start: int) -> int | None:
    """The first block at or after `start` that is not all zeros (end-of-archive padding)."""
    pos = start
    while pos < blob.size:
        ctx.check_time()
        chunk = blob.read_at(pos, READ_CHUNK_BYTES)
        stripped = chunk.lstrip(b"\x00")
        if stripped:
            first = pos + len(chunk) - len(stripped)
            return first - (first - start) % BLOCK_BYTES
        pos += len(chunk)
    return None


def _scan_member(
    ctx: ScanContext, tar: tarfile.TarFile | None, base: int, member: tarfile.TarInfo
) -> None:
    if _is_traversal(member.name):
        _report_traversal(ctx, base, member)
    if member.issym() or member.islnk():
        _report_link(ctx, base, member)
        return
    if not member.isreg():
        return
    if member.issparse() and tar is not None:
        _scan_sparse(ctx, tar, member)
        return
    data_offset = base + member.offset_data
    available = max(0, ctx.blob.size - data_offset)
    if member.size > available:
        _report_truncated(ctx, base, member, available)
    ctx.scan_child(ctx.blob.region(data_offset, member.size), member.name)


def _scan_sparse(ctx: ScanContext, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    """Sparse members are rebuilt with their holes, which counts as decompression."""
    blob = SpooledBlob()
    try:
        reader = tar.extractfile(member)
        while reader is not None and (chunk := reader.read(READ_CHUNK_BYTES)):
            ctx.check_time()
            ctx.count_decompressed(len(chunk))
            blob.write(chunk)
        ctx.scan_child(blob, member.name)
    finally:
        blob.close()


def _is_traversal(name: str) -> bool:
    return name.startswith("/") or ".." in name.split("/")


def _link_escapes(member: tarfile.TarInfo) -> bool:
    target = member.linkname
    if target.startswith("/"):
        return True
    anchor = posixpath.dirname(member.name) if member.issym() else ""
    resolved = posixpath.normpath(posixpath.join(anchor, target))
    return resolved == ".." or resolved.startswith("../")


def _archive_format(names: list[str]) -> str:
    if set(names) >= LEGACY_TORCH_MEMBERS:
        return "pytorch-legacy-tar"
    return "tar"


# --- Reports ----------------------------------------------------------------------------------

_TAMPERED = "Treat the archive as tampered with; rebuild it from a trusted source."


def _report_traversal(ctx: ScanContext, base: int, member: tarfile.TarInfo) -> None:
    ctx.add(
        "tar.path-traversal",
        Severity.MEDIUM,
        f"Archive member name {member.name!r} leaves the extraction folder",
        "An absolute name or one with '..' writes outside the target folder when the archive "
        "is extracted without a filter.",
        offset=base + member.offset,
        evidence={"member": member.name},
        remediation="Extract only with tarfile's 'data' filter, or not at all.",
    )


def _report_link(ctx: ScanContext, base: int, member: tarfile.TarInfo) -> None:
    kind = "symbolic link" if member.issym() else "hard link"
    escapes = _link_escapes(member)
    ctx.add(
        "tar.link",
        Severity.MEDIUM if escapes else Severity.LOW,
        f"Archive member {member.name!r} is a {kind} to {member.linkname!r}"
        + (", outside the archive" if escapes else ""),
        "A loader that opens this member reads the link's target instead."
        + (
            " The target lies outside the extraction folder and was not scanned."
            if escapes
            else " The target member is scanned under its own name."
        ),
        offset=base + member.offset,
        evidence={"member": member.name, "target": member.linkname, "kind": kind},
        remediation="Replace links with the files themselves." if escapes else "",
    )


def _report_hidden(ctx: ScanContext, base: int, member: tarfile.TarInfo) -> None:
    ctx.add(
        "tar.hidden-member",
        Severity.MEDIUM,
        f"Archive member {member.name!r} lies after the point where tarfile stops reading",
        "It follows an end-of-archive marker or an invalid header. Python's tarfile (and "
        "loaders built on it) never see it; 'tar --ignore-zeros' and other tools do. It was "
        "scanned.",
        offset=base + member.offset,
        evidence={"member": member.name},
        remediation=_TAMPERED,
    )


def _report_corrupt(ctx: ScanContext, listing: _Pass) -> None:
    ctx.add(
        "tar.corrupt",
        Severity.MEDIUM,
        "The tar archive is corrupt",
        f"Reading stopped at offset {listing.end}"
        + (f" ({listing.error})" if listing.error else " at an invalid header")
        + f" after {len(listing.members)} members, which were scanned. What follows was "
        "searched for further members.",
        offset=listing.end,
        evidence={"members_read": len(listing.members), "error": listing.error or ""},
        remediation=_TAMPERED,
    )


def _report_truncated(ctx: ScanContext, base: int, member: tarfile.TarInfo, available: int) -> None:
    ctx.add(
        "tar.truncated-member",
        Severity.MEDIUM,
        f"Archive member {member.name!r} extends past the end of the file",
        f"It declares {member.size} bytes but only {available} remain; those were scanned.",
        offset=base + member.offset,
        evidence={
            "member": member.name,
            "declared_bytes": member.size,
            "available_bytes": available,
        },
        remediation=_TAMPERED,
    )


def _scan_trailing(ctx: ScanContext, offset: int) -> None:
    size = ctx.blob.size - offset
    ctx.add(
        "tar.trailing-data",
        Severity.MEDIUM,
        f"{size} bytes that are not tar members follow the archive",
        "tarfile ignores them; other readers may not. They were scanned on their own.",
        offset=offset,
        evidence={"bytes": size},
        remediation="Find out what the extra bytes are; a clean tar writer does not add them.",
    )
    ctx.scan_child(ctx.blob.region(offset, size), TRAILING_MEMBER)
