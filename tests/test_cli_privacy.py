"""`mlwarden attack membership`, `attack inversion` and the privacy part of `mlwarden audit`:
record files in, report out, one-line errors for everything a user can get wrong."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlwarden.cli import main

pytestmark = pytest.mark.slow

TRAIN_MODULE = """
import numpy as np
from sklearn.neural_network import MLPClassifier


def train(x, y, seed):
    return MLPClassifier(hidden_layer_sizes=(64,), alpha=0.0, max_iter=300,
                         random_state=seed).fit(x, y)


def broken(x, y, seed):
    raise ValueError("out of memory on purpose")


def regressor(x, y, seed):
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(x, y)
"""


def run(capsys: pytest.CaptureFixture[str], *args: str | os.PathLike[str]) -> tuple[int, str, str]:
    code = main([os.fspath(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An overfit scikit-learn MLP saved as a pickle the scanner accepts, with its members,
    non-members and population records, and a train_fn module."""
    import joblib

    sys.modules.pop("privtrain", None)
    folder = tmp_path_factory.mktemp("privacy-cli")
    (folder / "privtrain.py").write_text(TRAIN_MODULE)
    rng = np.random.default_rng(0)
    centres = rng.random((2, 12))
    y = rng.integers(0, 2, 320)
    x = np.clip(centres[y] + rng.normal(0, 0.35, (320, 12)), 0, 1).astype(np.float32)
    split = {"members": slice(0, 80), "non-members": slice(80, 160), "population": slice(160, 320)}
    files = {}
    for name, part in split.items():
        files[name] = folder / f"{name}.npz"
        np.savez(files[name], x=x[part], y=y[part])
    sys.path.insert(0, str(folder))
    try:
        import privtrain

        model = privtrain.train(x[split["members"]], y[split["members"]], 0)
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("privtrain", None)
    files["model"] = folder / "model.joblib"
    joblib.dump(model, files["model"])
    files["folder"] = folder
    # records that overlap the members
    files["overlap"] = folder / "overlap.npz"
    np.savez(files["overlap"], x=x[70:100], y=y[70:100])
    return files


