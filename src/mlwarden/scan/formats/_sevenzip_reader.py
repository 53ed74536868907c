"""The py7zr side of 7z scanning, imported only when a 7z archive is found.

7z archives are read through py7zr into memory (or spooled temporary files), never onto disk.

The nullifAI models (ReversingLabs, 2025) were PyTorch checkpoints packed with 7z so that
zip-only scanners skipped them. Members are listed with their declared sizes first; folders that
would break the ratio or total-size caps are refused before anything is decompressed. py7zr is
given synthetic member names and a writer factory that keeps every member in a `SpooledBlob`,
so no member name ever reaches a path. Checksums are not enforced (7-Zip itself still writes a
member whose CRC fails), so a bad CRC hides nothing.
Not for: writing or extracting archives.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import py7zr
from py7zr.exceptions import PasswordRequired, UnsupportedCompressionMethodError
from py7zr.io import Py7zIO, WriterFactory

from mlwarden.findings import Severity
from mlwarden.scan.blob import SpooledBlob
from mlwarden.scan.context import LimitExceeded, ScanContext
from mlwarden.scan.formats._blobio import open_random_access


@dataclass(frozen=True)
class _Planned:
    """A member to extract: the synthetic name py7zr sees, and its real one."""

    key: str
    name: str
    is_link: bool


class _MemberWriter(Py7zIO):
    """Receives one member's bytes from py7zr under the scan's caps, and has the member scanned
    as soon as it is complete, so that only one member is held at a time."""

    def __init__(self, ctx: ScanContext, member: _Planned) -> None:
        self._ctx = ctx
        self.member = member
        self.blob = SpooledBlob()
        self.finished = False
        self.scanned = False

    def write(self, s: bytes | bytearray) -> int:
        self._ctx.check_time()
        self._ctx.count_decompressed(len(s))
        self.blob.write(bytes(s))
        return len(s)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return self.blob.size

    def close(self) -> None:
        """py7zr's signal that the member is complete."""
        self.finished = True
        self.scan()

    def scan(self) -> None:
        """Scan what was extracted (all of it once finished), then free it."""
        if self.scanned:
            return
        self.scanned = True
        try:
            if self.member.is_link:
                _report_link(self._ctx, self.member.name, self.blob)
            else:
                self._ctx.scan_child(self.blob, self.member.name)
        finally:
            self.blob.close()


class _Writers(WriterFactory):
    def __init__(self, ctx: ScanContext, planned: list[_Planned]) -> None:
        self._ctx = ctx
        self._planned = {p.key: p for p in planned}
        self.by_key: dict[str, _MemberWriter] = {}

    def create(self, filename: str) -> Py7zIO:
        writer = _MemberWriter(self._ctx, self._planned[filename])
        self.by_key[filename] = writer
        return writer

    def scan_partial(self) -> None:
        """Scan members that extraction left incomplete but not empty."""
        for writer in self.by_key.values():
            if writer.blob.size:
                writer.scan()

    def close_all(self) -> None:
        for writer in self.by_key.values():
            writer.blob.close()


def scan_sevenzip(ctx: ScanContext) -> None:
    """Extract every member of the 7z archive in `ctx` into memory and scan it."""
    with open_random_access(ctx.blob) as f:
        try:
            archive = py7zr.SevenZipFile(f, mode="r")
        except PasswordRequired:
            _report_encrypted(ctx, [])
            return
        except Exception as exc:  # py7zr raises many types on hostile headers
            _report_unreadable(ctx, exc)
            return
        with archive:
            if archive.needs_password():
                _report_encrypted(ctx, archive.getnames())
                return
            planned = _plan(ctx, archive)
            _extract_and_scan(ctx, archive, planned)


def _plan(ctx: ScanContext, archive: py7zr.SevenZipFile) -> list[_Planned]:
    """The members to extract, renamed for py7zr; refuses folders that would break a cap."""
    files = list(getattr(archive, "files", None) or [])  # absent when the header lists none
    if len(files) > ctx.limits.max_members:
        ctx.limit_hit(
            LimitExceeded(
                "max_members",
                f"the archive has {len(files)} members, over {ctx.limits.max_members}",
            )
        )
        files = files[: ctx.limits.max_members]
    refused = _refused_folders(ctx, files)
    planned: list[_Planned] = []
    for index, member in enumerate(files):
        name = str(member.filename)
        if _is_traversal(name):
            _report_traversal(ctx, name)
        if member.is_directory or id(member.folder) in refused:
            continue
        key = f"member-{index:06d}"
        properties: dict[str, Any] = member.file_properties()
        properties["filename"] = key
        properties.pop("digest", None)
        if member.folder is not None:
            member.folder.crc = None
        planned.append(_Planned(key, name, bool(member.is_symlink)))
    return planned


