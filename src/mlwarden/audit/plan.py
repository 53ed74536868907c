"""The schema of ``audit.yaml``: what to assess and how, validated once at the boundary.

Example::

    version: 1
    scan:
      paths: [models/]
      policy: mlwarden-policy.toml
      jobs: 2
    model:
      path: models/digits.onnx          # a model file, or an http(s):// prediction endpoint
      input_shape: [1, 8, 8]
      input_range: [0, 1]
    data:
      path: data/test.npz
      x_key: x
      y_key: y
    evasion:
      norm: linf
      eps: [1/255, 4/255, 8/255]        # input units; "a/b" fractions are accepted
      suite: standard
      n_samples: 200
    privacy:                            # ml04.membership and ml03.inversion
      members: data/train.npz           # a path, or a mapping like data: (x_key, limit ...)
      non_members: data/heldout.npz
      population: data/extra.npz
      train_fn: training:train          # module:function, importable from the current folder
      attacks: [loss, rmia, lira-offline]
      n_reference: 8
      defences: ["top-k:1", "label-only"]
    checks:
      skip: []
    fail_on: high

Relative paths are resolved against the plan's folder. Building the objects a plan names (the
target, the data) is `mlwarden.audit.context.context_from_plan`; this module only validates.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mlwarden.errors import ConfigError
from mlwarden.findings import Severity

URL_SCHEMES = ("http://", "https://")


def _fraction(value: Any) -> Any:
    """``"8/255"`` -> 8/255; anything else is left for pydantic to judge."""
    if isinstance(value, str) and value.count("/") == 1:
        numerator, denominator = value.split("/")
        try:
            return float(numerator) / float(denominator)
        except (ValueError, ZeroDivisionError):
            return value
    return value


Budget = Annotated[float, BeforeValidator(_fraction), Field(ge=0, allow_inf_nan=False)]
"""A perturbation budget in input units: a number >= 0, or a fraction written ``a/b``."""
PositiveInt = Annotated[int, Field(ge=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScanPlan(_Strict):
    """Static scanning of files and folders (check ``ml06.model_files``)."""

    paths: list[Path] = Field(min_length=1)
    policy: Path | None = None
    jobs: int = Field(default=1, ge=1, le=256)


class HttpPlan(_Strict):
    """Options of a model served over HTTP (`mlwarden.targets.http.HttpTarget`)."""

    protocol: Literal["json", "kserve-v2"] | None = None
    model_name: str | None = None
    input_name: str | None = None
    output_name: str | None = None
    request_key: str | None = None
    response_key: str | None = None
    headers: dict[str, str] | None = None
    timeout_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    batch_size: PositiveInt | None = None
    output: Literal["probabilities", "labels"] | None = None


class ModelPlan(_Strict):
    """The model under test (checks that need ``target``); see `load_target`."""

    path: str = Field(min_length=1)
    """A model file (relative to the plan) or an ``http(s)://`` prediction endpoint."""
    factory: str | None = None
    """``package.module:function`` building the torch module whose weights `path` holds."""
    input_shape: list[PositiveInt] | None = Field(default=None, min_length=1)
    n_classes: int | None = Field(default=None, ge=2)
    input_range: tuple[float, float] = (0.0, 1.0)
    mean: list[float] | float | None = None
    std: list[float] | float | None = None
    model_output: Literal["logits", "probabilities", "log_probabilities", "auto"] | None = None
    query_budget: PositiveInt | None = None
    http: HttpPlan | None = None

    @field_validator("input_range")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError("input_range must be finite [low, high] with low < high")
        return value

    @field_validator("std")
    @classmethod
    def _positive_std(cls, value: list[float] | float | None) -> list[float] | float | None:
        values = value if isinstance(value, list) else [] if value is None else [value]
        if any(not (math.isfinite(v) and v > 0) for v in values):
            raise ValueError("std must be finite and > 0")
        return value

    def is_url(self) -> bool:
        """True when the model is a remote endpoint rather than a file."""
        return self.path.startswith(URL_SCHEMES)


