"""FileBlob: small files are read once and served from memory; large ones are read in place."""

from __future__ import annotations

import builtins
import pickle

import pytest

from mlwarden.scan import blob as blob_module
from mlwarden.scan.blob import SMALL_FILE_BYTES, FileBlob
from mlwarden.scan.engine import scan_file
from mlwarden.scan.policy import Policy


@pytest.fixture
def opens(monkeypatch):
    """Count the files the blob module opens."""
    seen: list[str] = []
    real_open = builtins.open

    def counting_open(path, *args, **kwargs):
        seen.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(blob_module, "open", counting_open, raising=False)
    return seen


def test_a_small_file_is_opened_once_for_every_read(tmp_path, opens):
    path = tmp_path / "m.pkl"
    path.write_bytes(bytes(range(256)) * 4)
    blob = FileBlob(str(path), path.stat().st_size)
    assert blob.head(16) == bytes(range(16))
    assert blob.read_at(1020, 10) == bytes(range(252, 256))  # short at the end
    assert blob.read_at(5000, 10) == b""
    assert blob.read_at(0, -1) == b""
    with blob.open() as reader:
        assert reader.read() == path.read_bytes()
    blob.close()
    assert opens == [str(path)]


def test_a_small_file_changed_during_the_scan_is_seen_as_one_version(tmp_path):
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    blob = FileBlob(str(path), path.stat().st_size)
    first = blob.head()
    path.write_bytes(b"cos\nsystem\n(S'x'\ntR.")  # swapped after the first read
    assert blob.read_at(0, 1 << 20) == first


def test_a_large_file_is_read_in_place_not_into_memory(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"\0" * (SMALL_FILE_BYTES + 1))
    blob = FileBlob(str(path), path.stat().st_size)
    assert blob.read_at(SMALL_FILE_BYTES, 8) == b"\0"
    assert blob._data is None
    blob.close()


def test_scan_file_opens_a_small_pickle_once(tmp_path, opens):
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps({"weights": list(range(100))}))
    state = scan_file(str(path), str(path), Policy())
    assert [s.format for s in state.scanned] == ["pickle"]
    assert opens.count(str(path)) == 1
