"""A short coverage-guided run of the pickle fuzzer, when atheris is installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

HARNESS = Path(__file__).with_name("fuzz_pickle.py")


@pytest.mark.slow
def test_atheris_finds_no_crash_in_a_short_run(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "seed").write_bytes(b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x8c\x02id\x85R.")
    run = subprocess.run(
        [sys.executable, str(HARNESS), "-runs=20000", "-max_len=4096", "-timeout=10", str(corpus)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
