"""Bad input never yields a wrong "verified": a model that changes while it is hashed, files that
cannot be read, FIFOs, links out of the model, a huge file. Each gives an `IntegrityError` (when
hashing or signing) or an ``unreadable`` problem (when verifying), fast and without hanging.
"""

from __future__ import annotations

import errno
import os
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlwarden.errors import IntegrityError, UsageError
from mlwarden.integrity import hash_model, manifest, sign, verify
from mlwarden.integrity.manifest import default_serialization
from tests.integrity._builders import KeyPair, found

HUGE_FILE_GB = int(os.environ.get("MLWARDEN_TEST_HUGE_GB", "4"))
"""Size of the sparse file in the slow test: 4 GB takes about 8 s on 2 cores, 10 GB 15 to 36 s."""

MAX_HASHING_HEAP_BYTES = 64 * 1024 * 1024
"""Python heap allowed while hashing a file of any size (two 8 MiB read buffers and change)."""

HANG_LIMIT_S = 10.0


def _verify(model: Path, keys: dict[str, KeyPair], **options: Any) -> Any:
    return verify(model, public_key=keys["p256"].public, **options)


def _unreadable(result: Any, *fragments: str) -> None:
    assert not result.ok
    assert [p.kind for p in result.problems] == ["unreadable"], result.problems
    for fragment in fragments:
        assert fragment in result.problems[0].message


def _in_time(call: Callable[[], Any]) -> Any:
    """Run `call` in a thread; fail (instead of hanging the suite) if it takes too long."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # re-raised in the test thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(HANG_LIMIT_S)
    assert not worker.is_alive(), f"still running after {HANG_LIMIT_S} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# -- the model changes while it is hashed -------------------------------------------------------


@pytest.fixture
def while_hashing(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[Callable[[Path], None]], None]]:
    """Register an action run once, just before the first file or shard is read."""
    actions: list[Callable[[Path], None]] = []
    original = manifest._hash_range
    lock = threading.Lock()

    def hash_range(job: Any, factory: Any) -> str:
        with lock:
            action = actions.pop() if actions else None
        if action is not None:
            action(Path(job.entry.disk))
        return original(job, factory)

    monkeypatch.setattr(manifest, "_hash_range", hash_range)
    yield actions.append
    assert not actions, "the action never ran"


def _append(path: Path) -> None:
    with path.open("ab") as handle:
        handle.write(b"more")


def _truncate(path: Path) -> None:
    os.truncate(path, 1)


def _replace(path: Path) -> None:
    twin = path.with_name(path.name + ".new")
    twin.write_bytes(path.read_bytes())
    os.utime(twin, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))
    os.replace(twin, path)  # same name, content and times; another inode


def _replace_with_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _add_sibling(path: Path) -> None:
    (path.parent / "appeared.bin").write_bytes(b"new")


def _remove_other(path: Path) -> None:
    for other in sorted(path.parent.iterdir()):
        if other != path and other.is_file() and other.name != "model.sig":
            other.unlink()
            return


CHANGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "appended": (_append, "changed while"),
    "truncated": (_truncate, "shrank"),
    "replaced": (_replace, "replaced while"),
    "replaced by a FIFO": (_replace_with_fifo, "replaced while"),
    "file added": (_add_sibling, "the model changed while it was hashed"),
    "file removed": (_remove_other, "config.json"),  # before it was read: cannot open
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_change_during_hashing_is_an_error(
    model: Path, while_hashing: Callable[[Callable[[Path], None]], None], change: str
) -> None:
    action, says = CHANGES[change]
    while_hashing(action)
    with pytest.raises(IntegrityError, match=says):
        _in_time(lambda: hash_model(model, workers=1))


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_change_during_verification_never_verifies(
    model: Path,
    keys: dict[str, KeyPair],
    while_hashing: Callable[[Callable[[Path], None]], None],
    change: str,
) -> None:
    sign(model, private_key=keys["p256"].private)
    action, says = CHANGES[change]
    while_hashing(action)
    _unreadable(_in_time(lambda: _verify(model, keys, workers=1)), says)


def test_change_during_signing_writes_no_signature(
    model: Path, keys: dict[str, KeyPair], while_hashing: Callable[[Callable[[Path], None]], None]
) -> None:
    while_hashing(_append)
    with pytest.raises(IntegrityError, match="changed while"):
        sign(model, private_key=keys["p256"].private)
    assert not (model / "model.sig").exists()
    assert [p.name for p in model.iterdir() if p.name.startswith(".model.sig")] == []


def test_writer_thread_appending_during_verification(model: Path, keys: dict[str, KeyPair]) -> None:
    """A real concurrent writer: it starts once hashing has begun and keeps appending."""
    big = model / "big.bin"
    big.write_bytes(os.urandom(16 * 1024 * 1024))
    sign(model, private_key=keys["p256"].private)
    started, wrote, stop = threading.Event(), threading.Event(), threading.Event()

    def writer() -> None:
        started.wait(HANG_LIMIT_S)
        with big.open("ab") as handle:
            while not stop.is_set():
                handle.write(os.urandom(4096))
                handle.flush()
                wrote.set()
                time.sleep(0.001)

    def progress(_stage: str, done: int, _total: int) -> None:
        if done == 0:
            started.set()
            wrote.wait(HANG_LIMIT_S)  # hashing goes on only once the file is growing

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        result = _in_time(lambda: _verify(model, keys, progress=progress))
    finally:
        stop.set()
        thread.join(HANG_LIMIT_S)
    _unreadable(result, "big.bin")


# -- files that cannot be read ------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(model: Path, keys: dict[str, KeyPair]) -> None:
    sign(model, private_key=keys["p256"].private)
    (model / "config.json").chmod(0)
    try:
        _unreadable(_verify(model, keys), "config.json", "permission denied")
        with pytest.raises(IntegrityError, match="permission denied"):
            hash_model(model)
    finally:
        (model / "config.json").chmod(0o644)


def test_read_error_while_hashing(
    model: Path, keys: dict[str, KeyPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error in the middle of a file (a failing disk) is unreadable, not a pass."""
    sign(model, private_key=keys["p256"].private)
    real_preadv = os.preadv

    def failing_preadv(fd: int, buffers: Any, offset: int, /) -> int:
        if os.fstat(fd).st_size == 3000:  # weights.bin
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", failing_preadv)
    _unreadable(_verify(model, keys), "weights.bin", os.strerror(errno.EIO))


