"""Hugging Face-style model folders: Python files shipped beside the weights.

``from_pretrained(..., trust_remote_code=True)`` imports the Python modules that ``auto_map`` in
the folder's configs names, and anything they import. A ``.py`` file in a model folder is
therefore code that a user may run by loading the model. This analyser looks at each folder as a
whole: when it holds a model (weights, a transformers config or tokenizer files), every ``.py``
file in it is reported, with a light look at its syntax tree (``ast.parse``, never executed) for
process, network and ``eval``-style calls, and whether they run at import time.

Not for: the config files themselves (the JSON handler reports ``auto_map``), or judging
whether the Python code is correct.
"""

from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from mlwarden.findings import Finding, Location, Risk, Severity
from mlwarden.scan.context import CHECK_ID, FileScan
from mlwarden.scan.formats import register_folder_analyser

WEIGHT_EXTENSIONS = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".gguf",
    ".onnx",
    ".h5",
    ".hdf5",
    ".keras",
    ".msgpack",
    ".tflite",
    ".pkl",
    ".joblib",
    ".npz",
)
TOKENIZER_FILES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "tokenizer.model",
        "special_tokens_map.json",
        "vocab.txt",
        "merges.txt",
        "preprocessor_config.json",
        "processor_config.json",
    }
)
HF_CONFIG_KEYS = frozenset({"model_type", "architectures", "auto_map", "transformers_version"})
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_SOURCE_BYTES = 4 * 1024 * 1024
"""Python files larger than this are reported without the syntax-tree look."""
MAX_README_BYTES = 1024 * 1024
MAX_CALLS_SHOWN = 20

RISKY_MODULES = frozenset(
    {
        "subprocess",
        "socket",
        "requests",
        "urllib",
        "urllib3",
        "http",
        "httpx",
        "aiohttp",
        "ctypes",
        "pty",
        "telnetlib",
        "ftplib",
        "smtplib",
        "paramiko",
        "pickle",
        "marshal",
        "dill",
    }
)
"""Imports worth pointing out in model code (``os`` is everywhere, for paths)."""
RISKY_BUILTINS = frozenset({"eval", "exec", "compile", "__import__"})
RISKY_OS_CALLS = re.compile(
    r"^os\.(system|popen|fork|forkpty|kill|startfile|exec\w*|spawn\w*|posix_spawn\w*)$"
)
RISKY_CALL_PREFIXES = (
    "subprocess.",
    "socket.",
    "requests.",
    "urllib.request.",
    "urllib.urlopen",
    "urllib3.",
    "http.client.",
    "httpx.",
    "aiohttp.",
    "ctypes.",
    "pty.",
    "telnetlib.",
    "ftplib.",
    "smtplib.",
    "paramiko.",
    "pickle.load",
    "marshal.load",
    "dill.load",
    "shutil.rmtree",
)

_README_HINT = re.compile(rb"trust_remote_code\s*=\s*True|^\s*-\s*custom_code\s*$", re.M)


@dataclass
class PythonLook:
    """What a light look at one Python file found."""

    imports: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    """``{"call": "os.system", "line": 3, "at_import": True}`` for each risky call."""
    error: str | None = None

    @property
    def runs_at_import(self) -> bool:
        return any(call["at_import"] for call in self.calls)


def analyse_folder(
    folder_on_disk: str, folder_as_shown: str, file_names: list[str], results: FileScan
) -> None:
    """Report Python files in a model folder, and hints that it expects remote code."""
    configs = _read_configs(folder_on_disk, file_names)
    if not _is_model_folder(file_names, configs):
        return
    referenced = _auto_map_modules(configs)
    for name in file_names:
        if name.endswith(".py"):
            look = inspect_python(os.path.join(folder_on_disk, name))
            results.findings.append(
                _python_finding(
                    os.path.join(folder_as_shown, name), look, referenced.get(name[:-3], [])
                )
            )
    hint = _readme_hint(folder_on_disk, file_names)
    if hint is not None:
        results.findings.append(_hint_finding(os.path.join(folder_as_shown, "README.md"), hint))


def _read_configs(folder: str, file_names: list[str]) -> dict[str, dict[str, Any]]:
    configs: dict[str, dict[str, Any]] = {}
    for name in file_names:
        if not name.endswith("config.json"):
            continue
        path = os.path.join(folder, name)
        try:
            if os.path.getsize(path) > MAX_CONFIG_BYTES:
                continue
            with open(path, "rb") as f:
                document = json.loads(f.read())
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(document, dict):
            configs[name] = document
    return configs


def _is_model_folder(file_names: list[str], configs: dict[str, dict[str, Any]]) -> bool:
    if any(name.endswith(WEIGHT_EXTENSIONS) for name in file_names):
        return True
    if TOKENIZER_FILES.intersection(file_names):
        return True
    return any(HF_CONFIG_KEYS & document.keys() for document in configs.values())