@pytest.fixture
def in_folder(records: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.chdir(records["folder"])
    monkeypatch.delitem(sys.modules, "privtrain", raising=False)
    return records


def membership(
    files: dict[str, Path], *extra: str | os.PathLike[str]
) -> list[str | os.PathLike[str]]:
    return [
        "attack",
        "membership",
        "--model",
        files["model"],
        "--members",
        files["members"],
        "--non-members",
        files["non-members"],
        *extra,
    ]


def test_membership_reports_the_leak_at_low_fpr_with_tables(in_folder, capsys):  # type: ignore[no-untyped-def]
    code, stdout, err = run(
        capsys, *membership(in_folder, "--attack", "loss", "-f", "json", "--fail-on", "never")
    )
    assert code == 0, err
    report = json.loads(stdout)
    assert report["checks_run"] == ["ml04.membership"]
    rules = sorted(f["rule"] for f in report["findings"])
    assert rules == ["membership.epsilon", "membership.low-fpr-leak"]
    metrics = report["metrics"]["ml04.membership"]
    assert metrics["n_members"] == 80 and metrics["member_accuracy"] >= 0.95
    assert {"attacks", "exposed", "summary"} <= set(metrics)


def test_fail_on_gates_the_exit_code(in_folder, capsys):  # type: ignore[no-untyped-def]
    assert run(capsys, *membership(in_folder, "-a", "loss", "--fail-on", "info", "-q"))[0] == 1
    assert run(capsys, *membership(in_folder, "-a", "loss", "--fail-on", "never", "-q"))[0] == 0


def test_reference_attacks_and_defences_from_the_command_line(in_folder, tmp_path, capsys):  # type: ignore[no-untyped-def]
    out = tmp_path / "report.html"
    args = membership(
        in_folder,
        "--population",
        in_folder["population"],
        "--train-fn",
        "privtrain:train",
        "--attack",
        "rmia",
        "--attack",
        "lira-offline",
        "--n-reference",
        "2",
        "--cache-dir",
        tmp_path / "cache",
        "--defence",
        "label-only",
        "--defence",
        "top-k:1",
        "-f",
        "json",
        "--fail-on",
        "never",
    )
    code, stdout, err = run(capsys, *args)
    assert code == 0, err
    metrics = json.loads(stdout)["metrics"]["ml04.membership"]
    assert set(metrics["by_attack"]) == {"rmia", "lira-offline"} and metrics["n_reference"] == 2
    rows = {row["defence"]: row for row in metrics["defence_results"]}
    assert list(rows) == ["none", "label-only", "top-k:1"]
    assert rows["label-only"]["utility_cost"] == pytest.approx(0.0)  # the label never changes
    assert "defences" in metrics
    # html renders the ROC curves and the defence chart
    code, _, _ = run(capsys, *args[:-4], "-f", "html", "-o", out, "-q", "--fail-on", "never")
    html = out.read_text(encoding="utf-8")
    assert code == 0 and "privacy-roc" in html and "privacy-defences" in html


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--attack", "telepathy"), "unknown membership attack 'telepathy'"),
        (("--defence", "blur:3"), "defence 'blur:3' is not understood"),
        (("--reference-mode", "sideways"), "--reference-mode must be online or offline"),
        (("--jobs", "0"), "--jobs must be at least 1"),
        (("--n-reference", "0"), "n_reference must be >= 1"),
        (("--attack", "rmia"), "need reference models: pass train_fn and population"),
        (("--train-fn", "privtrain"), "must look like package.module:function"),
        (("--train-fn", "nowhere:train"), "cannot import nowhere"),
        (("--defence", "dp:epsilon=1", "--train-fn", "privtrain:train"), "TorchTrainer"),
    ],
)
def test_bad_flags_are_one_line_usage_errors(in_folder, capsys, extra, message):  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, *membership(in_folder, *extra))
    assert code == 4, err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_train_fn_that_raises_is_named_in_one_line(in_folder, capsys):  # type: ignore[no-untyped-def]
    args = membership(
        in_folder,
        "--population",
        in_folder["population"],
        "--train-fn",
        "privtrain:broken",
        "--attack",
        "lira-offline",
        "--n-reference",
        "2",
    )
    code, _, err = run(capsys, *args)
    assert code == 4, err
    assert "train_fn raised ValueError: out of memory on purpose" in err
    assert err.count("\n") == 1


def test_a_train_fn_that_returns_a_regressor_is_refused(in_folder, capsys):  # type: ignore[no-untyped-def]
    args = membership(
        in_folder,
        "--population",
        in_folder["population"],
        "--train-fn",
        "privtrain:regressor",
        "--attack",
        "rmia",
        "--n-reference",
        "2",
    )
    code, _, err = run(capsys, *args)
    assert code == 4, err
    assert "train_fn returned a LinearRegression" in err and err.count("\n") == 1


def test_a_population_too_small_for_reference_models_is_refused(in_folder, tmp_path, capsys):  # type: ignore[no-untyped-def]
    small = tmp_path / "small.npz"
    with np.load(in_folder["population"]) as data:
        np.savez(small, x=data["x"][:6], y=data["y"][:6])
    args = membership(
        in_folder, "--population", small, "--train-fn", "privtrain:train", "--attack", "rmia"
    )
    code, _, err = run(capsys, *args)
    assert code == 4, err
    assert "population too small" in err and err.count("\n") == 1


def test_missing_record_files_name_the_flag(in_folder, tmp_path, capsys):  # type: ignore[no-untyped-def]
    args = membership(in_folder)
    args[args.index(in_folder["non-members"])] = tmp_path / "absent.npz"
    code, _, err = run(capsys, *args)
    assert code == 4 and "--non-members" in err and "no such file" in err


