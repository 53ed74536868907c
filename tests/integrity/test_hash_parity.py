"""`hash_model` computes exactly the manifest `model_signing.hashing` computes: same resource
names, algorithms, digests and order (the order fixes the statement's subject digest), for every
method and hash type, on fixed and on random folders.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlwarden.integrity import Serialization, hash_model
from mlwarden.integrity.manifest import default_serialization
from tests.integrity._builders import MODEL_FILES, SHARD_BYTES, build_model

model_signing = pytest.importorskip("model_signing")

SETTINGS: dict[str, dict[str, Any]] = {
    "files-sha256": {"method": "files", "hash_type": "sha256"},
    "shards-sha256": {"method": "shards", "hash_type": "sha256", "shard_size": SHARD_BYTES},
    "files-blake2": {"method": "files", "hash_type": "blake2"},
    "shards-blake2": {"method": "shards", "hash_type": "blake2", "shard_size": SHARD_BYTES},
    "files-blake3": {"method": "files", "hash_type": "blake3"},
    "shards-blake3": {"method": "shards", "hash_type": "blake3", "shard_size": SHARD_BYTES},
}


def theirs(model: Path, setting: dict[str, Any], **options: Any) -> list[tuple[str, str, str]]:
    """model-signing's manifest as (name, algorithm, hex digest), in its order."""
    config = model_signing.hashing.Config()
    if setting["method"] == "shards":
        config = config.use_shard_serialization(
            hashing_algorithm=setting["hash_type"], shard_size=setting["shard_size"]
        )
    else:
        config = config.use_file_serialization(hashing_algorithm=setting["hash_type"])
    if options.get("allow_symlinks"):
        config = config.set_allow_symlinks(True)
    if "ignore" in options:
        config = config.set_ignored_paths(paths=options["ignore"])
    return [
        (d.identifier, d.digest.algorithm, d.digest.digest_hex)
        for d in config.hash(model).resource_descriptors()
    ]


def ours(model: Path, setting: dict[str, Any], **options: Any) -> list[tuple[str, str, str]]:
    serialization = default_serialization(
        method=setting["method"],
        hash_type=setting["hash_type"],
        shard_size=setting.get("shard_size", SHARD_BYTES),
        allow_symlinks=options.get("allow_symlinks", False),
        ignore=options.get("ignore", ()),
        model=model,
    )
    return [(r.name, r.algorithm, r.digest) for r in hash_model(model, serialization).resources]


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_same_manifest_as_model_signing(model: Path, setting: str) -> None:
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (model / ".gitignore").write_text("*.log\n")
    (model / ".hidden").write_bytes(b"hidden files are part of the model")
    (model / "a-b").write_bytes(b"sorts after the folder a/ by components")
    (model / "a").mkdir()
    (model / "a" / "b").write_bytes(b"x" * 2500)
    expected = theirs(model, SETTINGS[setting])
    assert ours(model, SETTINGS[setting]) == expected
    names = [name.split(":")[0] for name, _, _ in expected]
    assert ".gitignore" not in names and ".git/HEAD" not in names
    assert names.index("a/b") < names.index("a-b")


@pytest.mark.parametrize("setting", ["files-sha256", "shards-blake2"])
def test_same_manifest_with_links_and_ignored_paths(model: Path, setting: str) -> None:
    (model / "current.bin").symlink_to("weights.bin")
    (model / "logs").mkdir()
    (model / "logs" / "run.txt").write_text("ignored")
    options = {"allow_symlinks": True, "ignore": ["logs", "config.json"]}
    assert ours(model, SETTINGS[setting], **options) == theirs(model, SETTINGS[setting], **options)


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_same_manifest_for_a_single_file(model: Path, setting: str) -> None:
    weights = model / "weights.bin"
    assert ours(weights, SETTINGS[setting]) == theirs(weights, SETTINGS[setting])


def test_sharded_manifest_has_no_resource_for_an_empty_file(model: Path) -> None:
    """As in model-signing: an empty file has no shard, so shards cannot see empty files."""
    names = [name for name, _, _ in ours(model, SETTINGS["shards-sha256"])]
    assert not any(name.startswith("empty.txt") for name in names)
    assert "empty.txt" in [name for name, _, _ in ours(model, SETTINGS["files-sha256"])]


def test_resource_paths_of_shards(model: Path) -> None:
    manifest = hash_model(model, Serialization("shards", shard_size=SHARD_BYTES))
    weights = [r for r in manifest.resources if r.path == "weights.bin"]
    assert [r.name for r in weights] == [
        "weights.bin:0:1000",
        "weights.bin:1000:2000",
        "weights.bin:2000:3000",
    ]
    assert manifest.total_bytes == sum(len(data) for data in MODEL_FILES.values())


def test_digests_do_not_depend_on_the_number_of_workers(model: Path) -> None:
    serialization = Serialization("shards", shard_size=SHARD_BYTES)
    one = hash_model(model, serialization, workers=1)
    many = hash_model(model, serialization, workers=8)
    assert one.resources == many.resources
    assert one.root_digest() == many.root_digest()


def test_predicate_from_model_signing_reads_back() -> None:
    """model-signing writes ``blake2b`` and shard sizes as floats; both must read back."""
    predicate = {
        "method": "shards",
        "hash_type": "blake2b",
        "shard_size": 1000.0,
        "allow_symlinks": False,
    }
    serialization = Serialization.from_predicate(predicate)
    assert serialization == Serialization("shards", "blake2", False, (), 1000)
    assert serialization.algorithm == "blake2b-sharded-1000"
    with pytest.raises(ValueError, match="shard_size"):
        Serialization.from_predicate({**predicate, "shard_size": 1000.5})


# -- random folders ------------------------------------------------------------------------------

NAME = st.text(alphabet=st.sampled_from("abcXYZ019-_. äé名"), min_size=1, max_size=8).filter(
    lambda n: n not in (".", "..") and not n.startswith(".git")
)
TREE = st.dictionaries(
    keys=st.lists(NAME, min_size=1, max_size=3).map(tuple),
    values=st.integers(min_value=0, max_value=2500),
    min_size=1,
    max_size=8,
)


def _write_tree(root: Path, tree: dict[tuple[str, ...], int], seed: int) -> int:
    """Write the files that fit (a name cannot be both a file and a folder); how many."""
    rng = random.Random(seed)
    written = 0
    for parts, size in sorted(tree.items()):
        path = root.joinpath(*parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                continue
            path.write_bytes(rng.randbytes(size))
            written += 1
        except (FileExistsError, NotADirectoryError):
            continue
    return written


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tree=TREE,
    seed=st.integers(0, 2**16),
    setting=st.sampled_from(["files-sha256", "shards-sha256", "shards-blake2"]),
    shard_size=st.integers(min_value=7, max_value=3000),
)
def test_random_folders_hash_like_model_signing(
    tree: dict[tuple[str, ...], int], seed: int, setting: str, shard_size: int
) -> None:
    chosen = {**SETTINGS[setting]}
    if chosen["method"] == "shards":
        chosen["shard_size"] = shard_size
    with tempfile.TemporaryDirectory() as temp:
        root = build_model(Path(temp) / "model", {})
        if not _write_tree(root, tree, seed):
            return
        assert ours(root, chosen) == theirs(root, chosen)
