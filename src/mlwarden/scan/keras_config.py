"""Keras model configurations: the JSON that says which layers and functions to rebuild.

Keras rebuilds a model from a config naming classes and functions. Three things in it run code
on load: Lambda layers (Python bytecode, marshalled and base64-encoded, run when the layer is
called), references to functions or classes in arbitrary modules (CVE-2025-1550: the module is
imported and the function called despite ``safe_mode``), and a call to
``keras.config.enable_unsafe_deserialization`` that switches the remaining checks off
(CVE-2025-9906). The same config arrives from HDF5 files (root attribute ``model_config``) and
from ``.keras`` archives (``config.json``); both land here.

Not for: parsing HDF5 or zip containers (see ``formats/``). Bytecode is never unmarshalled:
its names and strings are read from the bytes as text.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mlwarden.findings import Severity
from mlwarden.scan.context import ScanContext

KERAS_MODULES = (
    "keras",
    "tf_keras",
    "tensorflow.keras",
    "tf.keras",
    "keras_nlp",
    "keras_hub",
    "keras_cv",
)
"""Module roots whose classes and functions Keras itself provides."""
KERAS_PACKAGES = frozenset({"keras", "keras_nlp", "keras_hub", "keras_cv"})
"""``registered_name`` packages (``package>Name``) that belong to Keras."""

DANGEROUS_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "builtins",
        "__builtin__",
        "sys",
        "socket",
        "shutil",
        "importlib",
        "pickle",
        "_pickle",
        "marshal",
        "runpy",
        "pty",
        "ctypes",
        "code",
        "codeop",
        "webbrowser",
        "asyncio",
        "multiprocessing",
        "pdb",
        "bdb",
        "pydoc",
        "platform",
        "commands",
        "requests",
        "urllib",
        "http",
        "ftplib",
        "telnetlib",
        "smtplib",
        "pkgutil",
        "types",
        "operator",
        "functools",
        "io",
        "tempfile",
    }
)
"""Module roots whose functions run programs, touch files or the network, or resolve names."""

SUSPICIOUS_CODE_NAMES = frozenset(
    {
        "os",
        "system",
        "popen",
        "subprocess",
        "Popen",
        "run",
        "call",
        "check_output",
        "eval",
        "exec",
        "compile",
        "__import__",
        "import_module",
        "open",
        "socket",
        "connect",
        "builtins",
        "__builtins__",
        "getattr",
        "setattr",
        "marshal",
        "loads",
        "pickle",
        "urlopen",
        "requests",
        "remove",
        "unlink",
        "rmtree",
        "spawn",
        "execve",
        "fork",
        "ctypes",
        "CDLL",
    }
)
"""Names in Lambda bytecode worth pointing out to a reviewer."""

UNSAFE_SWITCH = "enable_unsafe_deserialization"
LAMBDA_CVES = ("CVE-2024-3660",)
HDF5_LAMBDA_CVE = "CVE-2025-9905"
MODULE_CVE = "CVE-2025-1550"
UNSAFE_SWITCH_CVE = "CVE-2025-9906"

MAX_NODES = 2_000_000
"""JSON values visited in one config."""
MAX_FINDINGS_PER_RULE = 50
MAX_CODE_B64_CHARS = 4 * 1024 * 1024
MAX_NAMES_SHOWN = 40

_IDENTIFIER = re.compile(rb"[A-Za-z_][A-Za-z0-9_]{0,63}")
_SHORT_STRING_TYPES = frozenset(b"zZ")
"""marshal's short ASCII string types (one length byte)."""
_LONG_STRING_TYPES = frozenset(b"aAuts")
"""marshal's other string and bytes types (four length bytes)."""
MAX_TEXT_RECORD_BYTES = 64 * 1024
MAX_TEXT_CHARS = 200
MAX_TEXTS_SHOWN = 20


