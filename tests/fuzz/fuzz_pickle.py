"""Coverage-guided fuzzing of the pickle analyser with atheris.

Run by hand for as long as you like::

    .venv/bin/python tests/fuzz/fuzz_pickle.py -max_total_time=600

`tests/fuzz/test_atheris.py` runs it briefly in CI when atheris is installed. Any exception that
escapes the analyser is a bug.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from mlwarden.scan.blob import BytesBlob
    from mlwarden.scan.context import FileScan, ScanContext
    from mlwarden.scan.pickle.analyser import analyse_pickle, looks_like_pickle
    from mlwarden.scan.policy import Policy

POLICY = Policy()


def one_input(data: bytes) -> None:
    state = FileScan("fuzz", POLICY, POLICY.limits)
    ctx = ScanContext(state, BytesBlob(data), _scan_child=lambda c, b, n, raw: None)
    looks_like_pickle(data[:4096])
    analyse_pickle(ctx, data)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
