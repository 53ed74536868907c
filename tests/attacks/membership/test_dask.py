"""Reference models trained on a Dask cluster: the same outputs as here, failures named."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from mlwarden.attacks.membership import reference as reference_module
from mlwarden.attacks.membership.reference import train_reference
from mlwarden.errors import UsageError

distributed = pytest.importorskip("distributed")

Data = tuple[np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """One in-process worker with one thread, listening on loopback TCP.

    The dashboard too: ``dashboard_address=None`` still serves it on port 8787 of every
    interface (distributed 2026.8), so it gets a free loopback port.
    """
    with (
        threadpool_limits(1),
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=False,
            protocol="tcp://",
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as local,
    ):
        yield local


@pytest.fixture(scope="module")
def client(cluster) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    with distributed.Client(cluster, set_as_default=False) as connected:
        yield connected


@pytest.fixture(scope="module")
def records() -> dict[str, Data]:
    x, y = make_classification(n_samples=120, n_features=6, n_informative=4, random_state=1)
    x = ((x - x.min(axis=0)) / (x.max(axis=0) - x.min(axis=0))).astype(np.float32)
    return {"candidates": (x[:40], y[:40]), "population": (x[40:], y[40:])}


def train(train_fn: Any, data: dict[str, Data], **options: Any) -> Any:
    settings: dict[str, Any] = {
        "n_reference": 4,
        "mode": "online",
        "n_classes": 2,
        "seed": 0,
        "cache_dir": None,
        "n_jobs": 1,
        "dask": None,
        "progress": None,
    }
    settings.update(options)
    return train_reference(
        train_fn, candidates=data["candidates"], population=data["population"], **settings
    )


def fails_on_odd_seeds(x: np.ndarray, y: np.ndarray, seed: int) -> LogisticRegression:
    if seed % 2:
        raise MemoryError(f"worker ran out of memory (seed {seed})")
    return LogisticRegression().fit(x, y)


def test_a_client_trains_the_same_models_as_this_process(client, records, tmp_path) -> None:  # type: ignore[no-untyped-def]
    here = train(LogisticRegression(), records)
    done: list[int] = []
    there = train(
        LogisticRegression(),
        records,
        dask=client,
        cache_dir=tmp_path,
        progress=lambda label, count, total: done.append(count),
    )
    np.testing.assert_allclose(here.probs_candidates, there.probs_candidates, atol=1e-6)
    assert np.array_equal(here.in_candidates, there.in_candidates)
    assert done == [0, 1, 2, 3, 4]
    assert len(list(tmp_path.glob("reference-*.npz"))) == 4
    assert train(LogisticRegression(), records, dask=client, cache_dir=tmp_path).cached == 4


def test_a_scheduler_address_is_connected_to_and_closed(cluster, records) -> None:  # type: ignore[no-untyped-def]
    address = cluster.scheduler_address
    assert address.startswith("tcp://127.0.0.1:")
    before = set(cluster.scheduler.clients)
    result = train(LogisticRegression(), records, mode="offline", n_reference=2, dask=address)
    assert result.k == 2 and not result.in_candidates.any()
    # The scheduler hears of the closed client a bit later. Only clients train() added count:
    # one a previous test closed may still be in `before` and leave meanwhile.
    deadline = time.monotonic() + 10
    while set(cluster.scheduler.clients) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(cluster.scheduler.clients) - before


def test_a_failure_on_a_worker_names_the_model_and_keeps_the_rest(
    client, records, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        UsageError, match=r"reference model \d of 4 \(seed \d*[13579]\) failed"
    ) as caught:
        train(fails_on_odd_seeds, records, dask=client, cache_dir=tmp_path)
    assert "MemoryError: worker ran out of memory" in str(caught.value)
    kept = len(list(tmp_path.glob("reference-*.npz")))
    assert f"{kept} of 4 models are cached" in str(caught.value)


def test_an_unreachable_scheduler_is_a_usage_error(records, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(reference_module, "DASK_CONNECT_TIMEOUT_S", 1.0)
    with socket.socket() as probe:  # bound, never listening: refused, and no one else's port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        with pytest.raises(
            UsageError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"
        ):
            train(LogisticRegression(), records, dask=f"tcp://127.0.0.1:{port}")


def test_dask_must_be_a_client_or_an_address(records) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match=r"distributed\.Client or a scheduler address"):
        train(LogisticRegression(), records, dask=8786)


def test_missing_distributed_names_the_extra(records, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(UsageError, match=r"pip install mlwarden\[dask\]"):
        train(LogisticRegression(), records, dask="tcp://127.0.0.1:8786")


def test_each_run_sends_its_data_under_keys_of_its_own(client, records, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Two runs on the same data must not share the keys of the data they send: when the first
    releases its copy, the scheduler would drop the data under the second run's tasks, which
    then fail with 'lost dependencies' (seen in a full test run)."""
    keys: list[str] = []
    scatter = client.scatter

    def spy(data: Any, **options: Any) -> Any:
        futures = scatter(data, **options)
        keys.extend(str(f.key) for f in futures)
        return futures

    monkeypatch.setattr(client, "scatter", spy)
    first = train(LogisticRegression(), records, mode="offline", n_reference=2, dask=client)
    second = train(LogisticRegression(), records, mode="offline", n_reference=2, dask=client)
    np.testing.assert_array_equal(first.probs_candidates, second.probs_candidates)
    assert len(keys) == 4 and len(set(keys)) == 4