class DataPlan(_Strict):
    """Labelled samples (checks that need ``data``): ``.npz``, ``.npy`` or ``.csv``."""

    path: Path
    labels: Path | None = None
    """A separate labels file (``.npy`` or ``.csv``), when `path` holds the inputs only."""
    x_key: str | None = None
    y_key: str | None = None
    label_column: int | str | None = None
    """The CSV column holding the labels: an index (negative counts from the end) or a header
    name; the last column by default."""
    limit: PositiveInt | None = None
    """Read at most this many samples."""


class EvasionPlan(_Strict):
    """Settings of the ``ml01.evasion`` check (`mlwarden.evaluate.check.EvasionSettings`)."""

    norm: Literal["linf", "l2", "l1", "l0"] = "linf"
    eps: list[Budget] | None = Field(default=None, min_length=1)
    """Budgets in input units; None evaluates the check's defaults."""
    suite: Literal["quick", "standard", "strong"] = "standard"
    attacks: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, min_length=1)
    n_samples: PositiveInt = 500
    seed: int = 0
    sanity_checks: bool = True
    """Look for gradient masking after the attacks."""


def _records(value: Any) -> Any:
    """A records file given as a bare path stands for ``{path: ...}``."""
    return {"path": value} if isinstance(value, str) else value


Records = Annotated[DataPlan, BeforeValidator(_records)]
"""Labelled records: a ``data:``-style mapping, or just the file's path."""


class InversionPlan(_Strict):
    """Model inversion in ``ml03.inversion`` (`mlwarden.privacy.settings.InversionSettings`)."""

    enabled: bool = True
    classes: list[Annotated[int, Field(ge=0)]] | None = Field(default=None, min_length=1)
    """Class indices to reconstruct; every class by default."""
    method: Literal["auto", "mi-face", "black-box"] = "auto"
    steps: PositiveInt | None = None
    reference: Records | None = None
    """Records whose class means the reconstructions are compared with; the members by
    default."""
    seed: int = 0


class AttributePlan(_Strict):
    """Attribute inference of one sensitive feature of tabular inputs."""

    feature: int = Field(ge=0)
    """Index of the sensitive feature in each record."""
    values: list[Annotated[float, Field(allow_inf_nan=False)]] | None = Field(
        default=None, min_length=2
    )
    """The values it can take; those seen in the members by default."""


class PrivacyThresholdsPlan(_Strict):
    """Severity thresholds of the privacy findings (`PrivacyThresholds`); defaults documented
    there."""

    high: float = Field(default=10.0, ge=1, allow_inf_nan=False)
    medium: float = Field(default=3.0, ge=1, allow_inf_nan=False)
    low: float = Field(default=1.5, ge=1, allow_inf_nan=False)
    epsilon_low: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    inversion_confidence: float = Field(default=0.9, gt=0, le=1)
    inversion_medium: float = Field(default=0.8, gt=0, le=1)
    attribute_medium: float = Field(default=0.2, ge=0, le=1)
    attribute_low: float = Field(default=0.05, ge=0, le=1)