@dataclass(frozen=True)
class KerasIssue:
    """One thing in a config that runs code or needs code from elsewhere."""

    rule: str
    severity: Severity
    title: str
    detail: str
    evidence: dict[str, Any]
    remediation: str


@dataclass
class _Walk:
    in_hdf5: bool
    issues: list[KerasIssue] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    handled: set[int] = field(default_factory=set)
    """ids of dicts already reported as part of a Lambda layer."""
    truncated: bool = False

    def add(self, issue: KerasIssue) -> None:
        seen = self.counts.get(issue.rule, 0)
        self.counts[issue.rule] = seen + 1
        if seen < MAX_FINDINGS_PER_RULE:
            self.issues.append(issue)


def inspect_keras_config(config: Any, *, in_hdf5: bool = False) -> list[KerasIssue]:
    """Every Lambda, foreign module, custom object and unsafe switch in a parsed config."""
    walk = _Walk(in_hdf5)
    for path, node in _nodes(walk, config):
        if isinstance(node, dict):
            _judge_object(walk, path, node)
        elif isinstance(node, str) and UNSAFE_SWITCH in node:
            walk.add(_unsafe_switch_issue(path))
    return walk.issues


def analyse_keras_config(
    ctx: ScanContext, config: Any, *, origin: str, in_hdf5: bool = False
) -> list[KerasIssue]:
    """Inspect a config and report what it holds into `ctx`; `origin` names where it was."""
    issues = inspect_keras_config(config, in_hdf5=in_hdf5)
    for issue in issues:
        ctx.add(
            issue.rule,
            issue.severity,
            issue.title,
            issue.detail,
            evidence={**issue.evidence, "origin": origin},
            remediation=issue.remediation,
        )
    return issues


def looks_like_keras_config(document: Any) -> bool:
    """A Keras model, layer or object config at the top of a JSON document."""
    if not isinstance(document, dict):
        return False
    if "class_name" in document and "config" in document:
        return True
    return isinstance(document.get("module"), str) and "registered_name" in document


def _nodes(walk: _Walk, root: Any) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), root)]
    visited = 0
    while stack:
        path, node = stack.pop()
        visited += 1
        if visited > MAX_NODES:
            walk.truncated = True
            return
        yield path, node
        if isinstance(node, dict):
            for key in reversed(list(node)):
                if isinstance(key, str) and UNSAFE_SWITCH in key:
                    walk.add(_unsafe_switch_issue((*path, key)))
                stack.append(((*path, key), node[key]))
        elif isinstance(node, list):
            stack.extend(((*path, i), node[i]) for i in reversed(range(len(node))))


def _judge_object(walk: _Walk, path: tuple[str | int, ...], node: dict[str, Any]) -> None:
    if id(node) in walk.handled:
        return
    class_name = node.get("class_name")
    if class_name in ("Lambda", "__lambda__"):
        walk.add(_lambda_issue(walk, path, node))
        return
    if class_name == "TFOpLambda":
        walk.add(_tf_op_issue(path, node))
    module = node.get("module")
    if isinstance(module, str) and not _is_keras_module(module):
        walk.add(_module_issue(path, node, module))
        return
    registered = node.get("registered_name")
    if isinstance(registered, str) and _is_custom_registration(registered):
        walk.add(_custom_object_issue(path, node, registered))


def _is_keras_module(module: str) -> bool:
    return any(module == root or module.startswith(root + ".") for root in KERAS_MODULES)


def _is_custom_registration(registered: str) -> bool:
    if ">" not in registered:
        return False
    return registered.split(">", 1)[0] not in KERAS_PACKAGES


