"""Resource limits for hostile input. Every limit hit becomes a finding, never a crash or a hang."""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


@dataclass(frozen=True)
class Limits:
    """Caps applied while scanning one top-level file (and everything nested inside it)."""

    max_depth: int = 10
    """Container nesting depth (a zip in a gzip in a tar is depth 3)."""
    max_decompressed_bytes: int = 4 * GIB
    """Total bytes decompressed from all containers of one top-level file."""
    max_ratio: float = 1100.0
    """Decompressed / compressed size above which a member is a bomb (past the grace size).

    Deflate cannot exceed about 1032:1, so legitimate zero-filled arrays saved with
    ``np.savez_compressed`` pass; bombs built from bzip2, xz or nested layers do not."""
    ratio_grace_bytes: int = 64 * MIB
    """A member may decompress to this many bytes whatever its ratio."""
    max_members: int = 100_000
    """Members read from one archive."""
    max_pickle_bytes: int = 512 * MIB
    """Bytes of one pickle stream held in memory for analysis."""
    max_opcodes: int = 50_000_000
    """Pickle opcodes executed symbolically per stream."""
    max_memo: int = 5_000_000
    """Pickle memo entries per stream."""
    max_pickles_per_stream: int = 64
    """Pickles read one after another from one stream."""
    max_embedded_candidates: int = 4096
    """Places tried as hidden pickles inside data of unknown format."""
    max_metadata_bytes: int = 64 * MIB
    """Bytes of JSON headers, configs and metadata parsed from one file."""
    file_timeout_s: float = 120.0
    """Wall time for one top-level file, nested content included."""