class PrivacyPlan(_Strict):
    """Settings of ``ml04.membership`` and ``ml03.inversion``
    (`mlwarden.privacy.settings.PrivacySettings`)."""

    members: Records | None = None
    """The records the model was trained on."""
    non_members: Records | None = None
    """Records from the same distribution the model never saw."""
    population: Records | None = None
    """More records, disjoint from both, to train reference models on."""
    train_fn: str | None = Field(default=None, pattern=r"^[\w.]+:[\w.]+$")
    """``module:function`` training a reference model, ``train_fn(x, y, seed) -> model``."""
    attacks: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, min_length=1)
    n_reference: PositiveInt = 8
    reference_mode: Literal["online", "offline"] | None = None
    cache_dir: Path | None = None
    jobs: PositiveInt | None = None
    """Reference models trained in parallel; the audit's jobs by default."""
    dask: str | None = Field(default=None, min_length=1)
    """A Dask scheduler address (``tcp://host:8786``) to train reference models on."""
    seed: int = 0
    defences: list[str] = Field(default_factory=list)
    """``top-k:K``, ``round:D``, ``label-only``, ``temperature:T``, ``dp:epsilon=E``."""
    n_exposed: int = Field(default=10, ge=0)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    inversion: InversionPlan = Field(default_factory=InversionPlan)
    attribute: AttributePlan | None = None
    thresholds: PrivacyThresholdsPlan = Field(default_factory=PrivacyThresholdsPlan)

    @field_validator("defences")
    @classmethod
    def _known_defences(cls, value: list[str]) -> list[str]:
        from mlwarden.errors import InputError
        from mlwarden.privacy.settings import parse_defence

        for text in value:
            try:
                parse_defence(text)
            except InputError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _members_with_non_members(self) -> PrivacyPlan:
        if (self.members is None) != (self.non_members is None):
            raise ValueError("members and non_members go together: give both or neither")
        if not self.thresholds.low <= self.thresholds.medium <= self.thresholds.high:
            raise ValueError("thresholds must satisfy low <= medium <= high")
        return self


class ChecksPlan(_Strict):
    """Which checks to run: all whose needs are met by default."""

    only: list[str] | None = None
    skip: list[str] = Field(default_factory=list)


class AuditPlan(_Strict):
    """A whole audit plan."""

    version: int = 1
    scan: ScanPlan | None = None
    model: ModelPlan | None = None
    data: DataPlan | None = None
    evasion: EvasionPlan | None = None
    privacy: PrivacyPlan | None = None
    checks: ChecksPlan = Field(default_factory=ChecksPlan)
    fail_on: Severity = Severity.HIGH

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != 1:
            raise ValueError("only version 1 is known")
        return value


def load_plan(path: Path) -> AuditPlan:
    """Read and validate an audit plan; relative paths are resolved against its folder."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read audit plan {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"audit plan {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"audit plan {path} must be a mapping (see docs/audit.md)")
    try:
        plan = AuditPlan.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"audit plan {path}: {where}: {first['msg']}") from None
    return _resolved(plan, path.parent)


def _resolved(plan: AuditPlan, base: Path) -> AuditPlan:
    """`plan` with every relative path made relative to `base` (the plan's folder)."""
    updates: dict[str, Any] = {}
    if plan.scan is not None:
        updates["scan"] = plan.scan.model_copy(
            update={
                "paths": [_under(base, p) for p in plan.scan.paths],
                "policy": None if plan.scan.policy is None else _under(base, plan.scan.policy),
            }
        )
    if plan.model is not None and not plan.model.is_url():
        updates["model"] = plan.model.model_copy(
            update={"path": str(_under(base, Path(plan.model.path)))}
        )
    if plan.data is not None:
        updates["data"] = _data_under(base, plan.data)
    if plan.privacy is not None:
        updates["privacy"] = _privacy_under(base, plan.privacy)
    return plan.model_copy(update=updates)


def _data_under(base: Path, data: DataPlan) -> DataPlan:
    return data.model_copy(
        update={
            "path": _under(base, data.path),
            "labels": None if data.labels is None else _under(base, data.labels),
        }
    )


def _privacy_under(base: Path, privacy: PrivacyPlan) -> PrivacyPlan:
    updates: dict[str, Any] = {
        name: _data_under(base, records)
        for name in ("members", "non_members", "population")
        if (records := getattr(privacy, name)) is not None
    }
    if privacy.cache_dir is not None:
        updates["cache_dir"] = _under(base, privacy.cache_dir)
    if privacy.inversion.reference is not None:
        updates["inversion"] = privacy.inversion.model_copy(
            update={"reference": _data_under(base, privacy.inversion.reference)}
        )
    return privacy.model_copy(update=updates)


def _under(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else base / path
