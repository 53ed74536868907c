"""`mlwarden keygen / sign / verify` and `mlwarden.load`: exit codes, reports, clear refusals."""

from __future__ import annotations

import json
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest

import mlwarden
from mlwarden.cli import main
from mlwarden.errors import UsageError, VerificationError
from mlwarden.integrity import generate_key, sign, write_key_pair


def run(capsys: pytest.CaptureFixture[str], *args: str | os.PathLike[str]) -> tuple[int, str, str]:
    code = main([os.fspath(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(os.urandom(4096))
    (folder / "config.json").write_text('{"layers": 2}')
    (folder / "sub" / "tokenizer.json").write_text("{}")
    return folder


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    code, _, err = run(capsys, "keygen", "--out", tmp_path / "signer.pem")
    assert code == 0, err
    return tmp_path / "signer.pem", tmp_path / "signer.pub"


def test_keygen_writes_private_key_owner_only_and_never_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "keygen", "--out", tmp_path / "k.pem", "--curve", "p384")
    assert code == 0
    private = (tmp_path / "k.pem").read_text()
    assert stat.S_IMODE((tmp_path / "k.pem").stat().st_mode) == 0o600
    assert "BEGIN PRIVATE KEY" in private
    assert private.splitlines()[1] not in out + err
    assert "key hint" in err


def test_keygen_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "keygen", "--out", tmp_path / "k.pem")[0] == 0
    before = (tmp_path / "k.pem").read_bytes()
    code, _, err = run(capsys, "keygen", "--out", tmp_path / "k.pem")
    assert code == 4 and "exists" in err
    assert (tmp_path / "k.pem").read_bytes() == before
    assert run(capsys, "keygen", "--out", tmp_path / "k.pem", "--force")[0] == 0
    assert (tmp_path / "k.pem").read_bytes() != before


def test_keygen_encrypts_with_password_from_environment(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    model: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLWARDEN_KEY_PASSWORD", "correct horse")
    assert run(capsys, "keygen", "--out", tmp_path / "k.pem")[0] == 0
    assert "ENCRYPTED" in (tmp_path / "k.pem").read_text()
    assert run(capsys, "sign", model, "--key", tmp_path / "k.pem")[0] == 0
    monkeypatch.setenv("MLWARDEN_KEY_PASSWORD", "wrong")
    code, _, err = run(capsys, "sign", model, "--key", tmp_path / "k.pem")
    assert code == 4 and "wrong password" in err
    monkeypatch.delenv("MLWARDEN_KEY_PASSWORD")
    code, _, err = run(capsys, "sign", model, "--key", tmp_path / "k.pem")
    assert code == 4 and "MLWARDEN_KEY_PASSWORD" in err


def test_sign_then_verify_passes(
    model: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = keys
    code, _, err = run(capsys, "sign", model, "--key", private)
    assert code == 0, err
    assert (model / "model.sig").is_file() and "signed 3 files" in err
    code, out, err = run(capsys, "verify", model, "--key", public)
    assert code == 0, err
    assert out.startswith(f"VERIFIED {model}: 3 files") and "signed by key" in out


def test_verify_names_each_change_and_exits_1(
    model: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = keys
    run(capsys, "sign", model, "--key", private)
    with (model / "weights.bin").open("r+b") as handle:
        handle.write(b"\x00")
    (model / "sub" / "tokenizer.json").rename(model / "sub" / "tok.json")
    (model / "config.json").unlink()
    (model / "extra.py").write_text("import os\n")
    code, out, _ = run(capsys, "verify", model, "--key", public, "--format", "json")
    assert code == 1
    report = json.loads(out)
    rules = {(f["rule"], f["location"]["path"]) for f in report["findings"]}
    assert rules == {
        ("integrity.modified", str(model / "weights.bin")),
        ("integrity.renamed", str(model / "sub" / "tok.json")),
        ("integrity.removed", str(model / "config.json")),
        ("integrity.added", str(model / "extra.py")),
    }
    assert report["verdict"]["status"] == "fail"


def test_verify_with_wrong_key_fails(
    model: Path, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "sign", model, "--key", keys[0])
    run(capsys, "keygen", "--out", tmp_path / "other.pem")
    code, out, _ = run(capsys, "verify", model, "--key", tmp_path / "other.pub", "-f", "json")
    assert code == 1
    assert [f["rule"] for f in json.loads(out)["findings"]] == ["integrity.wrong-key"]


def test_verify_malformed_signature_never_passes_even_with_fail_on_never(
    model: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "sign", model, "--key", keys[0])
    sig = model / "model.sig"
    sig.write_text(sig.read_text()[:100])
    code, out, _ = run(capsys, "verify", model, "--key", keys[1], "-f", "json")
    assert code == 1
    assert [f["rule"] for f in json.loads(out)["findings"]] == ["integrity.malformed-signature"]
    code, out, _ = run(capsys, "verify", model, "--key", keys[1], "--fail-on", "never")
    assert code == 0 and out.startswith(f"NOT VERIFIED {model}: 1 problem")
    assert "integrity.malformed-signature" in out


def test_verify_unreadable_model_is_an_error_not_a_pass(
    model: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "sign", model, "--key", keys[0])
    os.mkfifo(model / "pipe")
    code, out, _ = run(capsys, "verify", model, "--key", keys[1], "--fail-on", "never")
    assert code == 2
    assert out.startswith("NOT VERIFIED") and "ERROR" in out and "pipe" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("verify", "{model}"), "public key"),
        (("verify", "{model}", "--key", "{private}"), "private key"),
        (("verify", "{model}", "--key", "{missing}"), "no such key file"),
        (("sign", "{model}"), "--key"),
        (("verify", "{missing}", "--key", "{public}"), "no such file"),
        (("sign", "{model}", "--key", "{private}", "--method", "blocks"), "unknown method"),
        (("verify", "{model}", "--sigstore-identity", "a@b.c"), "issuer"),
    ],
)
def test_usage_mistakes_exit_4_with_one_line(
    model: Path,
    keys: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    values = {
        "model": str(model),
        "private": str(keys[0]),
        "public": str(keys[1]),
        "missing": str(tmp_path / "missing"),
    }
    code, _, err = run(capsys, *(a.format(**values) for a in args))
    assert code == 4
    assert message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_sign_single_file_writes_signature_beside_it(
    tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "model.onnx"
    weights.write_bytes(b"weights")
    assert run(capsys, "sign", weights, "--key", keys[0])[0] == 0
    assert (tmp_path / "model.onnx.sig").is_file()
    assert run(capsys, "verify", weights, "--key", keys[1])[0] == 0
    weights.write_bytes(b"Weights")
    assert run(capsys, "verify", weights, "--key", keys[1])[0] == 1


def test_verify_console_lists_each_problem_and_summarises_a_report_file(
    model: Path, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "sign", model, "--key", keys[0])
    (model / "config.json").write_text("{}")
    (model / "extra.bin").write_bytes(b"x")
    code, out, _ = run(capsys, "verify", model, "--key", keys[1])
    assert code == 1
    lines = out.strip().splitlines()
    assert lines[0] == f"NOT VERIFIED {model}: 2 problems"
    assert lines[1].split()[:2] == ["CRITICAL", "integrity.modified"]
    assert lines[2].split()[:2] == ["HIGH", "integrity.added"]
    code, out, err = run(
        capsys, "verify", model, "--key", keys[1], "-f", "html", "-o", tmp_path / "v.html"
    )
    assert code == 1 and out == ""
    assert err.strip() == f"mlwarden: NOT VERIFIED {model}: 2 problems; report written to " + str(
        tmp_path / "v.html"
    )


def test_verify_writes_sarif_report(
    model: Path, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "sign", model, "--key", keys[0])
    (model / "config.json").write_text("{}")
    out = tmp_path / "verify.sarif"
    code, _, _ = run(capsys, "verify", model, "--key", keys[1], "-f", "sarif", "-o", out)
    assert code == 1
    results = json.loads(out.read_text())["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["integrity.modified"]


# -- mlwarden.load ------------------------------------------------------------------------------


@pytest.fixture
def signer(tmp_path: Path) -> tuple[Path, Path]:
    return write_key_pair(generate_key(), tmp_path / "k.pem")


def test_load_returns_verified_safetensors(tmp_path: Path, signer: tuple[Path, Path]) -> None:
    from safetensors.numpy import save_file

    folder = tmp_path / "m"
    folder.mkdir()
    save_file({"w": np.arange(4, dtype=np.float32)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text("{}")
    sign(folder, private_key=signer[0])
    tensors = mlwarden.load(folder, key=signer[1])
    np.testing.assert_array_equal(tensors["w"], np.arange(4, dtype=np.float32))


def test_load_refuses_tampered_model(tmp_path: Path, signer: tuple[Path, Path]) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "model.safetensors"
    save_file({"w": np.zeros(4, dtype=np.float32)}, str(path))
    sign(path, private_key=signer[0])
    save_file({"w": np.ones(4, dtype=np.float32)}, str(path))
    with pytest.raises(VerificationError, match="modified"):
        mlwarden.load(path, key=signer[1])


def test_load_refuses_signed_malicious_checkpoint_without_running_it(
    tmp_path: Path, signer: tuple[Path, Path]
) -> None:
    torch = pytest.importorskip("torch")
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    folder = tmp_path / "ckpt"
    folder.mkdir()
    torch.save({"w": Payload()}, folder / "model.pt")
    sign(folder, private_key=signer[0])
    with pytest.raises(UsageError, match="refuses to load"):
        mlwarden.load(folder, key=signer[1])
    assert not marker.exists()


def test_load_refuses_pickle_even_when_signed(tmp_path: Path, signer: tuple[Path, Path]) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    sign(path, private_key=signer[0])
    with pytest.raises(UsageError, match="not that loading it is harmless"):
        mlwarden.load(path, key=signer[1])


def test_load_torch_state_dict_with_weights_only(tmp_path: Path, signer: tuple[Path, Path]) -> None:
    torch = pytest.importorskip("torch")
    folder = tmp_path / "ckpt"
    folder.mkdir()
    torch.save({"w": torch.ones(3)}, folder / "model.pt")
    (folder / "notes.txt").write_text("trained on digits")
    sign(folder, private_key=signer[0], method="shards", shard_size=64)
    state = mlwarden.load(folder, key=signer[1])
    assert torch.equal(state["w"], torch.ones(3))


def test_load_refuses_file_swapped_after_verification(
    tmp_path: Path, signer: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.numpy import save_file

    from mlwarden.integrity import loading

    path = tmp_path / "model.safetensors"
    save_file({"w": np.zeros(2, dtype=np.float32)}, str(path))
    sign(path, private_key=signer[0])
    real_verify = loading.verify

    def verify_then_swap(*args: object, **kwargs: object) -> object:
        result = real_verify(*args, **kwargs)  # type: ignore[arg-type]
        save_file({"w": np.ones(2, dtype=np.float32)}, str(path))
        return result

    monkeypatch.setattr(loading, "verify", verify_then_swap)
    with pytest.raises(VerificationError, match="changed after it was verified"):
        mlwarden.load(path, key=signer[1])


def test_load_asks_which_file_when_several_are_loadable(
    tmp_path: Path, signer: tuple[Path, Path]
) -> None:
    from safetensors.numpy import save_file

    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("a.safetensors", "b.safetensors"):
        save_file({"w": np.zeros(1, dtype=np.float32)}, str(folder / name))
    sign(folder, private_key=signer[0])
    with pytest.raises(UsageError, match="several loadable files"):
        mlwarden.load(folder, key=signer[1])
    assert set(mlwarden.load(folder, key=signer[1], file="b.safetensors")) == {"w"}
    with pytest.raises(UsageError, match="not a signed file"):
        mlwarden.load(folder, key=signer[1], file="c.safetensors")


# -- Sigstore keyless (delegated to model-signing; the network is never reached in tests) -------


def test_sigstore_with_a_key_is_a_usage_error(
    model: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "sign", model, "--sigstore", "--key", keys[0])
    assert code == 4 and "without a key" in err


def test_sigstore_without_model_signing_names_the_package(
    model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "model_signing", None)  # import fails as if absent
    code, _, err = run(capsys, "sign", model, "--sigstore")
    assert code == 4 and "pip install model-signing" in err and "network" in err
    assert not (model / "model.sig").exists()


def test_sigstore_verification_failure_is_a_finding_never_a_pass(
    model: Path,
    keys: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from model_signing._signing import sign_sigstore

    def unreachable(*args: object, **kwargs: object) -> None:
        raise ConnectionError("no route to the Sigstore trust root")

    monkeypatch.setattr(sign_sigstore, "Verifier", unreachable)
    run(capsys, "sign", model, "--key", keys[0])
    code, out, _ = run(
        capsys,
        "verify",
        model,
        "--sigstore-identity",
        "ml@example.com",
        "--sigstore-issuer",
        "https://accounts.example.com",
        "-f",
        "json",
    )
    assert code == 1
    findings = json.loads(out)["findings"]
    assert [f["rule"] for f in findings] == ["integrity.bad-signature"]
    assert "Sigstore verification failed" in findings[0]["detail"]


def test_keyless_bundle_verified_with_a_key_is_unsupported(
    model: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "sign", model, "--key", keys[0])
    bundle = json.loads((model / "model.sig").read_text())
    bundle["verificationMaterial"] = {"certificate": {"rawBytes": "MIIB"}, "tlogEntries": []}
    (model / "model.sig").write_text(json.dumps(bundle))
    code, out, _ = run(capsys, "verify", model, "--key", keys[1], "-f", "json")
    assert code == 1
    assert [f["rule"] for f in json.loads(out)["findings"]] == ["integrity.unsupported-signature"]