def test_fifo_in_the_model_does_not_hang(model: Path, keys: dict[str, KeyPair]) -> None:
    sign(model, private_key=keys["p256"].private)
    os.mkfifo(model / "sub" / "pipe")
    _unreadable(_in_time(lambda: _verify(model, keys)), "sub/pipe", "not a regular file")
    with pytest.raises(IntegrityError, match="not a regular file"):
        _in_time(lambda: sign(model, private_key=keys["p256"].private))


def test_allowed_link_to_a_fifo_does_not_hang(model: Path, keys: dict[str, KeyPair]) -> None:
    os.mkfifo(model / "pipe")
    (model / "link").symlink_to("pipe")
    with pytest.raises(IntegrityError, match="not a regular file"):
        _in_time(lambda: hash_model(model, default_serialization(allow_symlinks=True)))


# -- links --------------------------------------------------------------------------------------


@pytest.mark.parametrize("relative", [True, False], ids=["relative", "absolute"])
def test_link_out_of_the_model_is_refused_even_when_links_are_allowed(
    model: Path, keys: dict[str, KeyPair], tmp_path: Path, relative: bool
) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"not part of the model")
    (model / "sub" / "link.bin").symlink_to("../../outside.bin" if relative else outside)
    with pytest.raises(IntegrityError, match="links outside the model"):
        sign(model, private_key=keys["p256"].private, allow_symlinks=True)
    assert not (model / "model.sig").exists()


def test_link_chain_ending_outside_is_refused(
    model: Path, keys: dict[str, KeyPair], tmp_path: Path
) -> None:
    (tmp_path / "outside.bin").write_bytes(b"secret")
    (model / "hop").symlink_to(tmp_path / "outside.bin")
    (model / "sub" / "entry.bin").symlink_to("../hop")
    (model / "hop").unlink()
    (model / "hop").symlink_to("weights.bin")
    sign(model, private_key=keys["p256"].private, allow_symlinks=True)
    (model / "hop").unlink()
    (model / "hop").symlink_to(tmp_path / "outside.bin")
    _unreadable(_verify(model, keys), "links outside the model")


