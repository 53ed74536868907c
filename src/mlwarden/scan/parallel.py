"""Run one function over many files in worker processes, results in input order.

Scanning is pure Python, so threads do not help; processes do. Where the platform can fork and
the calling process runs a single thread, workers are forked by hand (`os.fork` and one pair of
pipes each): they start in milliseconds with every module already imported, they already hold
the items and the arguments shared by all calls (the policy, the limits), so a task is two
integers and only results are pickled, and nothing of `multiprocessing` is imported (its import
alone cost as much as scanning 100 small files). Elsewhere (macOS, Windows, or a caller that
already runs threads, where forking could copy a lock held by another thread) joblib's process
pool is used.

A worker that dies (killed, out of memory) never hangs the scan and never stops the other
workers: each item of the chunk it was working on gets the caller's "lost" result (an error
naming the file), never a silent gap. An exception escaping the function becomes a lost result
too. Not for: anything that is not a pure function of its arguments.
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import select
import signal
import struct
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_AUTO_JOBS = 8
"""`auto_jobs` never asks for more workers than this (scans are rarely wider than the disk)."""

_HEADER = struct.Struct("<Q")
"""Length prefix of every message on a pipe."""


def auto_jobs() -> int:
    """Workers to use when the user did not say: the CPUs this process may use (at most 8).

    1 where workers cannot be forked: spawning fresh interpreters costs seconds, which only a
    large scan repays, so that is left to an explicit ``jobs``.
    """
    if not can_fork():
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_AUTO_JOBS))


def can_fork() -> bool:
    """True when forking workers is safe here: a Linux-like platform and a single thread."""
    if sys.platform == "darwin" or not hasattr(os, "fork"):
        return False  # macOS system libraries are not fork-safe; Windows cannot fork
    return threading.active_count() == 1


def map_ordered(
    fn: Callable[..., Result],
    items: Sequence[Item],
    shared: tuple[Any, ...] = (),
    *,
    jobs: int,
    min_items: int,
    lost: Callable[[Item, str], Result],
    chunk: int = 16,
) -> Iterator[Result]:
    """Yield ``fn(item, *shared)`` for each item, in order.

    `fn` must be a module-level function (picklable by reference, for the joblib path). `jobs`:
    worker processes (>= 1); 1, or fewer than `min_items` items, runs here in this process.
    `lost(item, reason)` stands in for the result of an item whose worker died or whose call
    raised. `chunk`: the most items handed to a worker at a time (>= 1).
    """
    if jobs <= 1 or len(items) < min_items:
        for item in items:
            yield fn(item, *shared)
        return
    if can_fork():
        yield from _ForkPool(fn, items, shared, min(jobs, len(items)), chunk, lost).run()
        return
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=jobs, return_as="generator", batch_size=chunk)
    yield from parallel(delayed(fn)(item, *shared) for item in items)


IN_FLIGHT = 2
"""Chunks queued per worker: it starts the next while the parent reads the last one's answers."""


class _Worker:
    """One forked worker: its pid, the pipe ends the parent holds, and the chunks it holds."""

    def __init__(self, pid: int, tasks: int, results: int) -> None:
        self.pid = pid
        self.tasks = tasks
        self.results = results
        self.pending: collections.deque[int] = collections.deque()
        """Indexes into `_ForkPool.chunks` handed to it and not answered yet, oldest first."""


