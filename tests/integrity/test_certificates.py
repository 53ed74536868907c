"""Certificate-based signatures: the chain must end at a trusted root, every issuer must be a
CA valid at signing time, and the signing certificate must be allowed to sign.

Every chain refused here is also refused by model-signing (checked side by side), so mlwarden is
never more lenient than the reference implementation on these cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from mlwarden.errors import UsageError
from mlwarden.integrity import sign, verify
from tests.integrity._builders import (
    CA_USAGE,
    DAY,
    ENCIPHER_USAGE,
    NOW,
    SIGNING_USAGE,
    KeyPair,
    TinyCA,
    found,
    load_json,
    make_certificate,
    save_json,
    write_pem,
    write_private_key,
)

model_signing = pytest.importorskip("model_signing")


def test_certificate_signature_verifies_against_the_root(model: Path, ca: TinyCA) -> None:
    result = sign(
        model,
        private_key=ca.leaf_key_pem,
        certificate=ca.leaf_pem,
        certificate_chain=[ca.intermediate_pem],
    )
    assert result.signer == "CN=model signer"
    verified = verify(model, certificate_chain=[ca.root_pem])
    assert verified.ok, verified.problems
    assert verified.signer == "CN=model signer"


def test_tampering_is_still_named_under_a_certificate(model: Path, ca: TinyCA) -> None:
    sign(
        model,
        private_key=ca.leaf_key_pem,
        certificate=ca.leaf_pem,
        certificate_chain=[ca.intermediate_pem],
    )
    (model / "config.json").write_bytes(b"{}")
    assert found(verify(model, certificate_chain=[ca.root_pem])) == [("modified", "config.json")]


def test_leaf_swapped_for_another_valid_certificate_is_bad_signature(
    model: Path, ca: TinyCA
) -> None:
    """A certificate from the same CA for someone else does not make their signature ours."""
    import base64

    from cryptography.hazmat.primitives import serialization

    signature = sign(
        model,
        private_key=ca.leaf_key_pem,
        certificate=ca.leaf_pem,
        certificate_chain=[ca.intermediate_pem],
    ).signature
    impostor = make_certificate(
        "model signer",
        ec.generate_private_key(ec.SECP256R1()),
        issuer=ca.intermediate,
        issuer_key=ca.intermediate_key,
    )
    bundle = load_json(signature)
    chain = bundle["verificationMaterial"]["x509CertificateChain"]["certificates"]
    chain[0]["rawBytes"] = base64.b64encode(
        impostor.public_bytes(serialization.Encoding.DER)
    ).decode()
    save_json(signature, bundle)
    assert found(verify(model, certificate_chain=[ca.root_pem])) == [("bad-signature", None)]


def test_signing_certificate_must_match_the_key(
    model: Path, ca: TinyCA, keys: dict[str, KeyPair]
) -> None:
    with pytest.raises(UsageError, match="does not belong to the private key"):
        sign(model, private_key=keys["p256"].private, certificate=ca.leaf_pem)


def test_chain_without_signing_certificate_is_a_usage_error(model: Path, ca: TinyCA) -> None:
    with pytest.raises(UsageError, match="needs the signing certificate"):
        sign(model, private_key=ca.leaf_key_pem, certificate_chain=[ca.intermediate_pem])


def test_unreadable_root_file_is_a_usage_error(model: Path, ca: TinyCA, tmp_path: Path) -> None:
    sign(model, private_key=ca.leaf_key_pem, certificate=ca.leaf_pem)
    (tmp_path / "roots.pem").write_text("not a certificate")
    with pytest.raises(UsageError, match="not a PEM certificate"):
        verify(model, certificate_chain=[tmp_path / "roots.pem"])
    with pytest.raises(UsageError, match="no such certificate file"):
        verify(model, certificate_chain=[tmp_path / "missing.pem"])


# -- chains both implementations refuse ---------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    """A signing certificate and key, the certificates embedded with it, the trusted roots."""

    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    embedded: tuple[x509.Certificate, ...]
    roots: tuple[x509.Certificate, ...]


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _untrusted_root(ca: TinyCA) -> Chain:
    other_root_key = _new_key()
    other_root = make_certificate(
        "someone else's root", other_root_key, ca=True, key_usage=CA_USAGE, not_before=NOW - DAY
    )
    return Chain(ca.leaf, ca.leaf_key, (ca.intermediate,), (other_root,))


def _leaf_without_signing_usage(ca: TinyCA) -> Chain:
    key = _new_key()
    leaf = make_certificate(
        "encryption only",
        key,
        issuer=ca.intermediate,
        issuer_key=ca.intermediate_key,
        key_usage=ENCIPHER_USAGE,
    )
    return Chain(leaf, key, (ca.intermediate,), (ca.root,))


def _leaf_without_any_usage(ca: TinyCA) -> Chain:
    key = _new_key()
    leaf = make_certificate(
        "no usage", key, issuer=ca.intermediate, issuer_key=ca.intermediate_key, key_usage=None
    )
    return Chain(leaf, key, (ca.intermediate,), (ca.root,))


def _intermediate(
    authority: TinyCA, /, **options: object
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    settings: dict[str, object] = {"ca": True, "key_usage": CA_USAGE, "not_before": NOW - 5 * DAY}
    settings.update(options)
    certificate = make_certificate(
        "intermediate",
        key,
        issuer=authority.root,
        issuer_key=authority.root_key,
        **settings,  # type: ignore[arg-type]
    )
    return certificate, key


def _leaf_under(
    ca: TinyCA, intermediate: x509.Certificate, intermediate_key: ec.EllipticCurvePrivateKey
) -> Chain:
    key = _new_key()
    leaf = make_certificate("signer", key, issuer=intermediate, issuer_key=intermediate_key)
    return Chain(leaf, key, (intermediate,), (ca.root,))


def _intermediate_not_a_ca(ca: TinyCA) -> Chain:
    return _leaf_under(ca, *_intermediate(ca, ca=False))


def _intermediate_without_basic_constraints(ca: TinyCA) -> Chain:
    return _leaf_under(ca, *_intermediate(ca, ca=None))


def _intermediate_expired_before_the_leaf(ca: TinyCA) -> Chain:
    return _leaf_under(ca, *_intermediate(ca, not_before=NOW - 9 * DAY, not_after=NOW - 3 * DAY))


def _root_not_yet_valid_at_signing(ca: TinyCA) -> Chain:
    root_key = _new_key()
    root = make_certificate(
        "late root",
        root_key,
        ca=True,
        key_usage=CA_USAGE,
        not_before=NOW + DAY,
        not_after=NOW + 90 * DAY,
    )
    key = _new_key()
    leaf = make_certificate("signer", key, issuer=root, issuer_key=root_key, not_before=NOW - DAY)
    return Chain(leaf, key, (), (root,))


def _intermediate_missing(ca: TinyCA) -> Chain:
    return Chain(ca.leaf, ca.leaf_key, (), (ca.root,))


def _self_signed_leaf(ca: TinyCA) -> Chain:
    key = _new_key()
    leaf = make_certificate("self", key, issuer=None, issuer_key=None, key_usage=SIGNING_USAGE)
    return Chain(leaf, key, (), (ca.root,))


BAD_CHAINS: dict[str, Callable[[TinyCA], Chain]] = {
    "untrusted root": _untrusted_root,
    "leaf without signing key usage": _leaf_without_signing_usage,
    "leaf without any key usage": _leaf_without_any_usage,
    "intermediate not a CA": _intermediate_not_a_ca,
    "intermediate without basic constraints": _intermediate_without_basic_constraints,
    "intermediate expired when the leaf was issued": _intermediate_expired_before_the_leaf,
    "root not yet valid when the leaf was issued": _root_not_yet_valid_at_signing,
    "intermediate neither embedded nor trusted": _intermediate_missing,
    "self-signed leaf": _self_signed_leaf,
}


def _write_chain(chain: Chain, folder: Path) -> tuple[Path, Path, list[Path], list[Path]]:
    folder.mkdir()
    leaf = write_pem(folder / "leaf.pem", chain.leaf)
    key = write_private_key(folder / "leaf.key", chain.leaf_key)
    embedded = [write_pem(folder / f"chain{i}.pem", c) for i, c in enumerate(chain.embedded)]
    roots = [write_pem(folder / f"root{i}.pem", c) for i, c in enumerate(chain.roots)]
    return leaf, key, embedded, roots


@pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")
@pytest.mark.parametrize("case", sorted(BAD_CHAINS))
def test_bad_chain_is_untrusted_here_and_in_model_signing(
    model: Path, ca: TinyCA, tmp_path: Path, case: str
) -> None:
    leaf, key, embedded, roots = _write_chain(BAD_CHAINS[case](ca), tmp_path / "pki")
    signature = tmp_path / "model.sig"
    sign(model, private_key=key, certificate=leaf, certificate_chain=embedded, signature=signature)

    result = verify(model, signature=signature, certificate_chain=roots)
    assert found(result) == [("untrusted-certificate", None)]
    assert result.manifest is None

    reference = model_signing.verifying.Config().use_certificate_verifier(certificate_chain=roots)
    with pytest.raises(Exception):  # noqa: B017 - OpenSSL's error or ValueError: both refuse
        reference.verify(model, signature)


def test_code_signing_extended_usage_is_enough(model: Path, ca: TinyCA, tmp_path: Path) -> None:
    key = _new_key()
    leaf = make_certificate(
        "code signer",
        key,
        issuer=ca.intermediate,
        issuer_key=ca.intermediate_key,
        key_usage=None,
        code_signing=True,
    )
    chain = Chain(leaf, key, (ca.intermediate,), (ca.root,))
    leaf_pem, key_pem, embedded, roots = _write_chain(chain, tmp_path / "pki")
    sign(model, private_key=key_pem, certificate=leaf_pem, certificate_chain=embedded)
    assert verify(model, certificate_chain=roots).ok


def test_expired_leaf_still_verifies_at_its_signing_time(
    model: Path, ca: TinyCA, tmp_path: Path
) -> None:
    """The format has no timestamp: validity is checked when the certificate was issued."""
    key = _new_key()
    leaf = make_certificate(
        "old signer",
        key,
        issuer=ca.intermediate,
        issuer_key=ca.intermediate_key,
        not_before=NOW - 3 * DAY,
        not_after=NOW - 2 * DAY,
    )
    leaf_pem, key_pem, embedded, roots = _write_chain(
        Chain(leaf, key, (ca.intermediate,), (ca.root,)), tmp_path / "pki"
    )
    sign(model, private_key=key_pem, certificate=leaf_pem, certificate_chain=embedded)
    assert verify(model, certificate_chain=roots).ok


def test_intermediate_whose_key_usage_forbids_certificate_signing(
    model: Path, ca: TinyCA, tmp_path: Path
) -> None:
    chain = _leaf_under(ca, *_intermediate(ca, key_usage=SIGNING_USAGE))
    leaf, key, embedded, roots = _write_chain(chain, tmp_path / "pki")
    sign(model, private_key=key, certificate=leaf, certificate_chain=embedded)
    assert found(verify(model, certificate_chain=roots)) == [("untrusted-certificate", None)]
