"""Run one function over many files in worker processes, results in input order.

Scanning is pure Python, so threads do not help; processes do. Where the platform can fork and
the calling process runs a single thread, workers are forked: they start in milliseconds with
every module already imported, and the arguments shared by all calls (the policy, the limits)
are inherited rather than pickled once per file. Elsewhere (macOS, Windows, or a caller that
already runs threads, where forking could copy a lock held by another thread) joblib's process
pool is used. A worker that dies (killed, out of memory) never hangs the scan: each file it had
not answered gets the caller's "lost" result (an error naming the file), never a silent gap.
Not for: anything that is not a pure function of its arguments.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_AUTO_JOBS = 8
"""`auto_jobs` never asks for more workers than this (scans are rarely wider than the disk)."""

_shared: tuple[Callable[..., Any], tuple[Any, ...]] | None = None
"""The function and shared arguments a forked worker inherits (set only around a fork)."""


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
    """True when forking workers is safe here: Linux-like platform and a single thread."""
    if sys.platform == "darwin" or "fork" not in multiprocessing.get_all_start_methods():
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

    `fn` must be a module-level function (picklable by reference). `jobs`: worker processes
    (>= 1); 1, or fewer than `min_items` items, runs here in this process. `lost(item, reason)`
    stands in for the result of an item whose worker died. `chunk`: the most items sent to a
    worker at a time (>= 1).
    """
    if jobs <= 1 or len(items) < min_items:
        for item in items:
            yield fn(item, *shared)
        return
    if can_fork():
        yield from _forked(fn, items, shared, jobs, chunk, lost)
        return
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=jobs, return_as="generator", batch_size=chunk)
    yield from parallel(delayed(fn)(item, *shared) for item in items)


def _forked(
    fn: Callable[..., Result],
    items: Sequence[Item],
    shared: tuple[Any, ...],
    jobs: int,
    chunk: int,
    lost: Callable[[Item, str], Result],
) -> Iterator[Result]:
    global _shared
    done = 0
    # Small chunks keep every worker busy to the end; larger ones cut queue traffic.
    chunksize = max(1, min(chunk, len(items) // (jobs * 4)))
    context = multiprocessing.get_context("fork")
    _shared = (fn, shared)  # inherited by the workers, which fork at the first submit
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_ignore_sigint)
    try:
        for result in pool.map(_call_shared, items, chunksize=chunksize):
            done += 1
            yield result
    except BrokenProcessPool as exc:
        reason = f"the worker process scanning it died ({exc}); re-run with --jobs 1"
        for item in items[done:]:
            yield lost(item, reason)
    finally:
        _shared = None
        pool.shutdown(wait=True, cancel_futures=True)


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; the parent stops the pool, workers stay quiet.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _call_shared(item: Any) -> Any:
    if _shared is None:
        raise RuntimeError("worker started without its shared arguments")
    fn, shared = _shared
    return fn(item, *shared)
