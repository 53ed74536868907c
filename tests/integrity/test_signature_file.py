"""A signature that is not exactly what the signer wrote never verifies, and says why.

Wrong keys, edited signatures or payloads, truncated or malformed bundles and statements that
contradict themselves each give one problem of a precise kind, and no manifest is trusted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from mlwarden.integrity import sign, verify
from mlwarden.integrity.envelope import MAX_SIGNATURE_BYTES
from tests.integrity._builders import (
    KeyPair,
    TinyCA,
    found,
    load_json,
    replace_payload,
    resign,
    resign_statement,
    root_digest,
    save_json,
    statement_of,
)


@pytest.fixture
def signed(model: Path, keys: dict[str, KeyPair]) -> Path:
    """The test model signed with the P-256 key; returns the signature path."""
    return sign(model, private_key=keys["p256"].private).signature


def _only_problem(model: Path, public_key: Path) -> tuple[str, str]:
    result = verify(model, public_key=public_key)
    assert not result.ok
    assert result.manifest is None, "nothing from an unverified signature may be trusted"
    assert len(result.problems) == 1, result.problems
    return result.problems[0].kind, result.problems[0].message


def test_signature_by_another_key_is_wrong_key(
    model: Path, signed: Path, other_key: KeyPair
) -> None:
    kind, message = _only_problem(model, other_key.public)
    assert kind == "wrong-key"
    assert "another key" in message


def test_key_of_another_curve_is_wrong_key(
    model: Path, signed: Path, keys: dict[str, KeyPair]
) -> None:
    kind, _ = _only_problem(model, keys["p384"].public)
    assert kind == "wrong-key"


def test_another_key_without_hint_is_bad_signature(
    model: Path, signed: Path, other_key: KeyPair
) -> None:
    bundle = load_json(signed)
    del bundle["verificationMaterial"]["publicKey"]["hint"]
    save_json(signed, bundle)
    kind, _ = _only_problem(model, other_key.public)
    assert kind == "bad-signature"


def test_hint_is_not_trusted_alone(
    model: Path, signed: Path, keys: dict[str, KeyPair], other_key: KeyPair
) -> None:
    """A bundle signed by another key but carrying our key's hint still fails."""
    bundle = load_json(signed)
    hint = bundle["verificationMaterial"]["publicKey"]["hint"]
    resign(signed, base64.b64decode(bundle["dsseEnvelope"]["payload"]), other_key.key)
    forged = load_json(signed)
    forged["verificationMaterial"]["publicKey"]["hint"] = hint
    save_json(signed, forged)
    kind, _ = _only_problem(model, keys["p256"].public)
    assert kind == "bad-signature"


def test_one_character_of_the_signature_changed(
    model: Path, signed: Path, keys: dict[str, KeyPair]
) -> None:
    bundle = load_json(signed)
    sig = bundle["dsseEnvelope"]["signatures"][0]["sig"]
    position = len(sig) // 2
    replacement = "A" if sig[position] != "A" else "B"
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = (
        sig[:position] + replacement + sig[position + 1 :]
    )
    save_json(signed, bundle)
    kind, message = _only_problem(model, keys["p256"].public)
    assert kind == "bad-signature"
    assert "edited" in message


def test_payload_edited_signature_untouched(
    model: Path, signed: Path, keys: dict[str, KeyPair]
) -> None:
    """The attacker rewrites a digest (and the subject, to stay consistent) without the key."""
    (model / "weights.bin").write_bytes(b"a swapped model")
    statement = statement_of(signed)
    for resource in statement["predicate"]["resources"]:
        if resource["name"] == "weights.bin":
            resource["digest"] = hashlib.sha256(b"a swapped model").hexdigest()
    statement["subject"][0]["digest"]["sha256"] = root_digest(statement["predicate"]["resources"])
    replace_payload(signed, statement)
    kind, _ = _only_problem(model, keys["p256"].public)
    assert kind == "bad-signature"


