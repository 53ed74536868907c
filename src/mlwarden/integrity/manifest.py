"""Manifests: the digest of every file (or shard) of a model, in OpenSSF model-signing's layout.

A manifest is what a signature covers. Its resources are named exactly as the `model-signing`
package names them (``sub/weights.bin`` for whole files, ``sub/weights.bin:0:1000000000`` for
shards, ``.`` for a model that is a single file) and carry the same algorithm names
(``sha256``, ``blake2b``, ``sha256-sharded-1000000000``), so a manifest computed here equals the
one `model-signing` computes for the same folder and settings. Hashing streams every file in fixed
chunks on a thread pool (OpenSSL's SHA-256 releases the GIL, so files hash on all cores at once),
never follows a link out of the model, never opens a FIFO or device, and fails loudly when the
folder changes while it is read. Not for: signing (`signing`) or comparing (`diff`).
"""

from __future__ import annotations

import concurrent.futures
import fnmatch
import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from mlwarden.errors import IntegrityError, UsageError

GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
"""Paths model-signing leaves out of a model by default (version-control metadata)."""

DEFAULT_SHARD_BYTES = 1_000_000_000
"""model-signing's default shard size for the ``shards`` method."""

CHUNK_BYTES = 1024 * 1024
"""Bytes read per system call while hashing: large enough that the hash, not Python, is the cost,
small enough to stay in the CPU cache between the copy and the hash (benchmarks/integrity)."""

METHODS = ("files", "shards")
"""Serialization methods of the model-signing predicate v1.0."""

ProgressFn = Callable[[str, int, int], None]


class _Hasher(Protocol):
    def update(self, data: memoryview, /) -> object: ...

    def hexdigest(self) -> str: ...


def _blake3() -> _Hasher:
    try:
        import blake3  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise UsageError("hash type blake3 needs the blake3 package: pip install blake3") from None
    hasher: _Hasher = blake3.blake3()
    return hasher


HASH_TYPES: dict[str, tuple[str, Callable[[], _Hasher]]] = {
    "sha256": ("sha256", hashlib.sha256),
    "blake2": ("blake2b", hashlib.blake2b),
    "blake3": ("blake3", _blake3),
}
"""Predicate ``hash_type`` -> (resource algorithm name, hasher factory), as model-signing has it."""


@dataclass(frozen=True)
class Serialization:
    """How a model became a manifest; recorded in the signature so verifiers can redo it."""

    method: str = "files"
    """``files`` (one digest per file) or ``shards`` (one digest per `shard_size` bytes)."""
    hash_type: str = "sha256"
    """``sha256`` (default), ``blake2`` or ``blake3``."""
    allow_symlinks: bool = False
    """Whether links inside the model are hashed (as the file they point to) or refused."""
    ignore_paths: tuple[str, ...] = ()
    """Paths relative to the model left out of the manifest (a folder covers all it holds)."""
    shard_size: int | None = None
    """Bytes per shard (``shards`` method only)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"unknown method {self.method!r}; expected one of: files, shards")
        if self.hash_type not in HASH_TYPES:
            raise UsageError(
                f"unknown hash type {self.hash_type!r}; expected one of: {', '.join(HASH_TYPES)}"
            )
        if self.method == "shards" and (self.shard_size is None or self.shard_size <= 0):
            raise UsageError("the shards method needs a positive shard_size (bytes)")

    @property
    def algorithm(self) -> str:
        """The algorithm name every resource of this manifest carries."""
        name = HASH_TYPES[self.hash_type][0]
        if self.method == "shards" and self.hash_type != "blake3":
            return f"{name}-sharded-{self.shard_size}"
        return name

    def as_predicate(self) -> dict[str, Any]:
        """The ``serialization`` object of the model-signing v1.0 predicate."""
        out: dict[str, Any] = {
            "method": self.method,
            "hash_type": self.hash_type,
            "allow_symlinks": self.allow_symlinks,
        }
        if self.method == "shards":
            out["shard_size"] = self.shard_size
        if self.ignore_paths:
            out["ignore_paths"] = list(self.ignore_paths)
        return out

    @classmethod
    def from_predicate(cls, data: Mapping[str, Any]) -> Serialization:
        """Read a predicate's ``serialization`` object; `ValueError` when it is malformed."""
        method = data.get("method")
        hash_type = data.get("hash_type")
        allow = data.get("allow_symlinks", False)
        ignore = data.get("ignore_paths", [])
        shard = data.get("shard_size")
        if hash_type == "blake2b":
            hash_type = "blake2"  # model-signing records the digest's name, not its option
        if isinstance(shard, float) and shard.is_integer():
            shard = int(shard)  # model-signing's bundles store JSON numbers as floats (1000.0)
        if not isinstance(method, str) or not isinstance(hash_type, str):
            raise ValueError("serialization needs string 'method' and 'hash_type'")
        if not isinstance(allow, bool):
            raise ValueError("serialization 'allow_symlinks' must be true or false")
        if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
            raise ValueError("serialization 'ignore_paths' must be a list of strings")
        if shard is not None and (not isinstance(shard, int) or isinstance(shard, bool)):
            raise ValueError("serialization 'shard_size' must be an integer")
        if hash_type == "blake3" and method == "shards":
            method, shard = "files", None  # model-signing never shards blake3
        try:
            return cls(method, hash_type, allow, tuple(ignore), shard)
        except UsageError as exc:
            raise ValueError(str(exc)) from None


