"""CVSS v3.0 / v3.1 base scores from a vector string, as the FIRST specification defines them.

Only the base metric group is scored (temporal and environmental metrics in the vector are
accepted and ignored): the base score is what advisories publish. Not for: CVSS v2 or v4,
whose formulas differ; advisories that carry only those fall back to other severity sources.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_WEIGHTS: dict[str, dict[str, float]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_PRIVILEGES = {
    "U": {"N": 0.85, "L": 0.62, "H": 0.27},
    "C": {"N": 0.85, "L": 0.68, "H": 0.5},
}
_BASE_METRICS = ("AV", "AC", "PR", "UI", "S", "C", "I", "A")


@dataclass(frozen=True)
class CvssScore:
    """A scored CVSS v3 vector."""

    version: str
    """``3.0`` or ``3.1``."""
    base_score: float
    """0.0 to 10.0, one decimal."""
    vector: str

    @property
    def rating(self) -> str:
        """The specification's qualitative rating: ``none``, ``low``, ``medium``, ``high`` or
        ``critical``."""
        if self.base_score == 0:
            return "none"
        if self.base_score < 4:
            return "low"
        if self.base_score < 7:
            return "medium"
        if self.base_score < 9:
            return "high"
        return "critical"


def roundup(value: float, version: str = "3.1") -> float:
    """The smallest number with one decimal that is >= `value`; v3.1 first rounds to five
    decimals so that floating-point noise (4.000000001) does not round up a whole tenth."""
    if version == "3.0":
        return math.ceil(value * 10) / 10
    as_int = round(value * 100_000)
    if as_int % 10_000 == 0:
        return as_int / 100_000
    return (math.floor(as_int / 10_000) + 1) / 10


def base_score(vector: str) -> CvssScore:
    """Score a ``CVSS:3.x/AV:../AC:../PR:../UI:../S:../C:../I:../A:..`` vector; `ValueError`
    when it is not a complete, valid v3.0 or v3.1 vector."""
    parts = vector.strip().split("/")
    prefix = parts[0]
    if prefix not in ("CVSS:3.0", "CVSS:3.1"):
        raise ValueError(f"not a CVSS v3 vector: {vector!r}")
    version = prefix.split(":")[1]
    metrics: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition(":")
        if not sep or key in metrics:
            raise ValueError(f"malformed or repeated metric {part!r} in {vector!r}")
        metrics[key] = value
    missing = [m for m in _BASE_METRICS if m not in metrics]
    if missing:
        raise ValueError(f"CVSS vector {vector!r} lacks base metrics {', '.join(missing)}")
    scope = metrics["S"]
    try:
        if scope not in _PRIVILEGES:
            raise KeyError("S")
        weights = {key: _WEIGHTS[key][metrics[key]] for key in _WEIGHTS}
        privileges = _PRIVILEGES[scope][metrics["PR"]]
    except KeyError as exc:
        raise ValueError(f"invalid value for {exc.args[0]} in CVSS vector {vector!r}") from None
    iss = 1 - (1 - weights["C"]) * (1 - weights["I"]) * (1 - weights["A"])
    changed = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    impact = 6.42 * iss if scope == "U" else changed
    exploitability = 8.22 * weights["AV"] * weights["AC"] * privileges * weights["UI"]
    if impact <= 0:
        score = 0.0
    elif scope == "U":
        score = roundup(min(impact + exploitability, 10), version)
    else:
        score = roundup(min(1.08 * (impact + exploitability), 10), version)
    return CvssScore(version=version, base_score=score, vector=vector.strip())
