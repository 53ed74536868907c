"""Tamper detection: every kind of change to a signed model is named with its kind and path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mlwarden.errors import VerificationError
from mlwarden.integrity import Verification, sign, verify
from tests.integrity._builders import SHARD_BYTES, KeyPair, found

METHODS: dict[str, dict[str, Any]] = {
    "files": {"method": "files"},
    "shards": {"method": "shards", "shard_size": SHARD_BYTES},
}


@pytest.fixture(params=sorted(METHODS))
def method(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Sign options for whole-file and sharded manifests."""
    options: dict[str, Any] = METHODS[request.param]
    return options


def _sign(model: Path, keys: dict[str, KeyPair], **options: Any) -> None:
    sign(model, private_key=keys["p256"].private, **options)


def _verify(model: Path, keys: dict[str, KeyPair], **options: Any) -> Verification:
    return verify(model, public_key=keys["p256"].public, **options)


def test_untouched_model_verifies(
    model: Path, keys: dict[str, KeyPair], method: dict[str, Any]
) -> None:
    _sign(model, keys, **method)
    result = _verify(model, keys)
    assert result.ok, result.problems
    assert result.files == (5 if method["method"] == "shards" else 6)  # no shard when empty
    assert result.signer and result.signer.startswith("key ")
    assert (model / "model.sig").is_file()


def test_one_flipped_byte_names_the_file_once(
    model: Path, keys: dict[str, KeyPair], method: dict[str, Any]
) -> None:
    _sign(model, keys, **method)
    data = bytearray((model / "weights.bin").read_bytes())
    data[1500] ^= 0x01
    (model / "weights.bin").write_bytes(bytes(data))
    result = _verify(model, keys)
    assert not result.ok
    assert found(result) == [("modified", "weights.bin")]
    problem = result.problems[0]
    assert problem.expected and problem.actual and problem.expected != problem.actual
    assert "weights.bin was modified" in problem.message


def test_added_file(model: Path, keys: dict[str, KeyPair], method: dict[str, Any]) -> None:
    _sign(model, keys, **method)
    (model / "sub" / "extra.bin").write_bytes(b"not signed")
    assert found(_verify(model, keys)) == [("added", "sub/extra.bin")]


def test_removed_file(model: Path, keys: dict[str, KeyPair], method: dict[str, Any]) -> None:
    _sign(model, keys, **method)
    (model / "config.json").unlink()
    assert found(_verify(model, keys)) == [("removed", "config.json")]


def test_renamed_file(model: Path, keys: dict[str, KeyPair], method: dict[str, Any]) -> None:
    _sign(model, keys, **method)
    (model / "sub" / "deep" / "vocab.txt").rename(model / "vocab-moved.txt")
    result = _verify(model, keys)
    assert found(result) == [("renamed", "vocab-moved.txt")]
    assert result.problems[0].renamed_from == "sub/deep/vocab.txt"


def test_renamed_and_edited_file_is_removed_plus_added(
    model: Path, keys: dict[str, KeyPair]
) -> None:
    _sign(model, keys)
    (model / "config.json").rename(model / "config2.json")
    (model / "config2.json").write_bytes(b"{}")
    assert found(_verify(model, keys)) == [
        ("removed", "config.json"),
        ("added", "config2.json"),
    ]


def test_empty_file_added(model: Path, keys: dict[str, KeyPair]) -> None:
    _sign(model, keys)
    (model / "sub" / "deep" / "new-empty").touch()
    assert found(_verify(model, keys)) == [("added", "sub/deep/new-empty")]


def test_empty_file_emptied(model: Path, keys: dict[str, KeyPair]) -> None:
    _sign(model, keys)
    (model / "config.json").write_bytes(b"")
    assert found(_verify(model, keys)) == [("modified", "config.json")]


def test_every_change_is_named_sorted_by_path(model: Path, keys: dict[str, KeyPair]) -> None:
    _sign(model, keys)
    (model / "config.json").write_bytes(b"{}")
    (model / "empty.txt").unlink()
    (model / "zzz.bin").write_bytes(b"new")
    (model / "sub" / "a.bin").write_bytes(b"new too")
    assert found(_verify(model, keys)) == [
        ("modified", "config.json"),
        ("removed", "empty.txt"),
        ("added", "sub/a.bin"),
        ("added", "zzz.bin"),
    ]


