"""Zip archives (PyTorch checkpoints, TorchScript, NumPy .npz, Keras 3 .keras, plain zips).

Read with our own lenient parser, never `zipfile`: scanners that used `zipfile` were bypassed by
bad CRCs, odd flag bits and local/central name mismatches that PyTorch's loader (miniz) shrugs
off (CVE-2025-1944, -1945, -10156), and by one corrupt entry ending the iteration (modelscan#354).
So CRCs and flag bits are ignored, every entry is tried on its own, a corrupt central directory
falls back to walking the local headers, and local headers the directory does not list are
scanned too. Stored members are handed to the engine as in-place regions (tensor bytes are never
read here); compressed members are decompressed under the scan's caps.
Not for: understanding what the members contain (the engine sniffs each one by content).
"""

from __future__ import annotations

import bisect
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from mlwarden.findings import Severity
from mlwarden.scan.blob import Blob
from mlwarden.scan.context import LimitExceeded, ScanContext
from mlwarden.scan.formats import FormatHandler, register
from mlwarden.scan.formats._decompress import (
    BZIP2,
    DEFLATE_RAW,
    ZIP_LZMA,
    ZSTD,
    Codec,
    Outcome,
    decompress,
)
from mlwarden.scan.limits import MIB

LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"
END_SIG = b"PK\x05\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
ZIP64_END_SIG = b"PK\x06\x06"
DESCRIPTOR_SIG = b"PK\x07\x08"

_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_END = struct.Struct("<4sHHHHIIH")
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_END = struct.Struct("<4sQHHIIQQQQ")

END_SEARCH_BYTES = 0xFFFF + _END.size
"""The end record sits within the last 64 KiB (its comment) plus its own size."""
MAX_END_RECORDS = 16
"""End-record signatures examined from the end of a file; more is a crafted file."""
LOCAL_HEADER_READ_BYTES = 1024
"""Bytes read for a local header in one go; names and extras are usually shorter."""
MAX_SEARCH_BYTES = 64 * MIB
"""Bytes searched for signatures in gaps and in members of unknown size, per archive."""
SEARCH_CHUNK_BYTES = 1 * MIB
ZIP64_MARKER_32 = 0xFFFFFFFF
ZIP64_MARKER_16 = 0xFFFF

FLAG_ENCRYPTED = 0x0001
FLAG_DATA_DESCRIPTOR = 0x0008
FLAG_STRONG_ENCRYPTION = 0x0040
FLAG_UTF8 = 0x0800

METHOD_STORED = 0
_CODECS: dict[int, Codec] = {8: DEFLATE_RAW, 12: BZIP2, 14: ZIP_LZMA}
if ZSTD is not None:
    _CODECS[93] = ZSTD  # Python 3.14's zipfile (and so numpy.load) reads zstd members


class _Directory(NamedTuple):
    """Where one end record says the central directory is."""

    end_offset: int
    """Offset of the (ZIP64) end record, which is where the directory must stop."""
    start: int
    """Offset of the central directory in the blob."""
    declared_entries: int
    base: int
    """Bytes before the archive proper (self-extractors, prepended data)."""


class _CentralEntry(NamedTuple):
    raw_name: bytes
    name: str
    flags: int
    method: int
    compressed_size: int
    uncompressed_size: int
    local_offset: int
    """As recorded: relative to the start of the archive proper."""


class _LocalHeader(NamedTuple):
    offset: int
    flags: int
    method: int
    compressed_size: int
    uncompressed_size: int
    raw_name: bytes
    name: str
    data_offset: int


class _Member(NamedTuple):
    """One member to scan: its local header, its directory entry if any, how it was found."""

    header: _LocalHeader
    central: _CentralEntry | None
    found_by: str
    """``directory``, ``hidden`` (a local header the directory does not list) or ``recovered``."""

    @property
    def name(self) -> str:
        return self.central.name if self.central is not None else self.header.name

    @property
    def method(self) -> int:
        return self.central.method if self.central is not None else self.header.method

    @property
    def compressed_size(self) -> int:
        entry = self.central if self.central is not None else self.header
        return entry.compressed_size

    @property
    def uncompressed_size(self) -> int:
        entry = self.central if self.central is not None else self.header
        return entry.uncompressed_size