def chunk_bounds(n: int, jobs: int, chunk: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each chunk of `n` items: at most `chunk` items, and smaller towards
    the end (a quarter of what is left per worker), so that every worker finishes together."""
    bounds = []
    start = 0
    while start < n:
        size = max(1, min(chunk, -(-(n - start) // (jobs * 4))))
        bounds.append((start, min(start + size, n)))
        start += size
    return bounds


class _ForkPool:
    """Chunks of `items` handed out to forked workers as they finish earlier ones."""

    def __init__(
        self,
        fn: Callable[..., Any],
        items: Sequence[Any],
        shared: tuple[Any, ...],
        jobs: int,
        chunk: int,
        lost: Callable[[Any, str], Any],
    ) -> None:
        self.fn = fn
        self.items = items
        self.shared = shared
        self.lost = lost
        # Small chunks keep every worker busy to the end; larger ones cut pipe traffic.
        self.chunks = chunk_bounds(len(items), jobs, chunk)
        self.jobs = jobs

    def run(self) -> Iterator[Any]:
        workers: list[_Worker] = []
        answered: dict[int, list[Any]] = {}
        queue = collections.deque(range(len(self.chunks)))
        """Chunks not handed out yet; those a dead worker never started go back to the front."""
        next_out = 0
        try:
            for _ in range(self.jobs):
                workers.append(self._spawn())
            for _ in range(IN_FLIGHT):
                for worker in workers:
                    self._hand_out(worker, queue)
            busy = {w.results: w for w in workers if w.pending}
            while next_out < len(self.chunks):
                while next_out in answered:
                    yield from answered.pop(next_out)
                    next_out += 1
                if next_out >= len(self.chunks):
                    break
                if not busy:
                    # Every worker died: what is left runs in a fresh one.
                    replacement = self._spawn()
                    workers.append(replacement)
                    for _ in range(IN_FLIGHT):
                        self._hand_out(replacement, queue)
                    if not replacement.pending:
                        raise RuntimeError("no scan worker could be started")
                    busy[replacement.results] = replacement
                for fd in _wait_readable(list(busy)):
                    worker = busy.pop(fd)
                    index, results = self._collect(worker, queue)
                    answered[index] = results
                    if worker.pending:
                        busy[worker.results] = worker

        finally:
            self._stop(workers)

    def _spawn(self) -> _Worker:
        task_read, task_write = os.pipe()
        result_read, result_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                os.close(task_write)
                os.close(result_read)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
                self._serve(task_read, result_write)
            except BaseException:
                code = 1
            finally:
                os._exit(code)  # never return into the caller's code
        os.close(task_read)
        os.close(result_write)
        return _Worker(pid, task_write, result_read)

    def _serve(self, tasks: int, results: int) -> None:
        while True:
            header = _read_exact(tasks, 16)
            if len(header) < 16:
                return  # the parent closed the pipe: no more work
            start, end = struct.unpack("<QQ", header)
            answers = []
            for item in self.items[start:end]:
                try:
                    answers.append(self.fn(item, *self.shared))
                except Exception as exc:  # the caller's function failed on one item
                    answers.append(self.lost(item, f"it failed in a worker process: {exc!r}"))
            payload = pickle.dumps(answers, protocol=pickle.HIGHEST_PROTOCOL)
            _write_all(results, _HEADER.pack(len(payload)) + payload)

    def _hand_out(self, worker: _Worker, queue: collections.deque[int]) -> None:
        """Queue the next chunk on `worker`, if there is one and the worker still listens."""
        if not queue or worker.tasks < 0:
            return
        index = queue.popleft()
        start, end = self.chunks[index]
        try:
            _write_all(worker.tasks, struct.pack("<QQ", start, end))
        except OSError:  # the worker is gone; its chunk goes to the next one asking
            queue.appendleft(index)
            return
        worker.pending.append(index)

    def _collect(self, worker: _Worker, queue: collections.deque[int]) -> tuple[int, list[Any]]:
        """The answers to `worker`'s oldest chunk, or lost results if it died before answering.

        A live worker gets its next chunk before the answers are unpickled, so it never waits;
        a dead one loses only the chunk it was working on, and the ones queued behind it go
        back to the front of `queue`.
        """
        index = worker.pending.popleft()
        start, end = self.chunks[index]
        header = _read_exact(worker.results, _HEADER.size)
        if len(header) == _HEADER.size:
            (size,) = _HEADER.unpack(header)
            payload = _read_exact(worker.results, size)
            if len(payload) == size:
                self._hand_out(worker, queue)
                answers: list[Any] = pickle.loads(payload)  # our own child wrote it
                return index, answers
        queue.extendleft(reversed(worker.pending))
        worker.pending.clear()
        self._retire(worker)
        reason = "the worker process scanning it died; re-run with --jobs 1 to find the file"
        return index, [self.lost(item, reason) for item in self.items[start:end]]

    def _retire(self, worker: _Worker) -> None:
        for fd in (worker.tasks, worker.results):
            with contextlib.suppress(OSError):
                os.close(fd)
        worker.tasks = worker.results = -1
        _reap(worker.pid, kill=True)

    def _stop(self, workers: list[_Worker]) -> None:
        interrupted = sys.exc_info()[0] is not None
        for worker in workers:
            if worker.tasks >= 0:
                os.close(worker.tasks)  # end of work: the worker exits
                worker.tasks = -1
        for worker in workers:
            if worker.results >= 0:
                os.close(worker.results)
                worker.results = -1
            _reap(worker.pid, kill=interrupted)


def _reap(pid: int, *, kill: bool) -> None:
    if kill:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _wait_readable(fds: list[int]) -> list[int]:
    """The descriptors among `fds` with data or end of file to read (blocks until one has)."""
    if hasattr(select, "poll"):  # no FD_SETSIZE limit, unlike select()
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        while True:
            events = poller.poll()
            if events:
                return [fd for fd, _ in events]
    ready, _, _ = select.select(fds, [], [])
    return list(ready)


def _read_exact(fd: int, n: int) -> bytes:
    """`n` bytes from `fd`, fewer only at end of file."""
    parts = []
    while n > 0:
        part = os.read(fd, min(n, 1 << 20))
        if not part:
            break
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
