"""What a privacy audit is given and how it judges: `PrivacySettings` and its parts.

One frozen value holds everything the checks ``ml04.membership`` and ``ml03.inversion`` need
besides the target: the members (the records the model was trained on), the non-members (records
it never saw), more records from the same distribution for reference models, how to train one, the
attacks, the defences to measure, the inversion options and the severity thresholds. Values are
validated here, once; the checks trust them. Not for: running attacks (`mlwarden.attacks`) or
defences (`mlwarden.privacy.defences`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mlwarden.errors import InputError, UsageError
from mlwarden.findings import Severity

Data = tuple[np.ndarray, np.ndarray]
"""Records ``(x, y)``: inputs in the target's input units and class indices."""
DefenceKind = Literal["top-k", "round", "label-only", "temperature", "dp"]
InversionMethod = Literal["auto", "mi-face", "black-box"]
INVERSION_METHODS: tuple[InversionMethod, ...] = ("auto", "mi-face", "black-box")
REFERENCE_MODES = ("online", "offline")
DEFAULT_DP_DELTA = 1e-5
"""The delta of ``dp:epsilon=E`` when the spec names none."""

DEFENCE_SYNTAX = (
    "top-k:K (K >= 1 classes kept), round:D (D >= 0 decimals), label-only, temperature:T "
    "(T > 0), or dp:epsilon=E[,delta=D][,max_grad_norm=C][,epochs=N] (retrain with DP-SGD)"
)


@dataclass(frozen=True)
class PrivacyThresholds:
    """Where the privacy findings change severity; the defaults are documented in the check.

    Membership: the best attack's TPR at 0.1% FPR divided by that FPR (how many times better
    than guessing it is at the level where an attacker is nearly never wrong): at least `high`
    is high, at least `medium` medium, above `low` low, else info. Inversion and attribute
    inference have their own fields below.
    """

    high: float = 10.0
    medium: float = 3.0
    low: float = 1.5
    epsilon_low: float = 1.0
    """An empirical epsilon lower bound at or above this is a low finding, below it info."""
    inversion_confidence: float = 0.9
    """A reconstruction counts only when the model gives its class at least this probability."""
    inversion_medium: float = 0.8
    """Distance to the class mean over the baseline's at or below this is medium, below 1 low."""
    attribute_medium: float = 0.2
    """Attribute inference advantage over the baseline at or above this is medium."""
    attribute_low: float = 0.05
    """... at or above this low, else info."""

    def __post_init__(self) -> None:
        ratios = (self.low, self.medium, self.high)
        if not all(math.isfinite(v) for v in ratios) or not 1.0 <= self.low <= self.medium <= (
            self.high
        ):
            raise InputError(
                "membership thresholds must satisfy 1 <= low <= medium <= high (multiples of "
                f"the false-positive rate), got low={self.low}, medium={self.medium}, "
                f"high={self.high}"
            )
        if not (math.isfinite(self.epsilon_low) and self.epsilon_low >= 0):
            raise InputError(f"epsilon_low must be a number >= 0, got {self.epsilon_low}")
        if not 0.0 < self.inversion_confidence <= 1.0:
            raise InputError(
                f"inversion_confidence must be in (0, 1], got {self.inversion_confidence}"
            )
        if not 0.0 < self.inversion_medium <= 1.0:
            raise InputError(f"inversion_medium must be in (0, 1], got {self.inversion_medium}")
        if not 0.0 <= self.attribute_low <= self.attribute_medium <= 1.0:
            raise InputError(
                "attribute thresholds must satisfy 0 <= attribute_low <= attribute_medium <= 1, "
                f"got {self.attribute_low}, {self.attribute_medium}"
            )

    def membership_severity(self, ratio: float) -> Severity:
        """The severity of TPR / FPR = `ratio` at the lowest FPR level."""
        if ratio >= self.high:
            return Severity.HIGH
        if ratio >= self.medium:
            return Severity.MEDIUM
        if ratio > self.low:
            return Severity.LOW
        return Severity.INFO

    def attribute_severity(self, advantage: float) -> Severity:
        """The severity of an attribute inference `advantage` (accuracy over the baseline's)."""
        if advantage >= self.attribute_medium:
            return Severity.MEDIUM
        if advantage >= self.attribute_low:
            return Severity.LOW
        return Severity.INFO


@dataclass(frozen=True)
class DefenceSpec:
    """One defence to measure, parsed from text such as ``top-k:1`` or ``dp:epsilon=1``."""

    text: str
    """The spec as the user wrote it, normalised (shown in reports)."""
    kind: DefenceKind
    value: float | None = None
    """K of top-k, D of round, T of temperature; None for label-only and dp."""
    dp: dict[str, float] = field(default_factory=dict)
    """``epsilon`` (> 0), ``delta`` (in (0, 1)), optional ``max_grad_norm`` (> 0) and
    ``epochs`` (>= 1) of a dp spec."""

    @property
    def retrains(self) -> bool:
        """True for DP-SGD, which trains a new model; output defences wrap the deployed one."""
        return self.kind == "dp"