def _path_text(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _lambda_issue(walk: _Walk, path: tuple[str | int, ...], node: dict[str, Any]) -> KerasIssue:
    config = node.get("config")
    config = config if isinstance(config, dict) else {}
    # The Lambda's own config names the function's module; it is part of this finding.
    walk.handled.add(id(config))
    layer = config.get("name") if node.get("class_name") == "Lambda" else None
    evidence: dict[str, Any] = {"path": _path_text(path), "class_name": node.get("class_name")}
    if layer is not None:
        evidence["layer"] = str(layer)[:200]
    code, function_ref = _lambda_payload(walk, node, config)
    if code is not None:
        names, texts = code_strings(code)
        evidence["names_in_code"] = names[:MAX_NAMES_SHOWN]
        evidence["strings_in_code"] = texts[:MAX_TEXTS_SHOWN]
        evidence["suspicious_names"] = [n for n in names if n in SUSPICIOUS_CODE_NAMES]
    if function_ref is not None:
        evidence["function"] = function_ref
    cves = list(LAMBDA_CVES) + ([HDF5_LAMBDA_CVE] if walk.in_hdf5 else [])
    evidence["cve"] = cves
    what = f"Lambda layer {layer!r}" if layer is not None else "Serialized Python lambda"
    shown = evidence.get("suspicious_names") or evidence.get("names_in_code", [])[:8]
    detail = (
        "Keras stores a Lambda's Python function as marshalled bytecode (or a reference to a "
        "function by module and name) and runs it when the model is built or called; "
        "safe_mode does not protect HDF5 loads. "
    )
    if shown:
        detail += f"Names in the bytecode: {', '.join(map(str, shown))}."
    if function_ref is not None:
        detail += f"Function referenced: {function_ref}."
    return KerasIssue(
        "keras.lambda-layer",
        Severity.CRITICAL,
        f"{what} carries Python code that runs when the model loads",
        detail,
        evidence,
        "Do not load this model unless you wrote the Lambda yourself. Replace Lambda layers "
        "with built-in or registered custom layers, and keep safe_mode=True.",
    )


def _lambda_payload(
    walk: _Walk, node: dict[str, Any], config: dict[str, Any]
) -> tuple[bytes | None, str | None]:
    """The bytecode and/or the function reference of a Lambda (either serialization)."""
    if node.get("class_name") == "__lambda__":
        return _decode_code(config.get("code")), None
    function = config.get("function")
    if isinstance(function, dict):
        walk.handled.add(id(function))
        inner = function.get("config")
        if function.get("class_name") == "__lambda__" and isinstance(inner, dict):
            return _decode_code(inner.get("code")), None
        module = function.get("module")
        return None, f"{module}.{inner}" if isinstance(inner, str) else str(function)[:200]
    if isinstance(function, list) and function:
        return _decode_code(function[0]), None
    if isinstance(function, str):
        if config.get("function_type") == "lambda":
            return _decode_code(function), None
        module = config.get("module")
        return None, f"{module}.{function}" if module else function
    return None, None


def _decode_code(value: Any) -> bytes | None:
    if not isinstance(value, str) or len(value) > MAX_CODE_B64_CHARS:
        return None
    try:
        return base64.b64decode(value.encode("ascii", "ignore"), validate=False)
    except (binascii.Error, ValueError):
        return None


def code_strings(code: bytes) -> tuple[list[str], list[str]]:
    """Names and other text constants in marshalled bytecode, in order, without duplicates.

    Marshal writes each string as a type byte, a length and the characters; this finds those
    records in the raw bytes and reads them as text. Nothing is unmarshalled.
    """
    names: dict[str, None] = {}
    texts: dict[str, None] = {}
    pos = 0
    while pos < len(code):
        record = _string_record(code, pos)
        if record is None:
            pos += 1
            continue
        text, pos = record
        if _IDENTIFIER.fullmatch(text.encode()):
            names.setdefault(text, None)
        elif len(text) >= 2:
            texts.setdefault(text[:MAX_TEXT_CHARS], None)
    return list(names), list(texts)


def code_names(code: bytes) -> list[str]:
    """The identifier-like strings of `code_strings`."""
    return code_strings(code)[0]


def _string_record(code: bytes, pos: int) -> tuple[str, int] | None:
    kind = code[pos] & 0x7F
    if kind in _SHORT_STRING_TYPES and pos + 1 < len(code):
        start, length = pos + 2, code[pos + 1]
    elif kind in _LONG_STRING_TYPES and pos + 5 <= len(code):
        start, length = pos + 5, int.from_bytes(code[pos + 1 : pos + 5], "little")
    else:
        return None
    if length == 0 or length > MAX_TEXT_RECORD_BYTES or start + length > len(code):
        return None
    try:
        text = code[start : start + length].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.isprintable():
        return None
    return text, start + length


def _tf_op_issue(path: tuple[str | int, ...], node: dict[str, Any]) -> KerasIssue:
    config = node.get("config")
    function = config.get("function") if isinstance(config, dict) else None
    return KerasIssue(
        "keras.tf-op-lambda",
        Severity.INFO,
        f"TFOpLambda layer calling TensorFlow function {function!r}",
        "tf.keras wraps TensorFlow operations used on symbolic tensors in TFOpLambda layers; "
        "the function is looked up by name in TensorFlow's API.",
        {"path": _path_text(path), "function": str(function)[:200]},
        "No action needed unless the function name is unexpected.",
    )


def _module_issue(path: tuple[str | int, ...], node: dict[str, Any], module: str) -> KerasIssue:
    class_name = node.get("class_name")
    inner = node.get("config")
    is_function = class_name == "function"
    target = (
        f"{module}.{inner}"
        if is_function and isinstance(inner, str)
        else (f"{module}.{class_name}")
    )
    root = module.split(".", 1)[0]
    registered = node.get("registered_name")
    evidence: dict[str, Any] = {
        "path": _path_text(path),
        "module": module,
        "class_name": class_name,
        "target": target[:300],
        "cve": MODULE_CVE,
    }
    if is_function or root in DANGEROUS_MODULES:
        severity = Severity.CRITICAL
        what = "function" if is_function else "object"
        title = f"Keras config calls {what} {target!r} from outside Keras"
    elif isinstance(registered, str) and _is_custom_registration(registered):
        return _custom_object_issue(path, node, registered)
    else:
        severity = Severity.HIGH
        title = f"Keras config imports module {module!r} to build {class_name!r}"
    return KerasIssue(
        "keras.arbitrary-module",
        severity,
        title,
        f"Loading imports {module!r} and uses {target!r} (Keras before 3.9 does so even "
        f"with safe_mode=True: {MODULE_CVE}). Importing a module runs its code; a function "
        "reference is called when the model is built.",
        evidence,
        "Do not load this model with an old Keras. Upgrade Keras to 3.11.3 or later and keep "
        "safe_mode=True; review why the config names this module.",
    )


def _custom_object_issue(
    path: tuple[str | int, ...], node: dict[str, Any], registered: str
) -> KerasIssue:
    return KerasIssue(
        "keras.custom-object",
        Severity.MEDIUM,
        f"Keras config needs custom object {registered!r}",
        "The model uses a class or function registered by its author, not by Keras; loading "
        "it needs that author's code (custom_objects or an import of their module).",
        {
            "path": _path_text(path),
            "registered_name": registered,
            "module": node.get("module"),
            "class_name": node.get("class_name"),
        },
        "Load it only with custom code you have reviewed and trust.",
    )


def _unsafe_switch_issue(path: tuple[str | int, ...]) -> KerasIssue:
    return KerasIssue(
        "keras.unsafe-deserialization",
        Severity.CRITICAL,
        "Keras config switches off safe deserialization while loading",
        f"The config refers to keras.config.{UNSAFE_SWITCH}, which disables safe_mode for "
        f"everything that follows, so Lambda layers and pickled code run ({UNSAFE_SWITCH_CVE}).",
        {"path": _path_text(path), "cve": UNSAFE_SWITCH_CVE},
        "Do not load this model. Upgrade Keras, which refuses this call during loading.",
    )