def test_members_need_non_members(in_folder, capsys):  # type: ignore[no-untyped-def]
    code, _, err = run(
        capsys,
        "attack",
        "membership",
        "--model",
        in_folder["model"],
        "--members",
        in_folder["members"],
    )
    assert code == 4 and "--non-members" in err


def test_overlapping_members_and_non_members_are_refused(in_folder, capsys):  # type: ignore[no-untyped-def]
    args = membership(in_folder, "-a", "loss")
    args[args.index(in_folder["non-members"])] = in_folder["overlap"]
    code, _, err = run(capsys, *args)
    assert code == 4 and "appear in both members and non_members" in err


def test_malformed_records_are_one_line_errors(in_folder, tmp_path, capsys):  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.full((5, 12), np.nan, np.float32), y=np.zeros(5, int))
    args = membership(in_folder, "-a", "loss")
    args[args.index(in_folder["members"])] = bad
    code, _, err = run(capsys, *args)
    assert code == 4 and "NaN" in err and err.count("\n") == 1


# -- audit ----------------------------------------------------------------------------------


def test_audit_runs_membership_from_flags(in_folder, capsys):  # type: ignore[no-untyped-def]
    code, stdout, err = run(
        capsys,
        "audit",
        "--model",
        in_folder["model"],
        "--members",
        in_folder["members"],
        "--non-members",
        in_folder["non-members"],
        "--population",
        in_folder["population"],
        "--train-fn",
        "privtrain:train",
        "--n-reference",
        "1",
        "--only",
        "ml04.membership",
        "--only",
        "ml03.inversion",
        "-f",
        "json",
        "--fail-on",
        "never",
    )
    assert code == 0, err
    report = json.loads(stdout)
    assert "ml04.membership" in report["checks_run"]
    assert "ml03.inversion" in report["checks_run"]  # black-box inversion of the MLP
    assert report["metrics"]["ml04.membership"]["n_reference"] == 1
    assert {"ml03.inversion", "ml04.membership"} <= {c for c in report["checks_run"]}


