"""`mlwarden attack evasion` and the evasion part of `mlwarden audit`: files in, report and
adversarial examples out, one-line errors for everything a user can get wrong."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from mlwarden.cli import main

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.slow


def run(capsys: pytest.CaptureFixture[str], *args: str | os.PathLike[str]) -> tuple[int, str, str]:
    code = main([os.fspath(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, digits_model) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("evasion-cli")
    model = folder / "digits.pt"
    torch.jit.script(digits_model.model).save(str(model))
    data = folder / "digits-test.npz"
    np.savez(data, x=digits_model.x_test[:40], y=digits_model.y_test[:40])
    return {"model": model, "data": data, "folder": folder}


def attack(files: dict[str, Path], *extra: str | os.PathLike[str]) -> list[str | os.PathLike[str]]:
    return [
        "attack",
        "evasion",
        "--model",
        files["model"],
        "--input-shape",
        "1,8,8",
        "--data",
        files["data"],
        *extra,
    ]


def test_attack_writes_verified_adversarial_examples_and_a_report(files, tmp_path, capsys):
    out = tmp_path / "adv.npz"
    code, stdout, _ = run(
        capsys, *attack(files, "--attack", "pgd", "--eps", "0.2", "--out", out, "-f", "json")
    )
    report = json.loads(stdout)
    saved = np.load(out)
    assert set(saved.files) >= {"x", "x_adv", "y", "success", "predictions", "norms"}
    assert np.abs(saved["x_adv"] - saved["x"]).max() <= 0.2 + 1e-6
    assert saved["success"].mean() > 0.5
    finding = report["findings"][0]
    assert finding["rule"] == "evasion.low-robust-accuracy"
    assert finding["evidence"]["robust_accuracy"] == pytest.approx(1 - saved["success"].mean())
    assert code == (1 if finding["severity"] in ("high", "critical") else 0)


def test_fail_on_gates_the_exit_code(files, capsys):
    code, _, _ = run(capsys, *attack(files, "--eps", "0.3", "--fail-on", "info", "-q"))
    assert code == 1
    code, _, _ = run(capsys, *attack(files, "--eps", "0.3", "--fail-on", "never", "-q"))
    assert code == 0


def test_eps_accepts_fractions_and_params_are_typed(files, capsys):
    code, stdout, _ = run(
        capsys,
        *attack(files, "--eps", "8/255", "--param", "steps=5", "--param", "restarts=2"),
        "-f",
        "json",
        "--fail-on",
        "never",
    )
    assert code == 0
    evidence = json.loads(stdout)["findings"][0]["evidence"]
    assert evidence["eps"] == pytest.approx(8 / 255)


def test_minimum_norm_attack_needs_no_eps(files, capsys):
    code, stdout, _ = run(capsys, *attack(files, "--attack", "deepfool", "-f", "json", "-q"))
    assert code in (0, 1)
    assert len(json.loads(stdout)["findings"]) >= 2  # one per default budget


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--attack", "nope", "--eps", "0.1"), "unknown attack 'nope'"),
        (("--eps", "0.1", "--param", "foo=1"), "has no parameter 'foo'"),
        (("--eps", "0.1", "--param", "steps=many"), "expected a whole number"),
        (("--eps", "0.1", "--param", "early_stop=maybe"), "expected true or false"),
        (("--eps", "0.1", "--param", "l1_quantile=high"), "expected a number"),
        (("--eps", "0.1", "--param", "steps"), "KEY=VALUE"),
        (("--eps", "-1"), "eps must be a finite number >= 0"),
        (("--eps", "lots"), "--eps takes a number"),
        (("--eps", "5"), "exceeds the largest possible perturbation"),
        (("--eps", "0.1", "--norm", "l7"), "norm"),
        (("--eps", "0.1", "--input-range", "0"), "--input-range takes LOW,HIGH"),
    ],
)
def test_bad_flags_are_one_line_usage_errors(files, capsys, extra, message):
    code, _, err = run(capsys, *attack(files, *extra))
    assert code == 4
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_missing_input_shape_says_which_flag(files, capsys):
    code, _, err = run(
        capsys,
        "attack",
        "evasion",
        "--model",
        files["model"],
        "--data",
        files["data"],
        "--eps",
        "0.1",
    )
    assert code == 4
    assert "--input-shape" in err


def test_data_with_nan_is_refused(files, tmp_path, digits_model, capsys):
    x = digits_model.x_test[:10].copy()
    x[3, 0, 0, 0] = np.nan
    bad = tmp_path / "nan.npz"
    np.savez(bad, x=x, y=digits_model.y_test[:10])
    args = attack(files, "--eps", "0.1")
    args[args.index(files["data"])] = bad
    code, _, err = run(capsys, *args)
    assert code == 4
    assert "NaN" in err


def test_data_outside_the_input_range_is_refused(files, capsys):
    code, _, err = run(capsys, *attack(files, "--eps", "0.1", "--input-range", "0,0.5"))
    assert code == 4
    assert "outside the target's input_range" in err


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def test_a_model_file_the_scanner_flags_is_never_loaded(files, tmp_path, capsys):
    marker = tmp_path / "MARKER"
    model = tmp_path / "model.joblib"
    model.write_bytes(pickle.dumps(_Payload(marker)))
    code, _, err = run(
        capsys,
        "attack",
        "evasion",
        "--model",
        model,
        "--data",
        files["data"],
        "--eps",
        "0.1",
    )
    assert code == 4
    assert "refuses to load" in err
    assert not marker.exists()


def test_output_folder_must_exist(files, tmp_path, capsys):
    code, _, err = run(capsys, *attack(files, "--eps", "0.1", "--out", tmp_path / "no" / "a.npz"))
    assert code == 4
    assert "does not exist" in err


def test_audit_runs_the_evasion_check_from_flags(files, capsys):
    code, stdout, _ = run(
        capsys,
        "audit",
        "--model",
        files["model"],
        "--input-shape",
        "1,8,8",
        "--data",
        files["data"],
        "--suite",
        "quick",
        "--eps",
        "0.1",
        "--only",
        "ml01.evasion",
        "-f",
        "json",
        "--fail-on",
        "never",
    )
    report = json.loads(stdout)
    assert code == 0
    assert "ml01.evasion" in report["checks_run"]
    rules = {f["rule"] for f in report["findings"]}
    assert "evasion.low-robust-accuracy" in rules


def test_audit_without_a_model_marks_evasion_not_assessed(files, capsys):
    code, stdout, _ = run(capsys, "audit", files["folder"], "-f", "json")
    report = json.loads(stdout)
    reasons = {n["check"]: n["reason"] for n in report["not_assessed"]}
    assert "needs data, target" in reasons["ml01.evasion"]
    assert code == 0
