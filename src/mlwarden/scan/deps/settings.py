"""How the dependency audit finds its advisories and what it audits besides files.

Not for: reading dependency files (`inputs`) or advisories (`sources`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from mlwarden.errors import UsageError

DEFAULT_OSV_URL = "https://api.osv.dev"
"""The public OSV API; ``MLWARDEN_OSV_URL`` overrides it (a mirror, or a test server)."""

OSV_URL_ENV = "MLWARDEN_OSV_URL"


def default_osv_url() -> str:
    """The OSV API base URL: ``MLWARDEN_OSV_URL`` when set, else the public API."""
    return os.environ.get(OSV_URL_ENV, "").strip() or DEFAULT_OSV_URL


@dataclass(frozen=True)
class DepsSettings:
    """Settings of the ``ml06.dependencies`` check; the defaults query the OSV API."""

    osv_db: Path | None = None
    """An offline OSV export: a ``.zip`` such as the per-ecosystem ``all.zip`` OSV publishes,
    a folder of OSV JSON files, or one JSON file. When given, the API is never queried."""
    online: bool = True
    """Query the OSV API when no `osv_db` is given; False with no `osv_db` leaves the audit
    without an advisory source, which is reported as an error, never as clean."""
    osv_url: str = field(default_factory=default_osv_url)
    """Base URL of the OSV API (``http`` or ``https``); ``/v1/querybatch`` is appended."""
    timeout_s: float = 10.0
    """Seconds each API request may take, > 0."""
    installed: bool = False
    """Also audit the distributions installed in the running interpreter's environment."""
    site_packages: list[Path] = field(default_factory=list)
    """Folders of another environment (its ``site-packages``) to audit from their
    ``*.dist-info/METADATA`` files; nothing in them is imported or executed."""
    ignore: Mapping[str, str] = field(default_factory=dict)
    """Advisory id (or alias) -> why it is accepted. Ignored advisories are counted and listed
    in the metrics, never silently dropped."""
    required: bool = True
    """True: an advisory source that cannot answer is an error (exit 2). False (plain
    ``mlwarden scan PATH``, where the user did not ask for the dependency audit): the check is
    reported as not assessed with the reason, so a scan without network still gates on the
    model files; never as clean either way."""

    def __post_init__(self) -> None:
        if self.osv_db is not None:  # a str from a caller that did not read the annotation
            object.__setattr__(self, "osv_db", Path(self.osv_db))
        object.__setattr__(self, "site_packages", [Path(p) for p in self.site_packages])
        if not isinstance(self.timeout_s, (int, float)) or not (
            math.isfinite(self.timeout_s) and self.timeout_s > 0
        ):
            raise UsageError(f"timeout_s must be a number of seconds > 0, got {self.timeout_s!r}")
        parts = urlsplit(self.osv_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(
                f"OSV API URL {self.osv_url!r} is not an http(s) URL; set {OSV_URL_ENV} to "
                f"something like {DEFAULT_OSV_URL}"
            )
        for advisory, reason in self.ignore.items():
            if not isinstance(advisory, str) or not advisory.strip():
                raise UsageError(f"ignored advisory ids must be non-empty text, got {advisory!r}")
            if not isinstance(reason, str):
                raise UsageError(f"the justification for ignoring {advisory} must be text")