@dataclass(frozen=True)
class Resource:
    """One hashed object: a whole file or one shard of it."""

    name: str
    """``path`` relative to the model (POSIX), or ``path:start:end`` for a shard."""
    algorithm: str
    digest: str
    """Lower-case hex."""

    @property
    def path(self) -> str:
        """The file this resource belongs to."""
        if ":" in self.name and self.algorithm.partition("-sharded-")[1]:
            return self.name.rsplit(":", 2)[0]
        return self.name


@dataclass(frozen=True)
class Manifest:
    """Every resource of a model with its digest, and how they were computed."""

    model_name: str
    """Informative only (the folder's or file's name); renaming the model keeps it valid."""
    resources: tuple[Resource, ...]
    serialization: Serialization
    total_bytes: int = 0
    """Bytes hashed to build this manifest (0 when read from a signature)."""

    def root_digest(self) -> str:
        """SHA-256 over the resources' raw digests in order: the statement subject's digest."""
        hasher = hashlib.sha256()
        for resource in self.resources:
            hasher.update(bytes.fromhex(resource.digest))
        return hasher.hexdigest()

    def by_file(self) -> dict[str, tuple[tuple[str, str, str], ...]]:
        """File path -> its resources as (name, algorithm, digest), in order."""
        files: dict[str, list[tuple[str, str, str]]] = {}
        for resource in self.resources:
            files.setdefault(resource.path, []).append(
                (resource.name, resource.algorithm, resource.digest)
            )
        return {path: tuple(items) for path, items in files.items()}


@dataclass
class _Entry:
    name: str
    """Path relative to the model, POSIX."""
    disk: str
    """What is opened (the link's target for an allowed symlink)."""
    size: int
    mtime_ns: int
    inode: int


@dataclass
class _Plan:
    entries: list[_Entry] = field(default_factory=list)


