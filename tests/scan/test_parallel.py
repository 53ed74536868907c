"""Worker processes for scans: order, the fork path, the joblib fallback, dead workers."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading

import pytest

import mlwarden
from mlwarden.scan import engine, parallel
from mlwarden.scan.engine import scan_paths
from mlwarden.scan.parallel import auto_jobs, can_fork, map_ordered
from mlwarden.scan.policy import Policy

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def square_with_pid(item: int, offset: int) -> tuple[int, int]:
    return item * item + offset, os.getpid()


def die_on_seven(item: int) -> int:
    if item == 7:
        os._exit(3)  # a worker killed mid-scan (out of memory, a signal)
    return item


def lost(item: int, reason: str) -> str:
    return f"lost {item}: {reason}"


@pytest.fixture
def forkable(monkeypatch):
    """Take the fork path even though pytest-xdist runs threads in this worker."""
    monkeypatch.setattr(parallel, "can_fork", lambda: True)


def test_forked_workers_answer_in_input_order_with_shared_arguments(forkable):
    out = list(map_ordered(square_with_pid, range(50), (1,), jobs=2, min_items=10, lost=lost))
    assert [value for value, _ in out] == [i * i + 1 for i in range(50)]
    assert os.getpid() not in {pid for _, pid in out}


def test_few_items_or_one_job_run_in_this_process(forkable):
    for jobs, items in ((2, range(5)), (1, range(50))):
        out = list(map_ordered(square_with_pid, items, (0,), jobs=jobs, min_items=10, lost=lost))
        assert {pid for _, pid in out} == {os.getpid()}
        assert [value for value, _ in out] == [i * i for i in items]


def test_a_dead_worker_loses_only_its_own_chunk(forkable):
    out = list(map_ordered(die_on_seven, range(40), jobs=2, min_items=10, lost=lost, chunk=4))
    assert len(out) == 40
    # Chunks of 4: the worker died on 7 while holding 4..7; every other item was answered.
    assert [o for i, o in enumerate(out) if not 4 <= i < 8] == [
        i for i in range(40) if not 4 <= i < 8
    ]
    assert all(
        isinstance(o, str) and o.startswith(f"lost {i}: ") for i, o in enumerate(out) if 4 <= i < 8
    )
    assert "--jobs 1" in out[7]


def die_always(item: int) -> int:
    os._exit(5)


def test_when_every_worker_dies_each_chunk_is_lost_once_and_the_scan_ends(forkable, forked):
    out = list(map_ordered(die_always, range(24), jobs=2, min_items=10, lost=lost, chunk=3))
    assert [o.split(":")[0] for o in out] == [f"lost {i}" for i in range(24)]
    # One worker per chunk, each dying on its first item; chunks queued behind it are re-run.
    assert len(forked) == len(parallel.chunk_bounds(24, 2, 3))
    assert_reaped(forked)


@pytest.mark.parametrize(("n", "jobs", "chunk"), [(1000, 2, 16), (24, 2, 3), (7, 8, 16), (1, 1, 1)])
def test_chunks_cover_every_item_once_and_shrink_towards_the_end(n, jobs, chunk):
    bounds = parallel.chunk_bounds(n, jobs, chunk)
    assert [i for start, end in bounds for i in range(start, end)] == list(range(n))
    sizes = [end - start for start, end in bounds]
    assert max(sizes) <= chunk and sizes == sorted(sizes, reverse=True)
    assert sizes[-1] == 1  # the last chunk is one item: no worker idles behind a long one


def fail_on_three(item: int) -> int:
    if item == 3:
        raise ValueError("unreadable")
    return item


def test_an_exception_in_a_worker_becomes_a_lost_result_for_that_item(forkable):
    out = list(map_ordered(fail_on_three, range(20), jobs=2, min_items=10, lost=lost))
    assert out[:3] == [0, 1, 2] and out[4:] == list(range(4, 20))
    assert out[3] == "lost 3: it failed in a worker process: ValueError('unreadable')"


def test_stopping_early_leaves_no_worker_behind(forkable, forked):
    results = map_ordered(square_with_pid, range(200), (0,), jobs=2, min_items=10, lost=lost)
    assert next(results)[0] == 0
    results.close()  # the consumer gives up (an error, Ctrl-C)
    assert len(forked) == 2
    assert_reaped(forked)


@pytest.fixture
def forked(monkeypatch):
    """The pids of every worker forked during the test."""
    pids: list[int] = []
    real_fork = os.fork

    def recording_fork() -> int:
        pid = real_fork()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", recording_fork)
    return pids


def assert_reaped(pids: list[int]) -> None:
    assert pids
    for pid in pids:
        with pytest.raises(ChildProcessError):  # already waited for: no zombie, no orphan
            os.waitpid(pid, os.WNOHANG)


def test_the_fork_path_does_not_import_multiprocessing(tmp_path):
    code = (
        "import sys\n"
        "from mlwarden.scan.parallel import map_ordered\n"
        "out = list(map_ordered(abs, list(range(-50, 0)), jobs=2, min_items=10, "
        "lost=lambda i, r: None))\n"
        "assert out == list(range(50, 0, -1)), out\n"
        "assert 'multiprocessing' not in sys.modules\n"
        "assert 'concurrent.futures' not in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_with_other_threads_running_workers_are_not_forked():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not can_fork()
        assert auto_jobs() == 1  # spawning interpreters is left to an explicit --jobs
        out = list(map_ordered(square_with_pid, range(12), (0,), jobs=2, min_items=10, lost=lost))
        assert [value for value, _ in out] == [i * i for i in range(12)]
    finally:
        stop.set()
        thread.join()


def test_auto_jobs_uses_the_cpus_when_forking_is_safe(forkable):
    assert 1 <= auto_jobs() <= parallel.MAX_AUTO_JOBS
    assert auto_jobs() == min(len(os.sched_getaffinity(0)), parallel.MAX_AUTO_JOBS)


EVIL = b"cos\nsystem\n(S'touch /tmp/never'\ntR."


def test_forked_scan_matches_the_serial_scan_file_for_file(tmp_path, forkable):
    for i in range(40):
        (tmp_path / f"m{i:02}.pkl").write_bytes(EVIL if i % 7 == 0 else pickle.dumps([i]))
    serial = scan_paths([tmp_path], Policy(), jobs=1)
    forked = scan_paths([tmp_path], Policy(), jobs=2)
    assert forked.scanned == serial.scanned  # same files, formats, severities, same order
    assert forked.findings == serial.findings
    assert not forked.errors


def scan_job_dying_on_m05(job, policy):
    if job.shown_path.endswith("m05.pkl"):
        os._exit(9)
    return scan_job_dying_on_m05.__wrapped__(job, policy)


def test_a_scan_worker_that_dies_leaves_an_error_naming_the_file(tmp_path, forkable, monkeypatch):
    for i in range(40):
        (tmp_path / f"m{i:02}.pkl").write_bytes(pickle.dumps([i]))
    scan_job_dying_on_m05.__wrapped__ = engine._scan_job  # type: ignore[attr-defined]
    monkeypatch.setattr(engine, "_scan_job", scan_job_dying_on_m05)
    report = mlwarden.scan(tmp_path, jobs=2, kinds=["models"])
    lost_paths = {e.path for e in report.errors}
    assert str(tmp_path / "m05.pkl") in lost_paths
    assert all(
        "not scanned: the worker process scanning it died" in e.message for e in report.errors
    )
    scanned = {s.path for s in report.scanned}
    assert scanned | lost_paths == {str(tmp_path / f"m{i:02}.pkl") for i in range(40)}
    assert report.verdict().exit_code == 2  # an incomplete scan is never a pass
