"""Byte-level writers for the containers the corpus hides payloads in.

PyTorch-style zips (and the header tricks real loaders tolerate), tar and 7z archives, `.npy`
headers, safetensors and GGUF files are written here from plain bytes so that malicious samples
need no ML framework to build. Not for: benign samples, which use the real frameworks, nor for
reading any of these formats.
"""

from __future__ import annotations

import gzip as _gzip
import io
import json
import struct
import tarfile
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ZIP_LOCAL_SIGNATURE = b"PK\x03\x04"
_ZIP_CENTRAL_SIGNATURE = b"PK\x01\x02"
_ZIP_END_SIGNATURE = b"PK\x05\x06"
_ZIP_FIXED_DATE = (2024, 1, 1, 0, 0, 0)


def zip_bytes(members: Iterable[tuple[str, bytes]], *, deflate: bool = False) -> bytes:
    """A zip with the members in the order given (stored unless `deflate`); names may repeat."""
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are the point of some samples
        with zipfile.ZipFile(buffer, "w", method) as archive:
            for name, data in members:
                info = zipfile.ZipInfo(name, _ZIP_FIXED_DATE)
                info.compress_type = method
                archive.writestr(info, data)
    return buffer.getvalue()


def torch_zip(
    data_pkl: bytes,
    *,
    folder: str = "archive",
    tensors: Mapping[str, bytes] | None = None,
    before: Iterable[tuple[str, bytes]] = (),
) -> bytes:
    """A zip laid out like `torch.save` output, with `data_pkl` as the pickle.

    `before` adds members ahead of ``data.pkl`` (PyTorch takes the folder name from the first
    member, so they must live in the same folder).
    """
    members = [(f"{folder}/{name}", data) for name, data in before]
    members.append((f"{folder}/data.pkl", data_pkl))
    members.append((f"{folder}/byteorder", b"little"))
    for key, data in (tensors or {}).items():
        members.append((f"{folder}/data/{key}", data))
    members.append((f"{folder}/version", b"3\n"))
    members.append((f"{folder}/.data/version", b"3\n"))
    return zip_bytes(members)


@dataclass(frozen=True)
class ZipEntry:
    """Where one member's records sit inside a zip."""

    name: str
    central_offset: int
    local_offset: int


def zip_entries(data: bytes) -> list[ZipEntry]:
    """The central-directory entries of a zip this module wrote (no zip64, no comment)."""
    end = data.rindex(_ZIP_END_SIGNATURE)
    count, _size, offset = struct.unpack_from("<HII", data, end + 10)
    entries = []
    for _ in range(count):
        if data[offset : offset + 4] != _ZIP_CENTRAL_SIGNATURE:
            raise ValueError(f"no central directory record at {offset}")
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, offset + 28)
        local = struct.unpack_from("<I", data, offset + 42)[0]
        name = data[offset + 46 : offset + 46 + name_len].decode("utf-8")
        entries.append(ZipEntry(name, offset, local))
        offset += 46 + name_len + extra_len + comment_len
    return entries


ZipPatch = Callable[[bytearray, ZipEntry], None]


def patch_zip_member(data: bytes, name: str, patch: ZipPatch) -> bytes:
    """Apply `patch` to the records of the member called `name`."""
    out = bytearray(data)
    matches = [e for e in zip_entries(data) if e.name == name]
    if not matches:
        raise KeyError(f"no member {name!r} in the zip")
    for entry in matches:
        patch(out, entry)
    return bytes(out)


def set_crc(value: int) -> ZipPatch:
    """Write `value` as the CRC-32 in both the local and the central record."""

    def patch(out: bytearray, entry: ZipEntry) -> None:
        struct.pack_into("<I", out, entry.local_offset + 14, value)
        struct.pack_into("<I", out, entry.central_offset + 16, value)

    return patch


def or_local_flags(bits: int) -> ZipPatch:
    """Set general-purpose flag bits in the local header only (the central one is untouched)."""

    def patch(out: bytearray, entry: ZipEntry) -> None:
        at = entry.local_offset + 6
        struct.pack_into("<H", out, at, struct.unpack_from("<H", out, at)[0] | bits)

    return patch


def rename_local(new_name: str) -> ZipPatch:
    """Give the local header a different name of the same length than the central directory."""

    def patch(out: bytearray, entry: ZipEntry) -> None:
        encoded = new_name.encode("utf-8")
        name_len = struct.unpack_from("<H", out, entry.local_offset + 26)[0]
        if len(encoded) != name_len:
            raise ValueError("the replacement name must have the same length")
        start = entry.local_offset + 30
        out[start : start + name_len] = encoded

    return patch


def set_method(method: int) -> ZipPatch:
    """Claim a compression method in both records without recompressing the data."""

    def patch(out: bytearray, entry: ZipEntry) -> None:
        struct.pack_into("<H", out, entry.local_offset + 8, method)
        struct.pack_into("<H", out, entry.central_offset + 10, method)

    return patch


def tar_bytes(members: Iterable[tuple[str, bytes]], *, gzip: bool = False) -> bytes:
    """A tar (optionally gzip-compressed) with fixed metadata, so builds are reproducible."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_704_067_200
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return _gzip.compress(buffer.getvalue(), mtime=0) if gzip else buffer.getvalue()


def write_7z(path: Path, members: Iterable[tuple[str, bytes]]) -> None:
    """A 7z archive (LZMA2) holding the members."""
    import py7zr

    with py7zr.SevenZipFile(path, "w") as archive:
        for name, data in members:
            archive.writestr(data, name)


def npy_bytes(descr: str, shape: tuple[int, ...], body: bytes, *, version: int = 1) -> bytes:
    """A `.npy` file (format 1.0, 2.0 or 3.0): magic, padded header dict, then `body`."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    length_format = "<H" if version == 1 else "<I"
    prefix_len = 8 + struct.calcsize(length_format)
    # The header, with magic, version and length, is padded to a multiple of 64 bytes.
    padded = header + " " * ((64 - (prefix_len + len(header) + 1) % 64) % 64) + "\n"
    encoded = padded.encode("utf-8" if version == 3 else "latin-1")
    magic = b"\x93NUMPY" + bytes([version, 0])
    return magic + struct.pack(length_format, len(encoded)) + encoded + body


def safetensors_bytes(header: Mapping[str, Any], data: bytes) -> bytes:
    """A safetensors file from an explicit header (tensor entries name their own offsets)."""
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * ((8 - len(encoded) % 8) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + data


_GGUF_TYPE_UINT32 = 4
_GGUF_TYPE_STRING = 8
_GGUF_ALIGNMENT = 32


def gguf_bytes(metadata: Mapping[str, str | int]) -> bytes:
    """A GGUF v3 file holding only metadata (no tensors)."""
    out = bytearray(b"GGUF")
    out += struct.pack("<IQQ", 3, 0, len(metadata))
    for key, value in metadata.items():
        out += _gguf_string(key)
        if isinstance(value, str):
            out += struct.pack("<I", _GGUF_TYPE_STRING) + _gguf_string(value)
        else:
            out += struct.pack("<II", _GGUF_TYPE_UINT32, value)
    out += b"\x00" * ((_GGUF_ALIGNMENT - len(out) % _GGUF_ALIGNMENT) % _GGUF_ALIGNMENT)
    return bytes(out)


def _gguf_string(text: str) -> bytes:
    encoded = text.encode("utf-8")
    return struct.pack("<Q", len(encoded)) + encoded