def _auto_map_modules(configs: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Local module name -> the ``config: class`` entries that import it."""
    modules: dict[str, list[str]] = {}
    for config_name, document in configs.items():
        auto_map = document.get("auto_map")
        if not isinstance(auto_map, dict):
            continue
        for key, value in auto_map.items():
            for ref in value if isinstance(value, list) else [value]:
                if not isinstance(ref, str) or "--" in ref or "." not in ref:
                    continue
                module = ref.rsplit(".", 1)[0]
                modules.setdefault(module, []).append(f"{config_name}: {key} -> {ref}")
    return modules


def inspect_python(path: str) -> PythonLook:
    """Parse a Python file (never run it) and list risky imports and calls."""
    look = PythonLook()
    try:
        if os.path.getsize(path) > MAX_SOURCE_BYTES:
            look.error = f"larger than {MAX_SOURCE_BYTES} bytes; not parsed"
            return look
        with open(path, "rb") as f:
            source = f.read()
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError) as exc:
        look.error = f"does not parse: {exc}"
        return look
    except (RecursionError, MemoryError):
        look.error = "nested too deeply to parse"
        return look
    except OSError as exc:
        look.error = f"cannot read: {exc.strerror or exc}"
        return look
    visitor = _Visitor(look)
    try:
        visitor.visit_body(tree.body, at_import=True)
    except RecursionError:
        look.error = "nested too deeply to analyse completely"
    return look


class _Visitor:
    """Walks a module, knowing which code runs at import and which only when called."""

    def __init__(self, look: PythonLook) -> None:
        self.look = look
        self.aliases: dict[str, str] = {}

    def visit_body(self, body: list[ast.stmt], *, at_import: bool) -> None:
        for stmt in body:
            self.visit(stmt, at_import)

    def visit(self, node: ast.AST, at_import: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            self._visit_function(node, at_import)
            return
        if isinstance(node, ast.If) and _is_main_guard(node.test):
            self.visit_body(node.body, at_import=False)
            self.visit_body(node.orelse, at_import=at_import)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            self._record_import(node)
        elif isinstance(node, ast.Call):
            self._record_call(node, at_import)
        for child in ast.iter_child_nodes(node):
            self.visit(child, at_import)

    def _visit_function(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, at_import: bool
    ) -> None:
        # Decorators and default values are evaluated when the function is defined.
        if not isinstance(node, ast.Lambda):
            for decorator in node.decorator_list:
                self.visit(decorator, at_import)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default, at_import)
        body = [node.body] if isinstance(node, ast.Lambda) else node.body
        for part in body:
            self.visit(part, False)

    def _record_import(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".", 1)[0]
                self.aliases[local] = alias.name if alias.asname else local
                self._note_module(alias.name)
            return
        if node.level or not node.module:
            return
        self._note_module(node.module)
        for alias in node.names:
            if alias.name != "*":
                self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def _note_module(self, module: str) -> None:
        if module.split(".", 1)[0] in RISKY_MODULES and module not in self.look.imports:
            self.look.imports.append(module)

    def _record_call(self, node: ast.Call, at_import: bool) -> None:
        name = _dotted(node.func)
        if name is None:
            return
        head, _, rest = name.partition(".")
        qualified = self.aliases.get(head, head) + (f".{rest}" if rest else "")
        if _is_risky_call(qualified, shadowed=head in self.aliases):
            self.look.calls.append({"call": qualified, "line": node.lineno, "at_import": at_import})


def _is_main_guard(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _is_risky_call(qualified: str, *, shadowed: bool) -> bool:
    if qualified in RISKY_BUILTINS and not shadowed:
        return True
    if qualified.startswith("builtins.") and qualified[9:] in RISKY_BUILTINS:
        return True
    if RISKY_OS_CALLS.match(qualified):
        return True
    return qualified.startswith(RISKY_CALL_PREFIXES)


def _python_finding(path: str, look: PythonLook, referenced_by: list[str]) -> Finding:
    if look.runs_at_import:
        severity = Severity.CRITICAL
        title = "Python file in a model folder runs risky calls as soon as it is imported"
    elif referenced_by:
        severity = Severity.HIGH
        title = "Python file in a model folder is imported by trust_remote_code loading"
    else:
        severity = Severity.MEDIUM
        title = "Python file shipped in a model folder"
    detail = "Loading the model with trust_remote_code=True runs code from this folder."
    if referenced_by:
        detail += f" auto_map imports this file: {'; '.join(referenced_by[:5])}."
    if look.calls:
        shown = ", ".join(f"{c['call']} (line {c['line']})" for c in look.calls[:5])
        detail += f" Risky calls: {shown}."
    evidence: dict[str, Any] = {
        "referenced_by": referenced_by,
        "risky_imports": look.imports,
        "risky_calls": look.calls[:MAX_CALLS_SHOWN],
        "calls_at_import": sum(1 for c in look.calls if c["at_import"]),
    }
    if look.error:
        evidence["not_analysed"] = look.error
    first_line = next((c["line"] for c in look.calls if c["at_import"]), None)
    return Finding(
        risk=Risk.ML06,
        check=CHECK_ID,
        rule="hf.python-file",
        severity=severity,
        title=title,
        detail=detail,
        location=Location(path, line=first_line),
        evidence=evidence,
        remediation="Read this file before loading the model with trust_remote_code=True, "
        "or load without it; pin the reviewed revision.",
    )


def _readme_hint(folder: str, file_names: list[str]) -> str | None:
    if "README.md" not in file_names:
        return None
    try:
        with open(os.path.join(folder, "README.md"), "rb") as f:
            text = f.read(MAX_README_BYTES)
    except OSError:
        return None
    match = _README_HINT.search(text)
    return match.group().decode("utf-8", "replace").strip() if match else None


def _hint_finding(path: str, hint: str) -> Finding:
    return Finding(
        risk=Risk.ML06,
        check=CHECK_ID,
        rule="hf.trust-remote-code-hint",
        severity=Severity.LOW,
        title="Model card asks for trust_remote_code",
        detail=f"The README says {hint!r}: the model expects its users to run its own code.",
        location=Location(path),
        evidence={"hint": hint},
        remediation="Review the model's Python files before following that instruction.",
    )


register_folder_analyser(analyse_folder)