def parse_defence(text: str) -> DefenceSpec:
    """`text` as a `DefenceSpec`, or an `InputError` giving the syntax (see `DEFENCE_SYNTAX`)."""
    spec = "".join(str(text).split()).lower()
    name, _, argument = spec.partition(":")
    try:
        if name == "label-only" and not argument:
            return DefenceSpec("label-only", "label-only")
        if name == "top-k":
            k = int(argument)
            if k >= 1:
                return DefenceSpec(f"top-k:{k}", "top-k", float(k))
        elif name == "round":
            decimals = int(argument)
            if decimals >= 0:
                return DefenceSpec(f"round:{decimals}", "round", float(decimals))
        elif name == "temperature":
            temperature = float(argument)
            if math.isfinite(temperature) and temperature > 0:
                return DefenceSpec(f"temperature:{temperature:g}", "temperature", temperature)
        elif name == "dp":
            return _dp_spec(argument)
    except ValueError:
        pass
    raise InputError(f"defence {text!r} is not understood; write {DEFENCE_SYNTAX}")


def _dp_spec(argument: str) -> DefenceSpec:
    options: dict[str, float] = {}
    for pair in filter(None, argument.split(",")):
        key, sep, value = pair.partition("=")
        if not sep or key not in {"epsilon", "delta", "max_grad_norm", "epochs"}:
            raise ValueError(pair)
        options[key] = float(value)
    epsilon = options.get("epsilon", math.nan)
    options.setdefault("delta", DEFAULT_DP_DELTA)
    valid = (
        math.isfinite(epsilon)
        and epsilon > 0
        and 0 < options["delta"] < 1
        and options.get("max_grad_norm", 1.0) > 0
        and math.isfinite(options.get("max_grad_norm", 1.0))
        and options.get("epochs", 1.0) >= 1
        and float(options.get("epochs", 1.0)).is_integer()
    )
    if not valid:
        raise ValueError(argument)
    shown = ",".join(
        f"{k}={options[k]:g}"
        for k in ("epsilon", "delta", "max_grad_norm", "epochs")
        if k in options
    )
    return DefenceSpec(f"dp:{shown}", "dp", dp=options)


