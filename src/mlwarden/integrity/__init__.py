"""Artifact integrity (ML06, ML09, ML10): manifests, signatures and verified loading.

Signatures use the OpenSSF model-signing format, so the `model-signing` tools verify what
mlwarden signs and mlwarden verifies what they sign::

    from mlwarden.integrity import generate_key, write_key_pair, sign, verify
    write_key_pair(generate_key("p256"), "key.pem")          # key.pem + key.pub
    sign("models/bert", private_key="key.pem")                # models/bert/model.sig
    result = verify("models/bert", public_key="key.pub")
    print(result.ok, [p.message for p in result.problems])

Names are imported on first use, so `mlwarden sign` loads only what signing needs. Not for:
scanning what a file would execute (`mlwarden.scan`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlwarden.integrity.compare import Difference, compare
    from mlwarden.integrity.keys import (
        generate_key,
        load_private_key,
        load_public_key,
        write_key_pair,
    )
    from mlwarden.integrity.manifest import Manifest, Resource, Serialization, hash_model
    from mlwarden.integrity.signing import (
        Problem,
        SignResult,
        Verification,
        default_signature_path,
        sign,
        verify,
    )

_EXPORTS = {
    "Difference": "compare",
    "compare": "compare",
    "generate_key": "keys",
    "load_private_key": "keys",
    "load_public_key": "keys",
    "write_key_pair": "keys",
    "Manifest": "manifest",
    "Resource": "manifest",
    "Serialization": "manifest",
    "hash_model": "manifest",
    "Problem": "signing",
    "SignResult": "signing",
    "Verification": "signing",
    "default_signature_path": "signing",
    "sign": "signing",
    "verify": "signing",
}

__all__ = [
    "Difference",
    "Manifest",
    "Problem",
    "Resource",
    "Serialization",
    "SignResult",
    "Verification",
    "compare",
    "default_signature_path",
    "generate_key",
    "hash_model",
    "load_private_key",
    "load_public_key",
    "sign",
    "verify",
    "write_key_pair",
]


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'mlwarden.integrity' has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"mlwarden.integrity.{module}"), name)
