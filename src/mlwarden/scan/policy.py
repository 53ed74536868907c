"""Which Python globals a pickle may reference: allowlist first, denylist only for severity.

A global is SAFE only if its exact qualified name is on the built-in allowlist (PyTorch, NumPy,
scikit-learn, collections ... see ``policy_data/allow-*.txt``) or on the user's policy file.
Everything else is a finding: DANGEROUS (critical) when it matches the denylist of callables
that run code, read or write files, open connections or resolve strings to callables
(``policy_data/deny.txt``), UNKNOWN otherwise. Not for: deciding severity from how a global is
used (the pickle analyser does that).

A policy file is TOML::

    [pickle]
    allow = ["mypkg.models.MyNet", "mypkg.layers.*"]   # exact names, or a module and below
    deny = ["mypkg.unsafe_loader"]

    [limits]
    file_timeout_s = 300
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from mlwarden.errors import PolicyError
from mlwarden.scan.limits import Limits


class Verdict(str, enum.Enum):
    """What the policy says about one global."""

    SAFE = "safe"
    UNKNOWN = "unknown"
    DANGEROUS = "dangerous"


class Classification(NamedTuple):
    """A verdict and the reason for it (the matching list entry or its justification)."""

    verdict: Verdict
    reason: str


# Module paths that pickle itself rewrites for protocol < 3 (``_compat_pickle``); we apply the
# mapping whatever the protocol so that ``__builtin__.eval`` is judged as ``builtins.eval``.
_PY2_MODULES = {
    "__builtin__": "builtins",
    "copy_reg": "copyreg",
    "exceptions": "builtins",
    "cPickle": "pickle",
    "commands": "subprocess",
    "UserDict": "collections",
    "urllib2": "urllib.request",
    "httplib": "http.client",
    "SocketServer": "socketserver",
    "thread": "_thread",
    "dummy_thread": "_dummy_thread",
    "Queue": "queue",
    "cStringIO": "io",
    "StringIO": "io",
}

# Components that make any dotted path dangerous wherever they appear: attribute chains such as
# ``torch.serialization.os.system`` or ``numpy.__builtins__.eval`` reach code execution through
# an allowed-looking module.
_DANGEROUS_COMPONENTS = frozenset(
    {
        "os",
        "nt",
        "posix",
        "sys",
        "subprocess",
        "builtins",
        "__builtins__",
        "__builtin__",
        "__globals__",
        "__import__",
        "__subclasses__",
        "__class__",
        "__base__",
        "__bases__",
        "__mro__",
        "__code__",
        "__closure__",
        "__dict__",
        "__getattribute__",
        "__reduce__",
        "__reduce_ex__",
        "__init_subclass__",
        "__loader__",
        "__spec__",
        "eval",
        "exec",
        "compile",
        "system",
        "popen",
        "importlib",
        "pty",
        "socket",
        "shutil",
        "runpy",
        "marshal",
        "ctypes",
        "pickle",
        "_pickle",
    }
)


CYTHON_UNPICKLE_PREFIX = "__pyx_unpickle_"

TORCHSCRIPT_MODULE = "__torch__"
TORCHSCRIPT_REASON = (
    "TorchScript class: compiled by torch.jit.load from the archive's code/ (TorchScript, not "
    "Python); Python's pickle cannot import it"
)
"""Cython-generated ``module.__pyx_unpickle_X(cls, checksum, state)`` rebuilds class X."""


def normalise(module: str, name: str) -> tuple[str, str]:
    """Apply pickle's Python 2 module renames: ``('__builtin__', 'eval')`` -> builtins.eval."""
    return _PY2_MODULES.get(module, module), name


def _packaged_policy_data() -> Any:
    """The policy data through importlib.resources (a zipped or otherwise unusual install)."""
    from importlib import resources

    return resources.files("mlwarden.scan") / "policy_data"


