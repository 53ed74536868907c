"""The commented starter policy file that ``mlwarden policy init`` writes.

Every line of it is a comment or an empty list, so the file as written changes nothing: it shows
the format and the default limits, and the user uncomments what they need. The limit lines are
generated from `Limits` so that the defaults shown are always the ones in force. Not for: reading
policy files (see `mlwarden.scan.policy`).
"""

from __future__ import annotations

import dataclasses

from mlwarden.scan.limits import Limits

LIMIT_HELP: dict[str, str] = {
    "max_depth": "containers nested in containers (zip in gzip in tar is 3)",
    "max_decompressed_bytes": "bytes decompressed from all containers of one file",
    "max_ratio": "decompressed / compressed size above which a member is a bomb",
    "ratio_grace_bytes": "bytes a member may decompress to whatever its ratio",
    "max_members": "members read from one archive",
    "max_pickle_bytes": "bytes of one pickle stream held in memory",
    "max_opcodes": "pickle opcodes analysed per stream",
    "max_memo": "pickle memo entries per stream",
    "max_pickles_per_stream": "pickles read one after another from one stream",
    "max_embedded_candidates": "places tried as hidden pickles inside unknown data",
    "max_metadata_bytes": "bytes of JSON headers and configs parsed per file",
    "file_timeout_s": "wall time for one file, nested content included",
}
"""One line per limit, shown beside its default in the starter policy."""

_HEADER = """\
# mlwarden scan policy.
# Use it with:  mlwarden scan --policy {name} PATH...
#
# The built-in allowlist already covers PyTorch, NumPy, scikit-learn, collections and the like
# (`mlwarden policy show-allowlist` prints it). A pickle that references anything else is
# reported: calling it is HIGH (fails the default gate), instantiating it is MEDIUM. Allow your
# own classes here once you know that loading them runs no code you do not trust.

[pickle]
# Exact qualified names ("mypkg.models.MyNet"), or a module and everything below it
# ("mypkg.layers.*"). An allow entry never overrides the built-in denylist.
allow = [
    # "mypkg.models.MyNet",
    # "mypkg.layers.*",
]
# Names that are always CRITICAL, whatever any allowlist says.
deny = [
    # "mypkg.unsafe_loader",
]

[limits]
# Caps on hostile input. Hitting one is a HIGH finding (scan.limit-exceeded), never a crash.
# Uncomment a line to change it; the values shown are the defaults.
"""


def starter_policy_text(file_name: str = "mlwarden-policy.toml") -> str:
    """The starter policy as TOML text; `file_name` appears in the usage line at its top."""
    defaults = Limits()
    lines = [_HEADER.format(name=file_name)]
    for limit in dataclasses.fields(Limits):
        value = getattr(defaults, limit.name)
        setting = f"{limit.name} = {value!r}"
        lines.append(f"# {setting:<36} # {LIMIT_HELP[limit.name]}\n")
    return "".join(lines)
