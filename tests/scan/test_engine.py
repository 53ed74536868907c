"""The engine walks paths, recognises content, recurses safely and never stops on one bad file."""

from __future__ import annotations

import os
import pickle

import pytest

import mlwarden
from mlwarden.findings import Severity
from mlwarden.report.model import ExitCode
from mlwarden.scan.engine import scan_paths
from mlwarden.scan.policy import Policy

EVIL = b"cos\nsystem\n(S'touch /nonexistent/MARKER'\ntR."


def test_content_decides_the_format_not_the_name(tmp_path):
    (tmp_path / "weights.png").write_bytes(EVIL)
    report = mlwarden.scan(tmp_path)
    assert report.max_severity() is Severity.CRITICAL
    assert report.scanned[0].format == "pickle"


def test_missing_path_is_an_error_not_silence(tmp_path):
    report = mlwarden.scan(tmp_path / "absent.pt")
    assert report.errors and "no such file" in report.errors[0].message
    assert report.exit_code(Severity.HIGH) == ExitCode.ERROR


def test_folder_with_nothing_recognisable_exits_3(tmp_path):
    (tmp_path / "notes.bin").write_bytes(b"\x00\x01\x02 nothing here")
    report = mlwarden.scan(tmp_path)
    assert report.exit_code(Severity.HIGH) == ExitCode.NOTHING_SCANNED
    assert report.not_assessed[0].check == "ml06.model_files"


def test_clean_file_exits_0_and_malicious_exits_1(tmp_path):
    clean = tmp_path / "clean.pkl"
    clean.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    assert mlwarden.scan(clean).exit_code(Severity.HIGH) == ExitCode.CLEAN
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(EVIL)
    assert mlwarden.scan(evil).exit_code(Severity.HIGH) == ExitCode.FINDINGS
    assert mlwarden.scan(evil).exit_code(None) == ExitCode.CLEAN


def test_version_control_folders_are_skipped(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "objects.pkl").write_bytes(EVIL)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps([1]))
    report = mlwarden.scan(tmp_path)
    assert report.findings == []
    assert [s.path for s in report.scanned] == [str(tmp_path / "model.pkl")]


def test_symlink_leaving_the_folder_is_reported_and_not_followed(tmp_path):
    outside = tmp_path / "outside.pkl"
    outside.write_bytes(EVIL)
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink(outside, folder / "weights.pkl")
    report = mlwarden.scan(folder)
    assert [f.rule for f in report.findings] == ["folder.symlink-outside"]