def test_link_to_a_folder_and_broken_link_are_refused(model: Path) -> None:
    allowed = default_serialization(allow_symlinks=True)
    (model / "folder-link").symlink_to("sub")
    with pytest.raises(IntegrityError, match="links to a folder"):
        hash_model(model, allowed)
    (model / "folder-link").unlink()
    (model / "dangling").symlink_to("does-not-exist")
    with pytest.raises(IntegrityError, match="broken link"):
        hash_model(model, allowed)


def test_model_that_is_a_link_is_refused_unless_allowed(model: Path, tmp_path: Path) -> None:
    link = tmp_path / "weights-link.bin"
    link.symlink_to(model / "weights.bin")
    with pytest.raises(IntegrityError, match="symbolic link"):
        hash_model(link)
    assert hash_model(link, default_serialization(allow_symlinks=True)).resources[0].name == "."


# -- odd but valid models ------------------------------------------------------------------------


def test_missing_model_is_a_usage_error(tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    with pytest.raises(UsageError, match="no such file"):
        sign(tmp_path / "nothing", private_key=keys["p256"].private)
    with pytest.raises(UsageError, match="no such file"):
        verify(tmp_path / "nothing", public_key=keys["p256"].public)


def test_verify_without_key_or_roots_is_a_usage_error(
    model: Path, keys: dict[str, KeyPair]
) -> None:
    with pytest.raises(UsageError, match="needs the signer's public key"):
        verify(model)
    with pytest.raises(UsageError, match="give one of"):
        verify(model, public_key=keys["p256"].public, certificate_chain=[model / "x.pem"])


def test_empty_folder_signs_and_verifies(tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    sign(empty, private_key=keys["p256"].private)
    assert _verify(empty, keys).ok
    (empty / "planted.bin").write_bytes(b"x")
    assert found(_verify(empty, keys)) == [("added", "planted.bin")]


def test_file_name_that_is_not_utf8(tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (Path(os.fsdecode(bytes(folder) + b"/\xff\xfe.bin"))).write_bytes(b"weights")
    sign(folder, private_key=keys["p256"].private)
    assert _verify(folder, keys).ok


def test_unknown_serialization_settings_are_usage_errors(
    model: Path, keys: dict[str, KeyPair]
) -> None:
    with pytest.raises(UsageError, match="unknown method"):
        sign(model, private_key=keys["p256"].private, method="tensors")
    with pytest.raises(UsageError, match="unknown hash type"):
        sign(model, private_key=keys["p256"].private, hash_type="md5")
    with pytest.raises(UsageError, match="positive shard_size"):
        sign(model, private_key=keys["p256"].private, method="shards", shard_size=0)
    with pytest.raises(UsageError, match="stay inside"):
        sign(model, private_key=keys["p256"].private, ignore=["../elsewhere"])


# -- a huge file ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_huge_sparse_file_in_shards_with_bounded_memory(
    tmp_path: Path, keys: dict[str, KeyPair]
) -> None:
    folder = tmp_path / "huge"
    folder.mkdir()
    huge = folder / "weights.bin"
    size = HUGE_FILE_GB * 1024**3
    huge.touch()
    os.truncate(huge, size)  # sparse: no disk used, zero pages when read
    tracemalloc.start()
    try:
        signed = sign(folder, private_key=keys["p256"].private, method="shards", workers=2)
        result = _verify(folder, keys, workers=2)
        _, peak = tracemalloc.get_traced_memory()
        assert signed.manifest.total_bytes == size
        assert len(signed.manifest.resources) == -(-size // manifest.DEFAULT_SHARD_BYTES)
        assert result.ok, result.problems
        assert result.bytes_hashed == size
        assert peak < MAX_HASHING_HEAP_BYTES, f"peak Python heap {peak / 1e6:.0f} MB"
    finally:
        tracemalloc.stop()
        fd = os.open(huge, os.O_RDONLY)
        try:  # give the zero pages back to the other processes on this machine
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def test_file_name_with_a_backslash(tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "back\\slash.bin").write_bytes(b"weights")
    sign(folder, private_key=keys["p256"].private)
    result = _verify(folder, keys)
    assert result.ok, result.problems