def test_symlink_swapped_to_another_file(model: Path, keys: dict[str, KeyPair]) -> None:
    (model / "current.bin").symlink_to("weights.bin")
    _sign(model, keys, allow_symlinks=True)
    assert _verify(model, keys).ok
    (model / "current.bin").unlink()
    (model / "current.bin").symlink_to("sub/tokenizer.txt")
    assert found(_verify(model, keys)) == [("modified", "current.bin")]


def test_symlink_added_when_links_are_refused(model: Path, keys: dict[str, KeyPair]) -> None:
    _sign(model, keys)
    (model / "sub" / "link.bin").symlink_to("../weights.bin")
    result = _verify(model, keys)
    assert not result.ok
    assert [p.kind for p in result.problems] == ["unreadable"]
    assert "sub/link.bin" in result.problems[0].message
    assert "symbolic link" in result.problems[0].message


def test_file_replaced_by_link_to_identical_content_is_refused(
    model: Path, keys: dict[str, KeyPair], tmp_path: Path
) -> None:
    _sign(model, keys)
    copy = model / "sub" / "copy.json"
    copy.write_bytes((model / "config.json").read_bytes())
    (model / "config.json").unlink()
    (model / "config.json").symlink_to("sub/copy.json")
    result = _verify(model, keys)
    assert [p.kind for p in result.problems] == ["unreadable"]
    assert not result.ok


def test_raise_for_failure_names_the_change(model: Path, keys: dict[str, KeyPair]) -> None:
    _sign(model, keys)
    (model / "config.json").write_bytes(b"{}")
    result = _verify(model, keys)
    with pytest.raises(VerificationError, match=r"config\.json was modified"):
        result.raise_for_failure()
    (model / "config.json").write_bytes(b'{"layers": 2, "hidden": 16}\n')
    _verify(model, keys).raise_for_failure()


def test_ignore_unsigned_skips_added_files_but_not_modified(
    model: Path, keys: dict[str, KeyPair]
) -> None:
    _sign(model, keys)
    (model / "README.md").write_text("notes")
    assert _verify(model, keys, ignore_unsigned=True).ok
    (model / "config.json").write_bytes(b"{}")
    assert found(_verify(model, keys, ignore_unsigned=True)) == [("modified", "config.json")]


def test_ignored_pattern_is_fixed_at_signing_time(model: Path, keys: dict[str, KeyPair]) -> None:
    (model / "train.log").write_text("epoch 1")
    _sign(model, keys, ignore=["*.log"])
    (model / "train.log").write_text("rewritten, still ignored")
    assert _verify(model, keys).ok
    (model / "later.log").write_text("matches the pattern but did not exist when signing")
    assert found(_verify(model, keys)) == [("added", "later.log")]
    assert _verify(model, keys, ignore=["later.log"]).ok


def test_git_metadata_is_ignored_by_default(model: Path, keys: dict[str, KeyPair]) -> None:
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    _sign(model, keys)
    (model / ".git" / "HEAD").write_text("ref: refs/heads/other\n")
    (model / ".gitattributes").write_text("*.bin filter=lfs\n")
    assert _verify(model, keys).ok


def test_signature_outside_the_model(model: Path, keys: dict[str, KeyPair], tmp_path: Path) -> None:
    signature = tmp_path / "elsewhere.sig"
    _sign(model, keys, signature=signature)
    assert not (model / "model.sig").exists()
    assert _verify(model, keys, signature=signature).ok
    (model / "model.sig").write_text("a file named like a signature is part of the model")
    assert found(_verify(model, keys, signature=signature)) == [("added", "model.sig")]


def test_single_file_model(tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(os.urandom(2500))
    _sign(weights, keys, method="shards", shard_size=SHARD_BYTES)
    assert (tmp_path / "model.safetensors.sig").is_file()
    assert _verify(weights, keys).ok
    data = bytearray(weights.read_bytes())
    data[2400] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert found(_verify(weights, keys)) == [("modified", ".")]
