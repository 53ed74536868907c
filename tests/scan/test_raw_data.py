"""Tensor storages of PyTorch archives are raw bytes: never mistaken for formats, never a FP."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest

import mlwarden
from mlwarden.findings import Severity

torch = pytest.importorskip("torch")


def test_random_tensors_are_raw_data_without_findings(tmp_path):
    generator = np.random.default_rng(0)
    tensors = {
        f"t{i}": torch.from_numpy(generator.standard_normal(4096).astype(np.float32))
        for i in range(300)
    }
    tensors |= {
        f"b{i}": torch.frombuffer(bytearray(generator.bytes(4096)), dtype=torch.uint8)
        for i in range(300)
    }
    path = tmp_path / "model.pt"
    torch.save(tensors, path)
    report = mlwarden.scan(path)
    assert report.findings == []
    formats = {s.format for s in report.scanned}
    assert formats >= {"pytorch-zip", "pickle", "tensor-data"}


def test_code_pickle_disguised_as_a_tensor_storage_is_still_found(tmp_path):
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    evil = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00idq\x00\x85R."
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("/data/0"):
                data = evil
            target.writestr(info, data)
    report = mlwarden.scan(path)
    assert report.max_severity() is Severity.CRITICAL
    assert any(f.location and f.location.member.endswith("/data/0") for f in report.findings)


def test_gzip_inside_a_storage_is_still_opened(tmp_path):
    import gzip

    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("/data/0"):
                data = gzip.compress(b"cos\nsystem\n(S'id'\ntR.")
            target.writestr(info, data)
    assert mlwarden.scan(path).max_severity() is Severity.CRITICAL


def test_unknown_binary_file_starting_like_onnx_is_not_claimed(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\x12\x04test\x3a\xff\xff\xff\x0f" + os.urandom(64))
    report = mlwarden.scan(path)
    assert report.findings == []