def test_signature_over_the_payload_of_a_legitimate_other_model(
    model: Path, signed: Path, keys: dict[str, KeyPair], tmp_path: Path
) -> None:
    """Swapping in another signed model's whole bundle names the differing files instead."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "weights.bin").write_bytes(b"another model")
    other_sig = sign(other, private_key=keys["p256"].private).signature
    signed.write_bytes(other_sig.read_bytes())
    result = verify(model, public_key=keys["p256"].public)
    assert not result.ok
    assert ("modified", "weights.bin") in found(result)


# -- malformed bundles --------------------------------------------------------------------------


def _edit_bundle(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(signature: Path) -> None:
        bundle = load_json(signature)
        edit(bundle)
        save_json(signature, bundle)

    return apply


def _truncate(signature: Path) -> None:
    data = signature.read_bytes()
    signature.write_bytes(data[: len(data) // 2])


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    keys = path.split(".")

    def edit(bundle: dict[str, Any]) -> None:
        target: Any = bundle
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[keys[-1]] = value

    return edit


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    keys = path.split(".")

    def edit(bundle: dict[str, Any]) -> None:
        target: Any = bundle
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return edit


MALFORMED: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncate, "not JSON"),
    "empty file": (lambda s: s.write_bytes(b""), "not JSON"),
    "not JSON": (lambda s: s.write_bytes(b"\x00\xff binary garbage"), "not JSON"),
    "JSON but a list": (lambda s: s.write_text("[1, 2]"), "expected a JSON object"),
    "wrong media type": (
        _edit_bundle(_set("mediaType", "application/json")),
        "not a Sigstore bundle",
    ),
    "no envelope": (_edit_bundle(_delete("dsseEnvelope")), "dsseEnvelope"),
    "wrong payload type": (
        _edit_bundle(_set("dsseEnvelope.payloadType", "text/plain")),
        "payload type",
    ),
    "empty signatures list": (
        _edit_bundle(_set("dsseEnvelope.signatures", [])),
        "holds no signature",
    ),
    "invalid base64 signature": (
        _edit_bundle(_set("dsseEnvelope.signatures.0.sig", "not*base64!")),
        "invalid base64",
    ),
    "invalid base64 payload": (
        _edit_bundle(_set("dsseEnvelope.payload", "%%%%")),
        "invalid base64",
    ),
    "no verification material": (
        _edit_bundle(_set("verificationMaterial", {"tlogEntries": []})),
        "no verification material",
    ),
    "hint not a string": (
        _edit_bundle(_set("verificationMaterial.publicKey.hint", 42)),
        "hint must be a string",
    ),
}


@pytest.mark.parametrize("damage", sorted(MALFORMED))
def test_malformed_bundle(model: Path, signed: Path, keys: dict[str, KeyPair], damage: str) -> None:
    edit, says = MALFORMED[damage]
    edit(signed)
    kind, message = _only_problem(model, keys["p256"].public)
    assert kind == "malformed-signature"
    assert says in message


def _drop_first_resource(statement: dict[str, Any]) -> None:
    statement["predicate"]["resources"].pop(0)


def _rename_first(name: str) -> Callable[[dict[str, Any]], None]:
    def edit(statement: dict[str, Any]) -> None:
        statement["predicate"]["resources"][0]["name"] = name

    return edit


def _duplicate_first(statement: dict[str, Any]) -> None:
    resources = statement["predicate"]["resources"]
    resources.append(dict(resources[0]))


SELF_CONTRADICTING: dict[str, tuple[Callable[[dict[str, Any]], None], bool, str]] = {
    # name: (edit, recompute the subject digest, message fragment)
    "resources do not hash to the subject": (_drop_first_resource, False, "subject digest"),
    "parent folder in a name": (_rename_first("../outside.bin"), True, "leaves the model"),
    "nested parent folder": (_rename_first("sub/../../etc/passwd"), True, "leaves the model"),
    "absolute name": (_rename_first("/etc/passwd"), True, "leaves the model"),
    "NUL byte in a name": (_rename_first("weights\x00.bin"), True, "leaves the model"),
    "resource twice": (_duplicate_first, True, "twice"),
    "digest not hex": (
        lambda s: s["predicate"]["resources"][0].update(digest="zz" * 32),
        False,
        "not hex",
    ),
    "wrong predicate type": (
        lambda s: s.update(predicateType="https://example.org/other"),
        True,
        "predicate type",
    ),
    "unknown method": (
        lambda s: s["predicate"]["serialization"].update(method="tensors"),
        True,
        "unknown method",
    ),
    "shards without size": (
        lambda s: s["predicate"]["serialization"].update(method="shards"),
        True,
        "shard_size",
    ),
    "two subjects": (lambda s: s["subject"].append(s["subject"][0]), True, "one subject"),
    "no resources list": (lambda s: s["predicate"].pop("resources"), False, "no resources"),
}


@pytest.mark.parametrize("contradiction", sorted(SELF_CONTRADICTING))
def test_validly_signed_but_inconsistent_statement(
    model: Path, signed: Path, keys: dict[str, KeyPair], contradiction: str
) -> None:
    """Re-signed with the right key, so only the statement check can catch it."""
    edit, fix_subject, says = SELF_CONTRADICTING[contradiction]
    resign_statement(signed, keys["p256"].key, edit, fix_subject=fix_subject)
    kind, message = _only_problem(model, keys["p256"].public)
    assert kind == "malformed-signature"
    assert says in message


def test_signed_payload_that_is_not_json(
    model: Path, signed: Path, keys: dict[str, KeyPair]
) -> None:
    resign(signed, b"\x00 not a statement", keys["p256"].key)
    kind, message = _only_problem(model, keys["p256"].public)
    assert kind == "malformed-signature"
    assert "not JSON" in message


def test_huge_signature_file_is_refused_unread(
    model: Path, signed: Path, keys: dict[str, KeyPair]
) -> None:
    os.truncate(signed, MAX_SIGNATURE_BYTES + 1)  # sparse: costs no disk
    kind, message = _only_problem(model, keys["p256"].public)
    assert kind == "malformed-signature"
    assert "too large" in message


def test_missing_signature_file(model: Path, keys: dict[str, KeyPair]) -> None:
    kind, message = _only_problem(model, keys["p256"].public)
    assert kind == "malformed-signature"
    assert "no such signature file" in message


def test_signature_path_is_a_folder(model: Path, keys: dict[str, KeyPair], tmp_path: Path) -> None:
    result = verify(model, public_key=keys["p256"].public, signature=tmp_path)
    assert found(result) == [("malformed-signature", None)]


def test_certificate_bundle_checked_with_a_key_is_wrong_key(
    model: Path, ca: TinyCA, keys: dict[str, KeyPair]
) -> None:
    sign(model, private_key=ca.leaf_key_pem, certificate=ca.leaf_pem)
    kind, message = _only_problem(model, keys["p256"].public)
    assert kind == "wrong-key"
    assert "--cert-chain" in message


def test_key_bundle_checked_with_roots_is_wrong_key(model: Path, signed: Path, ca: TinyCA) -> None:
    result = verify(model, certificate_chain=[ca.root_pem])
    assert found(result) == [("wrong-key", None)]


def test_keyless_bundle_is_unsupported_without_identity(
    model: Path, signed: Path, keys: dict[str, KeyPair], ca: TinyCA
) -> None:
    bundle = load_json(signed)
    der = ca.leaf.public_bytes(serialization.Encoding.DER)
    bundle["verificationMaterial"] = {
        "certificate": {"rawBytes": base64.b64encode(der).decode()},
        "tlogEntries": [],
    }
    save_json(signed, bundle)
    kind, message = _only_problem(model, keys["p256"].public)
    assert kind == "unsupported"
    assert "--sigstore-identity" in message


def test_signature_json_is_the_model_signing_layout(signed: Path) -> None:
    bundle = json.loads(signed.read_text())
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    statement = statement_of(signed)
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    assert statement["predicate"]["serialization"]["ignore_paths"][-1] == "model.sig"
    names = [r["name"] for r in statement["predicate"]["resources"]]
    assert "model.sig" not in names
    assert statement["subject"][0]["digest"]["sha256"] == root_digest(
        statement["predicate"]["resources"]
    )


def _as_v01(statement: dict[str, Any]) -> None:
    """Rewrite a v1.0 statement as the older v0.1 layout: one subject per file."""
    resources = statement.pop("predicate")["resources"]
    statement["predicateType"] = "https://model_signing/Digests/v0.1"
    statement["subject"] = [
        {"name": r["name"], "digest": {"sha256": r["digest"]}} for r in resources
    ]
    statement["predicate"] = {"unused": "0.1"}


def test_older_v01_statements_still_verify(
    model: Path, signed: Path, keys: dict[str, KeyPair]
) -> None:
    resign_statement(signed, keys["p256"].key, _as_v01, fix_subject=False)
    assert verify(model, public_key=keys["p256"].public).ok
    (model / "config.json").write_bytes(b"{}")
    assert found(verify(model, public_key=keys["p256"].public)) == [("modified", "config.json")]


def test_v01_statement_naming_a_path_outside_is_malformed(
    model: Path, signed: Path, keys: dict[str, KeyPair]
) -> None:
    def escape(statement: dict[str, Any]) -> None:
        _as_v01(statement)
        statement["subject"][0]["name"] = "../../etc/passwd"

    resign_statement(signed, keys["p256"].key, escape, fix_subject=False)
    kind, message = _only_problem(model, keys["p256"].public)
    assert kind == "malformed-signature"
    assert "leaves the model" in message