class _Reader:
    """Random access to the archive's bytes (the blob's own reads: a slice for a small file)."""

    def __init__(self, blob: Blob) -> None:
        self._read_at = blob.read_at
        self.size = blob.size

    def at(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or offset >= self.size:
            return b""
        return self._read_at(offset, min(n, self.size - offset))


class ZipHandler(FormatHandler):
    """Registered twice: early for a zip signature at offset 0, and late for a zip found only
    through an end record in the tail (prepended data, polyglots), so that a tar or HDF5 file
    that merely stores a zip near its end is read as what it starts as."""

    name = "zip"

    def __init__(self, *, found_by_tail: bool) -> None:
        self.found_by_tail = found_by_tail
        self.priority = 55 if found_by_tail else 10

    def sniff_raw(self, head: bytes, blob: Blob) -> bool:
        return not self.found_by_tail and head[:4] in (LOCAL_SIG, END_SIG)

    def sniff(self, head: bytes, blob: Blob) -> bool:
        if not self.found_by_tail:
            return head[:4] in (LOCAL_SIG, END_SIG)
        return bool(_find_directories(_Reader(blob), MAX_END_RECORDS, first_only=True))

    def scan(self, ctx: ScanContext) -> None:
        members = _list_members(ctx, _Reader(ctx.blob))
        ctx.format = _archive_format([m.name for m in members])
        _scan_prepended(ctx, members)
        _report_duplicates(ctx, members)
        budget = _Budget()
        for count, member in enumerate(members):
            if count >= ctx.limits.max_members:
                ctx.limit_hit(
                    LimitExceeded(
                        "max_members", f"the archive has more than {ctx.limits.max_members} members"
                    )
                )
                return
            ctx.check_time()
            _scan_member_safely(ctx, member, budget)


register(ZipHandler(found_by_tail=False))
register(ZipHandler(found_by_tail=True))


# --- Finding the central directory ------------------------------------------------------------


def _find_directories(
    reader: _Reader, max_records: int, *, first_only: bool = False
) -> list[_Directory]:
    """Every central directory an end record in the file's tail points to, last record first."""
    if reader.size < _END.size:
        return []
    tail_start = max(0, reader.size - END_SEARCH_BYTES)
    tail = reader.at(tail_start, reader.size - tail_start)
    found: list[_Directory] = []
    end = len(tail)
    for _ in range(max_records):
        pos = tail.rfind(END_SIG, 0, end)
        if pos < 0:
            break
        end = pos
        directory = _locate_directory(reader, tail_start + pos, tail[pos : pos + _END.size])
        if directory is not None and all(d.start != directory.start for d in found):
            found.append(directory)
            if first_only:
                break
    return found


def _locate_directory(reader: _Reader, end_offset: int, record: bytes) -> _Directory | None:
    if len(record) < _END.size:
        return None
    _, _, _, _, entries, cd_size, cd_offset, _ = _END.unpack(record)
    directory_end = end_offset
    zip64 = _read_zip64_end(reader, end_offset)
    if zip64 is not None:
        directory_end, entries, cd_size, cd_offset = zip64
    # The recorded offset is relative to the archive proper; with data prepended (self-extractors)
    # the directory is found right before its end record instead.
    for start in (cd_offset, directory_end - cd_size):
        if not 0 <= start <= directory_end:
            continue
        if entries == 0 and cd_size == 0:
            return _Directory(directory_end, directory_end, 0, 0)
        if reader.at(start, 4) == CENTRAL_SIG:
            return _Directory(directory_end, start, entries, start - cd_offset)
    return None


def _read_zip64_end(reader: _Reader, end_offset: int) -> tuple[int, int, int, int] | None:
    """(offset, entries, directory size, directory offset) from the ZIP64 end record, if any."""
    locator_offset = end_offset - _ZIP64_LOCATOR.size
    locator = reader.at(locator_offset, _ZIP64_LOCATOR.size)
    if len(locator) < _ZIP64_LOCATOR.size or locator[:4] != ZIP64_LOCATOR_SIG:
        return None
    _, _, recorded_offset, _ = _ZIP64_LOCATOR.unpack(locator)
    for offset in (recorded_offset, locator_offset - _ZIP64_END.size):
        record = reader.at(offset, _ZIP64_END.size)
        if len(record) == _ZIP64_END.size and record[:4] == ZIP64_END_SIG:
            _, _, _, _, _, _, _, entries, cd_size, cd_offset = _ZIP64_END.unpack(record)
            return offset, entries, cd_size, cd_offset
    return None


def _parse_directory(data: bytes, max_entries: int) -> list[_CentralEntry]:
    """Central directory entries from the start of `data` until something else begins."""
    entries: list[_CentralEntry] = []
    pos = 0
    while (
        pos + _CENTRAL.size <= len(data)
        and data[pos : pos + 4] == CENTRAL_SIG
        and len(entries) < max_entries
    ):
        fields = _CENTRAL.unpack_from(data, pos)
        flags, method = fields[3], fields[4]
        csize, usize, name_len, extra_len, comment_len = fields[8:13]
        local_offset = fields[16]
        name_start = pos + _CENTRAL.size
        end = name_start + name_len + extra_len + comment_len
        if end > len(data):
            break
        raw_name = data[name_start : name_start + name_len]
        extra = data[name_start + name_len : name_start + name_len + extra_len]
        usize, csize, local_offset = _apply_zip64_extra(extra, [usize, csize, local_offset])
        entries.append(
            _CentralEntry(
                raw_name, _decode_name(raw_name, flags), flags, method, csize, usize, local_offset
            )
        )
        pos = end
    return entries


def _apply_zip64_extra(extra: bytes, values: list[int]) -> list[int]:
    """Replace the 32-bit fields marked 0xFFFFFFFF with their ZIP64 extra values, in order."""
    if ZIP64_MARKER_32 not in values:
        return values  # nothing to replace: the extra fields are not even parsed
    for header_id, body in _extra_fields(extra):
        if header_id != 0x0001:
            continue
        wide = [v for (v,) in struct.iter_unpack("<Q", body[: len(body) // 8 * 8])]
        for i, value in enumerate(values):
            if value == ZIP64_MARKER_32 and wide:
                values[i] = wide.pop(0)
        break
    return values


def _extra_fields(extra: bytes) -> Iterable[tuple[int, bytes]]:
    pos = 0
    while pos + 4 <= len(extra):
        header_id, size = struct.unpack_from("<HH", extra, pos)
        yield header_id, extra[pos + 4 : pos + 4 + size]
        pos += 4 + size


def _decode_name(raw: bytes, flags: int) -> str:
    # miniz compares raw bytes; the decoding only serves reports and layout recognition.
    if flags & FLAG_UTF8:
        return raw.decode("utf-8", errors="replace")
    return raw.decode("cp437")


# --- Local headers ----------------------------------------------------------------------------


def _read_local(reader: _Reader, offset: int) -> _LocalHeader | None:
    head = reader.at(offset, LOCAL_HEADER_READ_BYTES)
    if len(head) < _LOCAL.size or head[:4] != LOCAL_SIG:
        return None
    _, _, flags, method, _, _, _, csize, usize, name_len, extra_len = _LOCAL.unpack_from(head)
    variable = name_len + extra_len
    if _LOCAL.size + variable > len(head):
        head += reader.at(offset + len(head), _LOCAL.size + variable - len(head))
        if len(head) < _LOCAL.size + variable:
            return None
    raw_name = head[_LOCAL.size : _LOCAL.size + name_len]
    extra = head[_LOCAL.size + name_len : _LOCAL.size + variable]
    usize, csize = _apply_zip64_extra(extra, [usize, csize])
    return _LocalHeader(
        offset,
        flags,
        method,
        csize,
        usize,
        raw_name,
        _decode_name(raw_name, flags),
        offset + _LOCAL.size + variable,
    )


def _local_for(reader: _Reader, entry: _CentralEntry, base: int) -> _LocalHeader | None:
    """The local header of a directory entry, with or without the prepended-data shift."""
    for offset in dict.fromkeys((base + entry.local_offset, entry.local_offset)):
        header = _read_local(reader, offset)
        if header is not None:
            return header
    return None


# --- Listing members --------------------------------------------------------------------------


@dataclass
class _Search:
    """What is left of the per-archive budget for signature searches."""

    remaining: int = MAX_SEARCH_BYTES


def _list_members(ctx: ScanContext, reader: _Reader) -> list[_Member]:
    """Directory members first, then local headers the directories do not list."""
    members: list[_Member] = []
    directories: list[_Directory] = []
    corrupt = False
    for directory in _find_directories(reader, MAX_END_RECORDS):
        if _inside_member_data(directory.end_offset, members):
            continue  # the end record of a zip stored as a member: scanned as that member
        directories.append(directory)
        entries, complete = _read_directory(ctx, reader, directory)
        corrupt = corrupt or not complete
        members.extend(_directory_members(ctx, reader, directory, entries, members))
    if len(directories) > 1:
        _report_multiple_directories(ctx, directories)
    corrupt = corrupt or not directories
    if corrupt:
        _report_corrupt_directory(ctx, directories)
    known = {m.header.offset: m.header.data_offset + m.compressed_size for m in members}
    start = min((max(d.base, 0) for d in directories), default=0)
    stop = min((d.start for d in directories), default=reader.size)
    search = _Search()
    found_by = "recovered" if corrupt else "hidden"
    for header in _walk_local_headers(ctx, reader, start, stop, known, search):
        members.append(_Member(header, None, found_by))
        if found_by == "hidden":
            _report_hidden(ctx, header)
    return members


def _directory_members(
    ctx: ScanContext,
    reader: _Reader,
    directory: _Directory,
    entries: list[_CentralEntry],
    listed: list[_Member],
) -> list[_Member]:
    """The entries of one directory with their local headers, minus those already listed."""
    seen = {(m.header.offset, m.central.raw_name if m.central else b"") for m in listed}
    members: list[_Member] = []
    for entry in entries:
        header = _local_for(reader, entry, directory.base)
        if header is None:
            _report_missing_local(ctx, entry)
        elif (header.offset, entry.raw_name) not in seen:
            seen.add((header.offset, entry.raw_name))
            members.append(_Member(header, entry, "directory"))
    return members


def _inside_member_data(offset: int, members: list[_Member]) -> bool:
    return any(
        m.header.data_offset <= offset < m.header.data_offset + m.compressed_size for m in members
    )


def _read_directory(
    ctx: ScanContext, reader: _Reader, directory: _Directory
) -> tuple[list[_CentralEntry], bool]:
    """The entries of one directory, and whether it held every entry its end record declares."""
    length = directory.end_offset - directory.start
    cap = ctx.limits.max_metadata_bytes
    if length > cap:
        ctx.limit_hit(
            LimitExceeded(
                "max_metadata_bytes", f"the central directory is {length} bytes, over {cap}"
            )
        )
    data = reader.at(directory.start, min(length, cap))
    entries = _parse_directory(data, ctx.limits.max_members + 1)
    declared = directory.declared_entries
    complete = len(entries) >= declared or declared == ZIP64_MARKER_16
    return entries, complete


def _walk_local_headers(
    ctx: ScanContext, reader: _Reader, start: int, stop: int, known: dict[int, int], search: _Search
) -> list[_LocalHeader]:
    """Local headers in ``[start, stop)`` that `known` (header offset -> data end) lacks."""
    found: list[_LocalHeader] = []
    known_offsets = sorted(known)
    pos = start
    while pos < stop and len(found) <= ctx.limits.max_members:
        ctx.check_time()
        if pos in known:
            pos = _next_record(reader, known[pos], known, stop)
            continue
        header = _read_local(reader, pos)
        if header is not None:
            header = _with_resolved_size(reader, header, stop, search)
            found.append(header)
            pos = _next_record(reader, header.data_offset + header.compressed_size, known, stop)
            continue
        index = bisect.bisect_right(known_offsets, pos)
        next_known = min(known_offsets[index], stop) if index < len(known_offsets) else stop
        hit = _search_signatures(reader, pos + 1, next_known, (LOCAL_SIG,), search)
        pos = hit[0] if hit is not None else next_known
    return found


def _next_record(reader: _Reader, data_end: int, known: dict[int, int], stop: int) -> int:
    """Where the next header starts after member data ending at `data_end`: after the data
    descriptor if there is one (16 or 24 bytes with its signature, 12 or 20 without)."""
    if data_end >= stop:
        return data_end
    candidates = (data_end, data_end + 16, data_end + 24, data_end + 12, data_end + 20)
    for candidate in candidates:
        if candidate in known or candidate == stop:
            return candidate
    window = reader.at(data_end, 28)
    for candidate in candidates:
        if window[candidate - data_end : candidate - data_end + 4] in (LOCAL_SIG, CENTRAL_SIG):
            return candidate
    return data_end


def _with_resolved_size(
    reader: _Reader, header: _LocalHeader, stop: int, search: _Search
) -> _LocalHeader:
    """A header written with a data descriptor has no size: find where its data ends."""
    if header.compressed_size or not header.flags & FLAG_DATA_DESCRIPTOR:
        return header
    pos = header.data_offset
    while True:
        hit = _search_signatures(
            reader, pos, stop, (DESCRIPTOR_SIG, LOCAL_SIG, CENTRAL_SIG), search
        )
        if hit is None:
            return header._replace(compressed_size=max(0, stop - header.data_offset))
        offset, sig = hit
        size = offset - header.data_offset
        if sig != DESCRIPTOR_SIG or _descriptor_size(reader, offset) in (size, None):
            return header._replace(compressed_size=size)
        pos = offset + 1


def _descriptor_size(reader: _Reader, offset: int) -> int | None:
    record = reader.at(offset + 8, 4)
    return struct.unpack("<I", record)[0] if len(record) == 4 else None


def _search_signatures(
    reader: _Reader, start: int, stop: int, signatures: Sequence[bytes], search: _Search
) -> tuple[int, bytes] | None:
    """The first of `signatures` in ``[start, stop)``, within the archive's search budget."""
    pos = start
    while pos < stop and search.remaining > 0:
        length = min(SEARCH_CHUNK_BYTES, stop - pos, search.remaining)
        chunk = reader.at(pos, length + 3)
        search.remaining -= length
        hits = [(chunk.find(sig, 0, length + 3), sig) for sig in signatures]
        hits = [(i, sig) for i, sig in hits if 0 <= i < length]
        if hits:
            i, sig = min(hits)
            return pos + i, sig
        pos += length
    return None


# --- Scanning members -------------------------------------------------------------------------


@dataclass
class _Budget:
    """Set once the per-file decompression cap is reached: later compressed members are skipped
    (the limit finding already says the rest was not verified)."""

    exhausted: bool = False


def _scan_member_safely(ctx: ScanContext, member: _Member, budget: _Budget) -> None:
    try:
        _scan_member(ctx, member, budget)
    except LimitExceeded:
        raise
    except Exception as exc:  # one bad entry must never end the iteration over the others
        ctx.add(
            "zip.corrupt-entry",
            Severity.HIGH,
            f"Archive member {member.name!r} could not be read; its content was not verified",
            f"Reading it failed with {type(exc).__name__}: {exc}. Other members were scanned.",
            offset=member.header.offset,
            evidence={"member": member.name, "error": f"{type(exc).__name__}: {exc}"},
            remediation="Treat the archive as untrusted; rebuild it with a standard zip tool.",
        )


def _scan_member(ctx: ScanContext, member: _Member, budget: _Budget) -> None:
    _check_member_headers(ctx, member)
    if member.name.endswith("/") and member.uncompressed_size == 0:
        return
    header = member.header
    available = max(0, ctx.blob.size - header.data_offset)
    if member.compressed_size > available:
        _report_truncated(ctx, member, available)
    data = ctx.blob.region(header.data_offset, member.compressed_size)
    raw_data = ctx.format in TORCH_FORMATS and _is_tensor_storage(member.name)
    if member.method == METHOD_STORED:
        ctx.scan_child(data, member.name, raw_data=raw_data)
        return
    codec = _CODECS.get(member.method)
    if codec is None:
        _report_unsupported_method(ctx, member)
        return
    if budget.exhausted:
        return
    result = decompress(ctx, data, codec)
    try:
        _report_outcome(ctx, member, result.outcome, result.error, result.blob.size)
        ctx.scan_child(result.blob, member.name, raw_data=raw_data)
    finally:
        result.blob.close()
    if result.limit is not None:
        budget.exhausted = True
        ctx.limit_hit(result.limit, offset=header.offset)


def _check_member_headers(ctx: ScanContext, member: _Member) -> None:
    header, entry = member.header, member.central
    if _is_traversal(member.name) or (header.name != member.name and _is_traversal(header.name)):
        ctx.add(
            "zip.path-traversal",
            Severity.MEDIUM,
            f"Archive member name {member.name!r} leaves the extraction folder",
            "An absolute name or one with '..' writes outside the target folder when the "
            "archive is extracted (zip slip).",
            offset=header.offset,
            evidence={"member": member.name, "local_name": header.name},
            remediation="Do not extract this archive with a tool that follows member names.",
        )
    if entry is not None and entry.raw_name != header.raw_name:
        ctx.add(
            "zip.name-mismatch",
            Severity.MEDIUM,
            "Archive member has different names in its local header and the central directory",
            f"The directory calls it {entry.name!r}, its local header {header.name!r}. PyTorch "
            "reads it by the directory name; scanners that compare the two have been bypassed "
            "this way (CVE-2025-1944).",
            offset=header.offset,
            evidence={"member": entry.name, "local_name": header.name},
            remediation="Treat the archive as tampered with; rebuild it from a trusted source.",
        )
    if entry is not None:
        _check_header_agreement(ctx, member, entry)
    flags = header.flags | (entry.flags if entry is not None else 0)
    if flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION):
        ctx.add(
            "zip.encrypted",
            Severity.HIGH,
            f"Archive member {member.name!r} is marked as encrypted; it could not be verified",
            "It was scanned as if unencrypted, which is how a reader that ignores the flag "
            "sees it. If it really is encrypted, its content is unknown.",
            offset=header.offset,
            evidence={"member": member.name, "flags": flags},
            remediation="Scan the decrypted archive, or obtain the model unencrypted.",
        )


def _check_header_agreement(ctx: ScanContext, member: _Member, entry: _CentralEntry) -> None:
    """Method and sizes the local header states (when it states any) match the directory's."""
    header = member.header
    sizes_stated = not header.flags & FLAG_DATA_DESCRIPTOR and (
        header.compressed_size or header.uncompressed_size
    )
    differs = header.method != entry.method or (
        sizes_stated
        and (header.compressed_size, header.uncompressed_size)
        != (entry.compressed_size, entry.uncompressed_size)
    )
    if differs:
        ctx.add(
            "zip.header-mismatch",
            Severity.MEDIUM,
            f"Archive member {member.name!r} has a local header that disagrees with the directory",
            "Readers that trust the local header (streaming unzip) see different bytes than "
            "PyTorch and zipfile, which trust the central directory. This member was scanned "
            "as the central directory describes it.",
            offset=header.offset,
            evidence={
                "member": member.name,
                "local": {
                    "method": header.method,
                    "compressed_size": header.compressed_size,
                    "uncompressed_size": header.uncompressed_size,
                },
                "central": {
                    "method": entry.method,
                    "compressed_size": entry.compressed_size,
                    "uncompressed_size": entry.uncompressed_size,
                },
            },
            remediation="Treat the archive as tampered with; rebuild it from a trusted source.",
        )


def _is_traversal(name: str) -> bool:
    if ".." not in name and name[:1] not in ("/", "\\") and name[1:2] != ":":
        return False  # the common case, without splitting the name
    parts = name.replace("\\", "/").split("/")
    absolute = name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":")
    return absolute or ".." in parts


def _scan_prepended(ctx: ScanContext, members: list[_Member]) -> None:
    """Bytes before the first member are what a loader that ignores the zip sees (a pickle
    followed by a zip is a pickle to `torch.load`), so they are scanned as their own source."""
    if not members:
        return
    start = min(m.header.offset for m in members)
    if start <= 0:
        return
    ctx.add(
        "zip.prepended-data",
        Severity.MEDIUM,
        f"{start} bytes precede the zip archive",
        "Self-extracting archives look like this, and so do polyglot files that are one format "
        "to one loader and a zip to another. The leading bytes were scanned on their own.",
        offset=0,
        evidence={"bytes": start},
        remediation="Make sure the tool that loads this file reads the part that was intended.",
    )
    ctx.scan_child(ctx.blob.region(0, start), "<prepended>")


TORCH_FORMATS = frozenset({"pytorch-zip", "torchscript"})


def _is_tensor_storage(name: str) -> bool:
    """A member torch.load copies as bytes or reads as text, and never unpickles.

    PyTorch unpickles only ``data.pkl`` and ``constants.pkl`` and compiles TorchScript from
    ``code/``; storages (``<archive>/data/<key>``) and the small ``version``, ``byteorder`` and
    ``.data/*`` records are raw.
    """
    parts = name.split("/")
    return not name.endswith(".pkl") and "code" not in parts[1:-1] and len(parts) >= 2


def _archive_format(names: list[str]) -> str:
    """The kind of zip, from its member layout."""
    if any("/code/" in f"/{n}" or n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("data.pkl") for n in names) or (
        any(n == "version" or n.endswith("/version") for n in names)
        and any("/data/" in f"/{n}" for n in names)
    ):
        return "pytorch-zip"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    if "config.json" in names and "metadata.json" in names:
        return "keras"
    return "zip"


# --- Reports ----------------------------------------------------------------------------------

_TAMPERED = "Treat the archive as tampered with; rebuild it from a trusted source."


def _report_outcome(
    ctx: ScanContext, member: _Member, outcome: Outcome, error: str, produced: int
) -> None:
    evidence = {
        "member": member.name,
        "decompressed_bytes": produced,
        "compressed_bytes": member.compressed_size,
    }
    offset = member.header.offset
    if outcome is Outcome.BOMB:
        ctx.add(
            "zip.bomb",
            Severity.HIGH,
            f"Archive member {member.name!r} decompresses beyond the ratio limit",
            f"Decompression stopped after {produced} bytes (more than {ctx.limits.max_ratio:g} "
            "times its compressed size): a decompression bomb, or content too large to verify. "
            "What decompressed before the stop was scanned; the rest was not verified.",
            offset=offset,
            evidence=evidence,
            remediation="Do not load this archive. If the member is legitimately this "
            "compressible, raise max_ratio in a policy file.",
        )
    elif outcome is Outcome.CORRUPT:
        ctx.add(
            "zip.corrupt-member",
            Severity.MEDIUM,
            f"Archive member {member.name!r} has corrupt compressed data",
            f"Decompression failed after {produced} bytes ({error}). Those bytes were "
            "scanned; nothing past the error can be decompressed by any reader.",
            offset=offset,
            evidence={**evidence, "error": error},
            remediation=_TAMPERED,
        )
    elif outcome is Outcome.TRUNCATED and not 0 < member.uncompressed_size <= produced:
        # LZMA members written without an end marker stop at their declared size, unfinished.
        ctx.add(
            "zip.truncated-member",
            Severity.MEDIUM,
            f"Archive member {member.name!r} ends before its compressed stream does",
            f"{produced} bytes decompressed and were scanned.",
            offset=offset,
            evidence=evidence,
            remediation=_TAMPERED,
        )


def _report_truncated(ctx: ScanContext, member: _Member, available: int) -> None:
    ctx.add(
        "zip.truncated-member",
        Severity.MEDIUM,
        f"Archive member {member.name!r} extends past the end of the file",
        f"It declares {member.compressed_size} bytes but only {available} remain; those "
        "were scanned.",
        offset=member.header.offset,
        evidence={
            "member": member.name,
            "declared_bytes": member.compressed_size,
            "available_bytes": available,
        },
        remediation=_TAMPERED,
    )


def _report_unsupported_method(ctx: ScanContext, member: _Member) -> None:
    ctx.add(
        "zip.unsupported-method",
        Severity.HIGH,
        f"Archive member {member.name!r} uses compression method {member.method}, which could "
        "not be verified",
        "The scanner cannot decompress this method (AES encryption is 99, zstd 93 without "
        "zstd bindings installed), so the member's content is unknown.",
        offset=member.header.offset,
        evidence={"member": member.name, "method": member.method},
        remediation="Repack the archive with deflate or no compression and scan it again.",
    )


def _report_missing_local(ctx: ScanContext, entry: _CentralEntry) -> None:
    ctx.add(
        "zip.corrupt-entry",
        Severity.HIGH,
        f"Archive member {entry.name!r} has no local header where the directory points",
        f"The directory places it at offset {entry.local_offset}, where no local header is. "
        "Its content could not be located and was not verified.",
        evidence={"member": entry.name, "local_offset": entry.local_offset},
        remediation=_TAMPERED,
    )


def _report_corrupt_directory(ctx: ScanContext, directories: list[_Directory]) -> None:
    ctx.add(
        "zip.corrupt-directory",
        Severity.HIGH,
        "The zip central directory is missing or corrupt",
        "Members were recovered by walking the local headers from the start of the file. "
        "Readers disagree on such archives, so what a loader sees may differ from what was "
        "scanned.",
        evidence={"directories_found": len(directories)},
        remediation=_TAMPERED,
    )


def _report_multiple_directories(ctx: ScanContext, directories: list[_Directory]) -> None:
    ctx.add(
        "zip.multiple-directories",
        Severity.MEDIUM,
        "The zip file contains several end-of-directory records pointing to different directories",
        "Readers that pick different records see different members. The members of every "
        "directory were scanned.",
        evidence={"directory_offsets": [d.start for d in directories]},
        remediation=_TAMPERED,
    )


def _report_hidden(ctx: ScanContext, header: _LocalHeader) -> None:
    ctx.add(
        "zip.hidden-entry",
        Severity.HIGH,
        f"Archive member {header.name!r} is not listed in the central directory",
        "Its local header sits among the listed members. Readers that walk local headers "
        "(streaming unzip, some scanners) see it, readers that trust the directory do not. "
        "It was scanned.",
        offset=header.offset,
        evidence={"member": header.name},
        remediation=_TAMPERED,
    )


def _report_duplicates(ctx: ScanContext, members: list[_Member]) -> None:
    counts = Counter(m.name for m in members if m.central is not None)
    for name, count in counts.items():
        if count > 1:
            ctx.add(
                "zip.duplicate-name",
                Severity.MEDIUM,
                f"{count} archive members are named {name!r}",
                "Readers differ in which one they load. All of them were scanned.",
                evidence={"member": name, "count": count},
                remediation=_TAMPERED,
            )