def _refused_folders(ctx: ScanContext, files: list[Any]) -> set[int]:
    """Folders (7z's unit of compression) whose declared sizes break the ratio or total caps.
    A solid folder is refused whole: reaching a later member means decompressing the earlier."""
    limits = ctx.limits
    packed: dict[int, int] = defaultdict(int)
    unpacked: dict[int, int] = defaultdict(int)
    names: dict[int, list[str]] = defaultdict(list)
    for member in files:
        if member.folder is None:
            continue
        key = id(member.folder)
        packed[key] += member.compressed or 0
        unpacked[key] += member.uncompressed or 0
        names[key].append(str(member.filename))
    refused: set[int] = set()
    budget = limits.max_decompressed_bytes - ctx.state.decompressed_bytes
    for key, size in unpacked.items():
        ratio_limit = limits.max_ratio * max(packed[key] or ctx.blob.size, 1)
        if size > limits.ratio_grace_bytes and size > ratio_limit:
            refused.add(key)
            _report_bomb(ctx, names[key], size, packed[key])
        elif size > budget:
            refused.add(key)
            ctx.limit_hit(
                LimitExceeded(
                    "max_decompressed_bytes",
                    f"7z members {names[key][:5]} declare {size} bytes, more than the "
                    f"{budget} bytes left under the decompression cap; they were not extracted",
                )
            )
        else:
            budget -= size
    return refused


def _extract_and_scan(
    ctx: ScanContext, archive: py7zr.SevenZipFile, planned: list[_Planned]
) -> None:
    if not planned:
        return
    writers = _Writers(ctx, planned)
    limit: LimitExceeded | None = None
    try:
        archive.extract(targets=[p.key for p in planned], factory=writers)
    except LimitExceeded as exc:
        limit = exc
    except UnsupportedCompressionMethodError as exc:
        _report_unsupported(ctx, exc, _unfinished(planned, writers))
    except Exception as exc:  # corrupt data: scan what came out, report the rest
        _report_corrupt(ctx, exc, _unfinished(planned, writers))
    try:
        writers.scan_partial()
    finally:
        writers.close_all()
    if limit is not None:
        ctx.limit_hit(limit)


def _unfinished(planned: list[_Planned], writers: _Writers) -> list[str]:
    return [
        p.name for p in planned if p.key not in writers.by_key or not writers.by_key[p.key].finished
    ]


def _is_traversal(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    absolute = name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":")
    return absolute or ".." in parts


# --- Reports ----------------------------------------------------------------------------------

_UNTRUSTED = "Treat the archive as untrusted; obtain the model in a safe format (safetensors)."


def _report_encrypted(ctx: ScanContext, names: list[str]) -> None:
    ctx.add(
        "7z.encrypted",
        Severity.HIGH,
        "The 7z archive is encrypted; its content could not be verified",
        "Without the password nothing inside can be scanned.",
        evidence={"members": names[:20], "member_count": len(names)},
        remediation="Scan the decrypted content, or obtain the model unencrypted.",
    )


def _report_unreadable(ctx: ScanContext, exc: Exception) -> None:
    ctx.add(
        "7z.corrupt",
        Severity.HIGH,
        "The 7z archive's headers could not be read; its content was not verified",
        f"py7zr stopped with {type(exc).__name__}: {exc}.",
        evidence={"error": f"{type(exc).__name__}: {exc}"},
        remediation=_UNTRUSTED,
    )


def _report_corrupt(ctx: ScanContext, exc: Exception, unreached: list[str]) -> None:
    ctx.add(
        "7z.corrupt",
        Severity.HIGH,
        "The 7z archive has corrupt data; some members were not verified",
        f"Extraction stopped with {type(exc).__name__}: {exc}. What was extracted before the "
        "error was scanned.",
        evidence={"error": f"{type(exc).__name__}: {exc}", "members_not_verified": unreached},
        remediation=_UNTRUSTED,
    )


def _report_unsupported(ctx: ScanContext, exc: Exception, unreached: list[str]) -> None:
    ctx.add(
        "7z.unsupported-method",
        Severity.HIGH,
        "The 7z archive uses a compression method the scanner cannot read; some members "
        "were not verified",
        f"{exc}",
        evidence={"error": f"{type(exc).__name__}: {exc}", "members_not_verified": unreached},
        remediation="Repack the archive with LZMA2 or as a zip and scan it again.",
    )


def _report_bomb(ctx: ScanContext, names: list[str], declared: int, packed: int) -> None:
    ctx.add(
        "7z.bomb",
        Severity.HIGH,
        f"7z members declare {declared} bytes from {packed or 'an unknown number of'} "
        "compressed bytes; they were not extracted",
        f"That is more than {ctx.limits.max_ratio:g} times the compressed size: a "
        "decompression bomb, or content too large to verify.",
        evidence={"members": names[:20], "declared_bytes": declared, "compressed_bytes": packed},
        remediation="Do not extract this archive. If it is legitimately this compressible, "
        "raise max_ratio in a policy file.",
    )


def _report_traversal(ctx: ScanContext, name: str) -> None:
    ctx.add(
        "7z.path-traversal",
        Severity.MEDIUM,
        f"Archive member name {name!r} leaves the extraction folder",
        "An absolute name or one with '..' writes outside the target folder when extracted "
        "by a tool that follows member names.",
        evidence={"member": name},
        remediation="Do not extract this archive with a tool that follows member names.",
    )


def _report_link(ctx: ScanContext, name: str, blob: SpooledBlob) -> None:
    target = blob.read_all(4096).decode("utf-8", errors="replace")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    escapes = target.startswith("/") or resolved == ".." or resolved.startswith("../")
    ctx.add(
        "7z.link",
        Severity.MEDIUM if escapes else Severity.LOW,
        f"Archive member {name!r} is a symbolic link to {target!r}",
        "A loader that opens this member after extraction reads the link's target instead.",
        evidence={"member": name, "target": target},
        remediation="Replace links with the files themselves." if escapes else "",
    )