def hash_model(
    model: str | os.PathLike[str],
    serialization: Serialization | None = None,
    *,
    only: Iterable[str] | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> Manifest:
    """Hash a model file or folder into a `Manifest`.

    `serialization`: method, hash type, symlink policy and ignored paths (default: whole files,
    SHA-256, links refused, nothing ignored; add `GIT_PATHS` yourself or use
    `default_serialization`). `only`: hash just these relative paths (model-signing's
    "ignore unsigned files"). `workers`: hashing threads (default: CPU count). `progress` is called
    as ``progress("hashing", bytes_done, bytes_total)``. Raises `IntegrityError` when the model
    holds a refused link, a special file, an unreadable file, or changes while it is read.
    """
    serialization = serialization or Serialization()
    root = Path(model)
    if not os.path.lexists(root):
        raise UsageError(f"{root}: no such file or directory")
    plan = _plan(root, serialization, only)
    jobs = _jobs(plan, serialization)
    total = sum(e.size for e in plan.entries)
    digests = _run(jobs, serialization, workers, progress, total)
    _check_unchanged(root, serialization, only, plan)
    resources = sorted(
        (Resource(name, serialization.algorithm, digest) for name, digest in digests.items()),
        key=_resource_order,
    )
    return Manifest(_model_name(root), tuple(resources), serialization, total)


def default_serialization(
    *,
    method: str = "files",
    hash_type: str = "sha256",
    allow_symlinks: bool = False,
    ignore: Sequence[str] = (),
    ignore_git: bool = True,
    shard_size: int = DEFAULT_SHARD_BYTES,
    model: str | os.PathLike[str] | None = None,
) -> Serialization:
    """The serialization `mlwarden sign` uses: git metadata ignored, globs expanded to paths.

    `ignore` holds paths relative to the model or glob patterns (``*.log``, ``logs/**``); patterns
    are expanded against `model` to the concrete paths they match, because the signature records
    paths (model-signing treats them literally) and a verifier must leave out exactly those.
    """
    paths: list[str] = list(GIT_PATHS) if ignore_git else []
    for item in ignore:
        if any(ch in item for ch in "*?["):
            if model is None:
                raise UsageError(f"ignore pattern {item!r} needs the model path to expand")
            paths.extend(_expand_pattern(Path(model), item))
        else:
            paths.append(_clean_relative(item))
    return Serialization(
        method=method,
        hash_type=hash_type,
        allow_symlinks=allow_symlinks,
        ignore_paths=tuple(dict.fromkeys(paths)),
        shard_size=shard_size if method == "shards" else None,
    )


def _clean_relative(item: str) -> str:
    path = PurePosixPath(item.replace(os.sep, "/"))
    if path.is_absolute() or ".." in path.parts:
        raise UsageError(f"ignored path {item!r} must be relative to the model and stay inside it")
    if not path.parts:  # "." or "": a signature over nothing would verify any folder
        raise UsageError(f"ignored path {item!r} would leave the whole model unsigned")
    return str(path)


def _expand_pattern(model: Path, pattern: str) -> list[str]:
    if not model.is_dir():
        return []
    matched = []
    for folder, dirs, files in os.walk(model, followlinks=False):
        rel_folder = os.path.relpath(folder, model)
        for name in [*dirs, *files]:
            rel = name if rel_folder == "." else f"{rel_folder}/{name}".replace(os.sep, "/")
            if fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase(name, pattern):
                matched.append(rel)
    return sorted(matched)


def _model_name(root: Path) -> str:
    name = root.name
    if not name or name == "..":
        name = root.resolve().name
    return name


def _is_ignored(rel: PurePosixPath, ignored: Sequence[PurePosixPath]) -> bool:
    return any(rel == ig or rel.is_relative_to(ig) for ig in ignored)


def _plan(root: Path, serialization: Serialization, only: Iterable[str] | None) -> _Plan:
    plan = _Plan()
    if not root.is_dir() or root.is_symlink():
        plan.entries.append(_entry(root, ".", serialization, root_real=None))
        return plan
    root_real = os.path.realpath(root)
    ignored = [PurePosixPath(p) for p in serialization.ignore_paths]
    if only is not None:
        for name in sorted(set(only)):
            rel = PurePosixPath(name)
            if rel.is_absolute() or ".." in rel.parts:
                raise IntegrityError(f"signed path {name!r} leaves the model folder")
            disk = root.joinpath(*rel.parts)
            if not os.path.lexists(disk):
                continue  # reported as removed by the comparison
            plan.entries.append(_entry(disk, str(rel), serialization, root_real))
        return plan
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                items = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            raise IntegrityError(f"cannot list {folder}: {exc.strerror or exc}") from None
        subdirs = []
        for item in items:
            rel = PurePosixPath(Path(item.path).relative_to(root).as_posix())
            if _is_ignored(rel, ignored):
                continue
            if item.is_dir(follow_symlinks=False):
                subdirs.append(Path(item.path))
            else:
                plan.entries.append(_entry(Path(item.path), str(rel), serialization, root_real))
        stack.extend(reversed(subdirs))
    return plan


def _entry(disk: Path, name: str, serialization: Serialization, root_real: str | None) -> _Entry:
    try:
        info = os.lstat(disk)
    except OSError as exc:
        raise IntegrityError(f"cannot read {disk}: {exc.strerror or exc}") from None
    target = str(disk)
    if stat.S_ISLNK(info.st_mode):
        if not serialization.allow_symlinks:
            raise IntegrityError(
                f"{disk} is a symbolic link; links are refused unless allowed "
                "(--allow-symlinks), because what they point to can change without the model "
                "changing"
            )
        target = os.path.realpath(disk)
        if root_real is not None and not (
            target == root_real or target.startswith(root_real + os.sep)
        ):
            raise IntegrityError(
                f"{disk} links outside the model ({target}); such a link is never hashed, "
                "since whatever it points to is not part of what was signed"
            )
        try:
            info = os.stat(target)
        except OSError as exc:
            raise IntegrityError(f"{disk}: broken link ({exc.strerror or exc})") from None
        if stat.S_ISDIR(info.st_mode):
            raise IntegrityError(f"{disk} links to a folder; only links to files are supported")
    if not stat.S_ISREG(info.st_mode):
        raise IntegrityError(
            f"{disk} is not a regular file (FIFO, socket or device); a model holds only files"
        )
    if not os.access(target, os.R_OK):
        raise IntegrityError(f"cannot read {disk}: permission denied")
    return _Entry(name, target, info.st_size, info.st_mtime_ns, info.st_ino)


@dataclass(frozen=True)
class _Job:
    entry: _Entry
    name: str
    start: int
    end: int


def _jobs(plan: _Plan, serialization: Serialization) -> list[_Job]:
    jobs: list[_Job] = []
    shard = serialization.shard_size
    for entry in plan.entries:
        if serialization.method == "files" or serialization.hash_type == "blake3" or not shard:
            jobs.append(_Job(entry, entry.name, 0, entry.size))
            continue
        for start in range(0, entry.size, shard):
            end = min(start + shard, entry.size)
            jobs.append(_Job(entry, f"{entry.name}:{start}:{end}", start, end))
    jobs.sort(key=lambda j: j.end - j.start, reverse=True)  # big first: threads finish together
    return jobs


def _run(
    jobs: list[_Job],
    serialization: Serialization,
    workers: int | None,
    progress: ProgressFn | None,
    total: int,
) -> dict[str, str]:
    factory = HASH_TYPES[serialization.hash_type][1]
    factory()  # a missing optional hasher fails before any thread starts
    count = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    done = 0
    digests: dict[str, str] = {}
    if progress:
        progress("hashing", 0, total)
    with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
        futures = {pool.submit(_hash_range, job, factory): job for job in jobs}
        try:
            for future in concurrent.futures.as_completed(futures):
                job = futures[future]
                digests[job.name] = future.result()
                done += job.end - job.start
                if progress:
                    progress("hashing", done, total)
        except BaseException:
            for pending in futures:
                pending.cancel()
            raise
    return digests


def _hash_range(job: _Job, factory: Callable[[], _Hasher]) -> str:
    hasher = factory()
    buffer = bytearray(min(CHUNK_BYTES, max(job.end - job.start, 1)))
    view = memoryview(buffer)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(job.entry.disk, flags)
    except OSError as exc:
        raise IntegrityError(f"cannot open {job.entry.name}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_ino != job.entry.inode:
            raise IntegrityError(f"{job.entry.name} was replaced while the model was hashed")
        remaining = job.end - job.start
        offset = job.start
        while remaining > 0:
            want = min(remaining, len(buffer))
            got = os.preadv(fd, [view[:want]], offset) if want else 0
            if got == 0:
                raise IntegrityError(
                    f"{job.entry.name} shrank while the model was hashed "
                    f"(expected {job.entry.size} bytes)"
                )
            hasher.update(view[:got])
            remaining -= got
            offset += got
        after = os.fstat(fd)
    except OSError as exc:
        raise IntegrityError(f"cannot read {job.entry.name}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if after.st_size != job.entry.size or after.st_mtime_ns != job.entry.mtime_ns:
        raise IntegrityError(f"{job.entry.name} changed while the model was hashed")
    return hasher.hexdigest()


def _check_unchanged(
    root: Path, serialization: Serialization, only: Iterable[str] | None, before: _Plan
) -> None:
    """Walk again after hashing: a file added, removed or rewritten meanwhile is an error."""
    again = _plan(root, serialization, only)
    old = {(e.name, e.size, e.mtime_ns, e.inode) for e in before.entries}
    new = {(e.name, e.size, e.mtime_ns, e.inode) for e in again.entries}
    if old != new:
        changed = sorted({item[0] for item in old ^ new})
        raise IntegrityError(
            "the model changed while it was hashed: "
            + ", ".join(changed[:10])
            + (" ..." if len(changed) > 10 else "")
        )


def _resource_order(resource: Resource) -> tuple[tuple[str, ...], int, int]:
    """model-signing's order: by path components, then shard offsets."""
    name = resource.name
    if resource.algorithm.partition("-sharded-")[1]:
        path, start, end = name.rsplit(":", 2)
        return PurePosixPath(path).parts, int(start), int(end)
    return PurePosixPath(name).parts, 0, 0
