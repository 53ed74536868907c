"""The demo's integrity part: sign a model folder, tamper with a copy, verify both (ML10).

The signed folder is built from the demo's benign files; the copy gets one flipped byte in a
weights file and one extra file, the two everyday ways a model is swapped. Both are verified with
the signer's public key; the report shows the original verified and every change to the copy
named. Not for: the signing machinery (`mlwarden.integrity`).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from mlwarden.audit.runner import AuditContext, ProgressFn, run_audit
from mlwarden.demo.corpus import Sample
from mlwarden.report.model import Report

SIGNED_FOLDER = "signed-model"
TAMPERED_FOLDER = "tampered-model"
KEY_FOLDER = "signing-key"
MAX_FILES = 4
"""Benign files copied into the signed folder (enough to show a manifest, small to read)."""


def integrity_demo(
    out: Path, benign: Sequence[Sample], *, progress: ProgressFn | None = None
) -> Report:
    """Sign a folder of benign demo files, tamper with a copy, verify both; one report."""
    from mlwarden.integrity import generate_key, sign, write_key_pair
    from mlwarden.integrity.check import CHECK_ID, IntegritySettings

    files = [s.path for s in benign if s.path.is_file()][:MAX_FILES]
    if not files:
        raise ValueError("the integrity demo needs at least one benign demo file")
    signed = out / SIGNED_FOLDER
    tampered = out / TAMPERED_FOLDER
    keys = out / KEY_FOLDER
    for folder in (signed, tampered, keys):
        shutil.rmtree(folder, ignore_errors=True)
    signed.mkdir(parents=True)
    keys.mkdir()
    for path in files:
        shutil.copy2(path, signed / path.name)
    private, public = write_key_pair(generate_key("p256"), keys / "signer.pem")
    sign(signed, private_key=private)
    shutil.copytree(signed, tampered)
    victim = tampered / files[0].name
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    (tampered / "extra_weights.bin").write_bytes(b"\x00" * 64)
    context = AuditContext(
        paths=[signed, tampered],
        integrity=IntegritySettings(public_key=public),
        progress=progress,
    )
    return run_audit(context, only=[CHECK_ID])