def test_audit_plan_privacy_section(in_folder, capsys):  # type: ignore[no-untyped-def]
    plan = in_folder["folder"] / "audit.yaml"
    plan.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            model:
              path: {in_folder["model"]}
            privacy:
              members: members.npz
              non_members: non-members.npz
              attacks: [loss, entropy]
              defences: ["round:1"]
              inversion:
                enabled: false
            """
        )
    )
    code, stdout, err = run(
        capsys, "audit", "--config", plan, "-f", "json", "--fail-on", "never", "--seed", "4"
    )
    assert code == 0, err
    report = json.loads(stdout)
    metrics = report["metrics"]["ml04.membership"]
    assert set(metrics["by_attack"]) == {"loss", "entropy"}
    assert [r["defence"] for r in metrics["defence_results"]] == ["none", "round:1"]
    reasons = {n["check"]: n["reason"] for n in report["not_assessed"]}
    assert "turned off" in reasons["ml03.inversion"]


@pytest.fixture
def label_endpoint(records: dict[str, Path]) -> Iterator[str]:
    """The scikit-learn model behind a loopback endpoint that answers labels only."""
    import joblib

    model = joblib.load(records["model"])

    class Labels(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            x = np.asarray(payload["instances"], dtype=np.float32)
            body = json.dumps({"predictions": model.predict(x).tolist()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Labels)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/labels"
    finally:
        server.shutdown()
        server.server_close()


def label_only_plan(folder: Path, url: str, attacks: str, inversion: str = "false") -> Path:
    plan = folder / "labels.yaml"
    plan.write_text(
        textwrap.dedent(
            f"""\
            model:
              path: {url}
              input_shape: [12]
              n_classes: 2
            privacy:
              members: members.npz
              non_members: non-members.npz
              {attacks}
              inversion:
                enabled: {inversion}
            """
        )
    )
    return plan


def test_score_attacks_against_a_label_only_model_are_a_one_line_error(
    in_folder, label_endpoint, capsys
):  # type: ignore[no-untyped-def]
    plan = label_only_plan(in_folder["folder"], label_endpoint, "attacks: [loss]")
    code, _, err = run(capsys, "audit", "--config", plan)
    assert code == 4, err
    assert "needs probabilities, but the target returns labels only" in err
    assert err.count("\n") == 1


def test_a_label_only_model_gets_the_label_only_attack(in_folder, label_endpoint, capsys):  # type: ignore[no-untyped-def]
    plan = label_only_plan(in_folder["folder"], label_endpoint, "n_exposed: 3", "true")
    code, stdout, err = run(capsys, "audit", "--config", plan, "-f", "json", "--fail-on", "never")
    assert code == 0, err
    report = json.loads(stdout)
    assert set(report["metrics"]["ml04.membership"]["by_attack"]) == {"label-only"}
    reasons = {n["check"]: n["reason"] for n in report["not_assessed"]}
    assert "returns labels only" in reasons["ml03.inversion"]


def test_audit_without_privacy_inputs_marks_both_checks_not_assessed(in_folder, capsys):  # type: ignore[no-untyped-def]
    _, stdout, _ = run(capsys, "audit", "--model", in_folder["model"], "-f", "json")
    reasons = {n["check"]: n["reason"] for n in json.loads(stdout)["not_assessed"]}
    assert reasons["ml04.membership"] == reasons["ml03.inversion"] == "needs privacy"


def test_audit_members_without_non_members_is_a_usage_error(in_folder, capsys):  # type: ignore[no-untyped-def]
    code, _, err = run(
        capsys, "audit", "--model", in_folder["model"], "--members", in_folder["members"]
    )
    assert code == 4 and "non_members" in err


# -- inversion ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory, digits_model) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("inversion-cli")
    model = folder / "digits.pt"
    torch.jit.script(digits_model.model).save(str(model))
    data = folder / "digits-test.npz"
    np.savez(data, x=digits_model.x_test, y=digits_model.y_test)
    return {"model": model, "data": data}


def inversion(cnn: dict[str, Path], *extra: str | os.PathLike[str]) -> list[str | os.PathLike[str]]:
    return ["attack", "inversion", "--model", cnn["model"], "--input-shape", "1,8,8", *extra]


def test_inversion_reconstructs_each_class_and_draws_the_grid(cnn, tmp_path, capsys):  # type: ignore[no-untyped-def]
    args = inversion(
        cnn, "--classes", "0,3", "--steps", "40", "--reference", cnn["data"], "--fail-on", "never"
    )
    code, stdout, err = run(capsys, *args, "-f", "json")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["checks_run"] == ["ml03.inversion"]
    metrics = report["metrics"]["ml03.inversion"]
    assert [c["label"] for c in metrics["classes"]] == [0, 3]
    assert metrics["method"] == "mi-face"
    assert all(c["distance_to_class_mean"] is not None for c in metrics["classes"])
    assert {f["rule"] for f in report["findings"]} <= {"inversion.class-reconstructed"}
    html_file = tmp_path / "r.html"
    assert run(capsys, *args, "-f", "html", "-o", html_file, "-q")[0] == 0
    html = html_file.read_text(encoding="utf-8")
    assert "privacy-inversion-grid-digits-pt" in html and "data:image/png;base64" in html


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--classes", "0,42"), "the model has 10 classes"),
        (("--classes", "zero"), "--classes takes comma-separated whole numbers"),
        (("--method", "telepathy"), "unknown inversion method"),
        (("--steps", "0"), "steps must be >= 1"),
        (("--reference", "absent.npz"), "--reference absent.npz: no such file"),
    ],
)
def test_bad_inversion_flags_are_one_line_usage_errors(cnn, capsys, extra, message):  # type: ignore[no-untyped-def]
    code, _, err = run(capsys, *inversion(cnn, *extra))
    assert code == 4, err
    assert message in err and err.count("\n") == 1