@functools.lru_cache(maxsize=1)
def _builtin_lists() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(allow exact, deny exact, deny module prefixes), each name -> justification."""
    allow: dict[str, str] = {}
    deny: dict[str, str] = {}
    deny_prefixes: dict[str, str] = {}
    # Read from disk beside this module when it is there (every normal install): the
    # importlib.resources readers pull in zipfile, a noticeable part of a small scan's start-up.
    beside = Path(__file__).with_name("policy_data")
    data: Any = beside if beside.is_dir() else _packaged_policy_data()
    for entry in sorted(data.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".txt"):
            continue
        target = allow if entry.name.startswith("allow-") else deny
        for raw in entry.read_text(encoding="utf-8").splitlines():
            text = raw.split("#", 1)
            name = text[0].strip()
            if not name:
                continue
            why = text[1].strip() if len(text) > 1 else entry.name
            if name.endswith(".*"):
                if target is allow:
                    raise RuntimeError(f"{entry.name}: the built-in allowlist takes exact names")
                deny_prefixes[name[:-2]] = why
            else:
                target[name] = why
    return allow, deny, deny_prefixes


def builtin_allowlist() -> dict[str, str]:
    """The built-in allowlist: each exact qualified name -> why it is safe to reference."""
    return dict(_builtin_lists()[0])


def _match_prefix(qualname: str, prefixes: Any) -> str | None:
    """The longest prefix `p` with ``qualname == p`` or ``qualname.startswith(p + '.')``."""
    parts = qualname.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in prefixes:
            return str(candidate)
    return None


@dataclass(frozen=True)
class Policy:
    """Allow and deny lists plus resource limits; the built-in policy extended by a file."""

    allow: frozenset[str] = frozenset()
    """User-allowed exact qualified names."""
    allow_prefixes: frozenset[str] = frozenset()
    """User-allowed modules: everything at or below them (``mypkg.layers``)."""
    deny: frozenset[str] = frozenset()
    """User-denied exact names or modules (always critical)."""
    limits: Limits = field(default_factory=Limits)
    source: str | None = None
    """The policy file this came from, for the report."""

    @functools.lru_cache(maxsize=16_384)  # noqa: B019 - policies are few, frozen and hashable
    def classify(self, module: str, name: str) -> Classification:
        """Judge the global ``module.name`` (after Python 2 renames)."""
        module, name = normalise(module, name)
        if name.startswith(CYTHON_UNPICKLE_PREFIX) and "." not in name:
            # Cython's pickle helper for class X only rebuilds an X: judge X itself.
            inner = self.classify(module, name[len(CYTHON_UNPICKLE_PREFIX) :])
            return Classification(inner.verdict, f"Cython unpickle helper; {inner.reason}")
        qualname = f"{module}.{name}"
        allow, deny, deny_prefixes = _builtin_lists()
        user_denied = _match_prefix(qualname, self.deny)
        if user_denied:
            return Classification(Verdict.DANGEROUS, f"denied by policy ({user_denied})")
        if qualname in deny:
            return Classification(Verdict.DANGEROUS, deny[qualname])
        if qualname in allow:
            # exact, reviewed entries win over a denied prefix (torch.jit._pickle.build_intlist
            # under torch.jit.*)
            return Classification(Verdict.SAFE, allow[qualname])
        if module == TORCHSCRIPT_MODULE or module.startswith(TORCHSCRIPT_MODULE + "."):
            return Classification(Verdict.SAFE, TORCHSCRIPT_REASON)
        prefix = _match_prefix(qualname, deny_prefixes)
        if prefix:
            return Classification(Verdict.DANGEROUS, deny_prefixes[prefix])
        components = set(module.split(".")[1:]) | set(name.split("."))
        risky = sorted(components & _DANGEROUS_COMPONENTS)
        if risky and qualname not in allow and qualname not in self.allow:
            return Classification(
                Verdict.DANGEROUS, f"attribute path goes through {', '.join(risky)}"
            )
        if qualname in allow:
            return Classification(Verdict.SAFE, allow[qualname])
        if qualname in self.allow:
            return Classification(Verdict.SAFE, "allowed by policy")
        user_prefix = _match_prefix(qualname, self.allow_prefixes)
        if user_prefix:
            return Classification(Verdict.SAFE, f"allowed by policy ({user_prefix}.*)")
        return Classification(Verdict.UNKNOWN, "not on any allowlist")

    @classmethod
    def from_file(cls, path: Path) -> Policy:
        """Read a TOML policy file (see the module docstring); errors name the bad key."""
        if sys.version_info >= (3, 11):  # imported here: most scans read no policy file
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib

        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PolicyError(f"cannot read policy file {path}: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PolicyError(f"policy file {path} is not valid TOML: {exc}") from None
        return cls.from_mapping(raw, source=str(path))

    @classmethod
    def from_mapping(cls, raw: dict[str, Any], *, source: str | None = None) -> Policy:
        """Build a policy from already-parsed settings (the contents of a policy file)."""
        where = source or "policy"
        unknown = set(raw) - {"pickle", "limits"}
        if unknown:
            raise PolicyError(
                f"{where}: unknown section(s) {sorted(unknown)}; expected [pickle] and [limits]"
            )
        pickle_section = raw.get("pickle", {})
        if not isinstance(pickle_section, dict):
            raise PolicyError(f"{where}: [pickle] must be a table")
        extra = set(pickle_section) - {"allow", "deny"}
        if extra:
            raise PolicyError(f"{where}: unknown key(s) in [pickle]: {sorted(extra)}")
        allow, allow_prefixes = _names(pickle_section.get("allow", []), f"{where}: pickle.allow")
        deny, deny_prefixes = _names(pickle_section.get("deny", []), f"{where}: pickle.deny")
        limits = _limits(raw.get("limits", {}), where)
        return cls(
            allow=frozenset(allow),
            allow_prefixes=frozenset(allow_prefixes),
            deny=frozenset(deny | deny_prefixes),
            limits=limits,
            source=source,
        )


def _names(value: Any, where: str) -> tuple[set[str], set[str]]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where} must be a list of qualified names")
    exact, prefixes = set(), set()
    for item in value:
        name = item.strip()
        if not name or name in {"*", ".*"} or " " in name:
            raise PolicyError(f"{where}: {item!r} is not a qualified name like 'pkg.mod.Class'")
        if name.endswith(".*"):
            prefixes.add(name[:-2])
        else:
            exact.add(name)
    return exact, prefixes


def _limits(value: Any, where: str) -> Limits:
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: [limits] must be a table")
    known = {f.name: f for f in dataclasses.fields(Limits)}
    updates: dict[str, Any] = {}
    for key, item in value.items():
        if key not in known:
            raise PolicyError(f"{where}: unknown limit {key!r}; known: {sorted(known)}")
        default = getattr(Limits(), key)
        if isinstance(item, bool) or not isinstance(item, (int, float)) or item <= 0:
            raise PolicyError(f"{where}: limit {key} must be a positive number")
        updates[key] = type(default)(item)
    return dataclasses.replace(Limits(), **updates)