@dataclass(frozen=True)
class InversionSettings:
    """How ``ml03.inversion`` reconstructs each class (`mlwarden.attacks.inversion.invert`)."""

    classes: tuple[int, ...] | None = None
    """Class indices to reconstruct; None reconstructs every class."""
    method: InversionMethod = "auto"
    """``mi-face`` (white-box gradients), ``black-box`` (queries only) or ``auto`` (MI-Face
    when the target gives gradients)."""
    steps: int | None = None
    """Optimisation steps per class (>= 1); None keeps the attack's default."""
    reference: Data | None = None
    """Records whose per-class means the reconstructions are compared with; None uses the
    members, else the population, else nothing (the resemblance is then not measured)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in INVERSION_METHODS:
            raise InputError(
                f"unknown inversion method {self.method!r}; choose {', '.join(INVERSION_METHODS)}"
            )
        if self.steps is not None and self.steps < 1:
            raise InputError(f"inversion steps must be >= 1, got {self.steps}")
        if self.classes is not None:
            if not self.classes:
                raise InputError("inversion classes is empty: name at least one, or leave it out")
            if any(int(c) != c or c < 0 for c in self.classes):
                raise InputError(f"inversion classes must be class indices >= 0, {self.classes}")
        if self.reference is not None:
            _check_pair("inversion reference", self.reference)


@dataclass(frozen=True, eq=False)
class PrivacySettings:
    """Inputs and options of the privacy checks ``ml04.membership`` and ``ml03.inversion``."""

    members: Data | None = None
    """Records the model was trained on; with `non_members`, the membership audit runs."""
    non_members: Data | None = None
    """Records from the same distribution the model never saw; disjoint from `members`."""
    population: Data | None = None
    """More records from the distribution, disjoint from both, to train reference models."""
    train_fn: Any = None
    """How to train a reference model: ``train_fn(x, y, seed) -> model``, a scikit-learn
    estimator (cloned per model) or a ``TorchTrainer`` (needed by the ``dp`` defence)."""
    attacks: tuple[str, ...] | None = None
    """Membership attack names; None runs every attack the inputs allow."""
    n_reference: int = 8
    """Reference models to train (>= 1; >= 4 for ``lira-online``)."""
    reference_mode: Literal["online", "offline"] | None = None
    """None: online when ``lira-online`` is asked for, else offline."""
    cache_dir: Path | None = None
    """Reference-model outputs are kept there and reused (an interrupted audit resumes)."""
    n_jobs: int = 1
    """Reference models trained in parallel (joblib processes), >= 1."""
    dask: Any = None
    """A ``dask.distributed.Client`` or scheduler address to train reference models on."""
    seed: int = 0
    defences: tuple[DefenceSpec, ...] = ()
    """Defences to measure against the same attacks (`parse_defence` reads the text form)."""
    n_exposed: int = 10
    """Most exposed members listed in the report, >= 0."""
    confidence: float = 0.95
    """Confidence of the empirical epsilon's Clopper-Pearson interval, in (0, 1)."""
    inversion: InversionSettings | None = field(default_factory=InversionSettings)
    """Model inversion options; None turns inversion off."""
    attribute_feature: int | None = None
    """Index of a sensitive feature of flat (tabular) inputs to infer from the others and the
    model's answer (attribute inference on the members); None skips it."""
    attribute_values: tuple[float, ...] | None = None
    """The values that feature can take; None uses those seen in the members."""
    thresholds: PrivacyThresholds = field(default_factory=PrivacyThresholds)

    def __post_init__(self) -> None:
        if (self.members is None) != (self.non_members is None):
            given = "members" if self.members is not None else "non_members"
            raise UsageError(
                f"{given} alone cannot measure membership: give both members (the training "
                "records) and non_members (records the model never saw)"
            )
        for name in ("members", "non_members", "population"):
            value = getattr(self, name)
            if value is not None:
                _check_pair(name, value)
        if self.n_reference < 1:
            raise InputError(f"n_reference must be >= 1, got {self.n_reference}")
        if self.reference_mode is not None and self.reference_mode not in REFERENCE_MODES:
            raise InputError(
                f"reference_mode must be online or offline, got {self.reference_mode!r}"
            )
        if self.n_jobs < 1:
            raise InputError(f"n_jobs must be >= 1, got {self.n_jobs}")
        if self.attacks is not None and not self.attacks:
            raise InputError("attacks is empty: name at least one attack, or leave it out")
        if self.n_exposed < 0:
            raise InputError(f"n_exposed must be >= 0, got {self.n_exposed}")
        if not 0.0 < self.confidence < 1.0:
            raise InputError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.attribute_feature is not None and self.attribute_feature < 0:
            raise InputError(f"attribute_feature must be >= 0, got {self.attribute_feature}")
        texts = [d.text for d in self.defences]
        if len(set(texts)) != len(texts):
            raise InputError(f"a defence is listed twice: {', '.join(texts)}")

    @property
    def measures_membership(self) -> bool:
        """True when members and non-members were given."""
        return self.members is not None and self.non_members is not None


def _check_pair(name: str, value: Any) -> None:
    if not (isinstance(value, tuple) and len(value) == 2):
        raise InputError(f"{name} must be a pair (x, y) of inputs and labels")
    x, y = (np.asarray(v) for v in value)
    if x.ndim == 0 or y.ndim != 1 or len(x) != len(y):
        raise InputError(
            f"{name} has inputs of shape {x.shape} and labels of shape {y.shape}; give one "
            "class index per input"
        )
    if len(x) == 0:
        raise InputError(f"{name} is empty: give at least one record")


def parse_defences(texts: Sequence[str]) -> tuple[DefenceSpec, ...]:
    """Every text of `texts` parsed with `parse_defence`."""
    return tuple(parse_defence(t) for t in texts)


def load_train_fn(spec: str) -> Any:
    """The object ``MODULE:NAME`` names, importable from the current folder as with ``python
    -m``: a function ``train_fn(x, y, seed) -> model``, a ``TorchTrainer`` or a scikit-learn
    estimator (checked with `mlwarden.attacks.membership.reference.as_train_fn`)."""
    from mlwarden.attacks.membership.reference import as_train_fn
    from mlwarden.targets.loading import import_spec

    found = import_spec(spec, "--train-fn")
    if not callable(found) and not hasattr(found, "fit"):
        raise UsageError(f"--train-fn {spec} is a {type(found).__name__}, not a function")
    as_train_fn(found)
    return found


def resolve_cache_dir(path: str | os.PathLike[str] | None) -> Path | None:
    """`path` as a folder for reference-model outputs (created when missing), or None."""
    if path is None:
        return None
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"cache folder {folder} is a file; give a folder")
    return folder


def slug(text: str) -> str:
    """`text` reduced to ``a-z0-9-`` (cache folder names, figure ids)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
