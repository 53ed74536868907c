"""The schema of ``audit.yaml``: what to assess and how, validated once at the boundary.

Example::

    version: 1
    scan:
      paths: [models/]
      policy: mlwarden-policy.toml
      jobs: 2
    checks:
      skip: []
    fail_on: high
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlwarden.errors import ConfigError
from mlwarden.findings import Severity


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScanPlan(_Strict):
    """Static scanning of files and folders (check ``ml06.model_files``)."""

    paths: list[Path] = Field(min_length=1)
    policy: Path | None = None
    jobs: int = Field(default=1, ge=1, le=256)


class ChecksPlan(_Strict):
    """Which checks to run: all whose needs are met by default."""

    only: list[str] | None = None
    skip: list[str] = Field(default_factory=list)


class AuditPlan(_Strict):
    """A whole audit plan."""

    version: int = 1
    scan: ScanPlan | None = None
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
    if plan.scan is not None:
        base = path.parent
        scan = plan.scan.model_copy(
            update={
                "paths": [p if p.is_absolute() else base / p for p in plan.scan.paths],
                "policy": (
                    None
                    if plan.scan.policy is None
                    else plan.scan.policy
                    if plan.scan.policy.is_absolute()
                    else base / plan.scan.policy
                ),
            }
        )
        plan = plan.model_copy(update={"scan": scan})
    return plan