def test_folders_are_walked_depth_first_in_name_order(tmp_path):
    for rel in ("b/z.pkl", "b/a/y.pkl", "a.pkl", "c/x.pkl", "b.pkl", "__pycache__/w.pkl"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(pickle.dumps([rel]))
    os.symlink(tmp_path / "c", tmp_path / "d")  # a link to a folder is not followed
    report = mlwarden.scan(tmp_path, jobs=1)
    assert [s.path for s in report.scanned] == [
        str(tmp_path / rel) for rel in ("a.pkl", "b.pkl", "b/z.pkl", "b/a/y.pkl", "c/x.pkl")
    ]
    assert report.findings == [] and report.errors == []


def test_a_folder_that_cannot_be_read_is_an_error_not_silence(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.pkl").write_bytes(pickle.dumps([1]))
    (tmp_path / "n.pkl").write_bytes(pickle.dumps([2]))
    real_scandir = os.scandir

    def scandir(path):
        if os.fspath(path).endswith("sub"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = mlwarden.scan(tmp_path, jobs=1)
    assert [s.path for s in report.scanned] == [str(tmp_path / "n.pkl")]
    assert [(e.path, e.message) for e in report.errors] == [
        (str(tmp_path / "sub"), "cannot read folder: Permission denied")
    ]
    assert report.exit_code(Severity.HIGH) == ExitCode.ERROR


def test_parallel_scan_gives_the_same_result(tmp_path):
    for i in range(40):
        (tmp_path / f"m{i:02}.pkl").write_bytes(EVIL if i % 7 == 0 else pickle.dumps([i]))
    serial = scan_paths([tmp_path], Policy(), jobs=1)
    parallel = scan_paths([tmp_path], Policy(), jobs=2)
    assert sorted(map(str, (f.location for f in serial.findings))) == sorted(
        map(str, (f.location for f in parallel.findings))
    )
    assert len(serial.scanned) == len(parallel.scanned) == 40


def test_progress_is_reported(tmp_path):
    (tmp_path / "a.pkl").write_bytes(pickle.dumps(1))
    seen = []
    mlwarden.scan(tmp_path, progress=lambda what, done, total: seen.append((what, done, total)))
    assert [(done, total) for what, done, total in seen if what == "scanning"][-1] == (1, 1)


def test_jobs_below_one_is_a_usage_error(tmp_path):
    with pytest.raises(mlwarden.errors.UsageError):
        mlwarden.scan(tmp_path, jobs=0)


def test_inventory_severity_covers_nested_members(tmp_path):
    report = mlwarden.scan(_write(tmp_path / "evil.pkl", EVIL))
    assert report.scanned[0].severity is Severity.CRITICAL


def test_handler_crash_becomes_a_finding_and_other_files_continue(tmp_path, monkeypatch):
    from mlwarden.scan.formats import pickle as pickle_format

    def explode(self, ctx):
        raise RuntimeError("boom")

    monkeypatch.setattr(pickle_format.PickleHandler, "scan", explode)
    _write(tmp_path / "a.pkl", pickle.dumps(1))
    _write(tmp_path / "b.pkl", pickle.dumps(2))
    report = mlwarden.scan(tmp_path)
    assert [f.rule for f in report.findings] == ["scan.unparseable"] * 2
    assert all(f.severity is Severity.HIGH for f in report.findings)


def _write(path, data):
    path.write_bytes(data)
    return path


def test_named_pipe_in_a_folder_never_blocks_the_scan(tmp_path):
    os.mkfifo(tmp_path / "pipe.pt")
    _write(tmp_path / "model.pkl", pickle.dumps(1))
    report = mlwarden.scan(tmp_path)
    assert [f.rule for f in report.findings] == ["folder.special-file"]
    assert report.exit_code(Severity.HIGH) == ExitCode.CLEAN


def test_scanning_never_imports_the_frameworks_it_reads(tmp_path):
    import subprocess
    import sys

    (tmp_path / "a.pkl").write_bytes(EVIL)
    (tmp_path / "b.pkl").write_bytes(pickle.dumps({"w": [1.0]}))
    code = (
        "import sys, mlwarden; mlwarden.scan(sys.argv[1]);"
        "heavy = {'torch', 'sklearn', 'tensorflow', 'keras', 'onnx', 'onnxruntime', 'h5py',"
        " 'jinja2', 'py7zr', 'joblib', 'numpy'} & set(sys.modules);"
        "print(sorted(heavy))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == "[]"


def test_a_clean_scan_without_a_policy_file_skips_start_up_imports_it_does_not_need(tmp_path):
    """A scan of many small files is start-up bound; these modules cost it and are not used."""
    import subprocess
    import sys

    (tmp_path / "b.pkl").write_bytes(pickle.dumps({"w": [1.0]}))
    code = (
        "import sys; from mlwarden.cli import main; sys.argv = ['mlwarden', 'scan', '--models',"
        " '-q', '-f', 'json', '-o', sys.argv[1] + '/r.json', sys.argv[1] + '/b.pkl']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "unneeded = {'tomllib', 'zipfile', 'hashlib', 'multiprocessing', 'tarfile', 'tempfile',"
        " 'backports.zstd', 'compression.zstd',"
        " 'concurrent.futures'} & set(sys.modules)\n"
        "print(sorted(unneeded))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == "[]"
    assert (tmp_path / "r.json").exists()


def test_the_packaged_allowlist_matches_the_files_beside_the_module():
    from pathlib import Path

    from mlwarden.scan import policy as policy_module

    packaged = sorted(e.name for e in policy_module._packaged_policy_data().iterdir())
    beside = sorted(p.name for p in (Path(policy_module.__file__).parent / "policy_data").iterdir())
    assert packaged == beside and "deny.txt" in packaged
