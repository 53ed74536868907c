"""Rule for TLS certificate verification turned off: ``verify=False`` (requests, httpx),
``ssl=False`` / ``verify_ssl=False`` (aiohttp), ``cert_reqs="CERT_NONE"`` (urllib3),
``ssl.CERT_NONE``, ``ssl._create_unverified_context``, ``check_hostname = False``,
``urllib3.disable_warnings()``, and the environment variables that switch verification off.

Without verification, anyone on the network path (a café Wi-Fi, a compromised proxy) can answer
in the server's place: swap the model or dataset being downloaded, or read the tokens sent.
``verify=False`` is reported on any call, since the client object's type is not known statically
(``session.get(url, verify=False)``); the keyword means the same thing in every HTTP library.
Not for: hardcoded credentials (see `hardcoded_secrets`).
"""

from __future__ import annotations

import ast

from mlwarden.findings import Severity
from mlwarden.scan.code.context import FileContext, is_false, last_name
from mlwarden.scan.code.imports import attribute_chain
from mlwarden.scan.code.rules import register_rule

TLS_RULE = "code.tls-verify-disabled"
RULES = (TLS_RULE,)

UNVERIFIED_NAMES = frozenset(
    {"ssl.CERT_NONE", "ssl._create_unverified_context", "ssl._create_stdlib_context"}
)
"""Names whose mere use means a connection without certificate checks."""
_UNVERIFIED_LAST_NAMES = frozenset(name.rpartition(".")[2] for name in UNVERIFIED_NAMES)
WARNING_SWITCHES = frozenset(
    {"urllib3.disable_warnings", "requests.packages.urllib3.disable_warnings"}
)
HTTP_METHODS = frozenset(
    {"get", "post", "put", "patch", "delete", "head", "options", "request", "ws_connect"}
)
"""Method names of aiohttp's client session (where ``ssl=False`` means no verification)."""
ENVIRONMENT_SWITCHES: dict[str, str] = {
    "PYTHONHTTPSVERIFY": "0",
    "CURL_CA_BUNDLE": "",
    "REQUESTS_CA_BUNDLE": "",
}
"""Environment variable -> the value that turns certificate verification off."""

_FIX = (
    "Keep verification on. For a private certificate authority, pass its bundle instead "
    '(verify="/path/ca.pem", ssl.create_default_context(cafile=...), or REQUESTS_CA_BUNDLE).'
)
_WHY = (
    "Anyone on the network path can then impersonate the server: swap the model or data "
    "being downloaded, or read the credentials sent."
)


def _report(ctx: FileContext, node: ast.AST, what: str, severity: Severity = Severity.HIGH) -> None:
    ctx.report(
        TLS_RULE,
        severity,
        node,
        title=f"TLS certificate verification turned off: {what}",
        detail=f"{what} makes connections accept any certificate. {_WHY}",
        remediation=_FIX,
        evidence={"construct": what},
    )


def _is_aiohttp_call(node: ast.Call, ctx: FileContext) -> bool:
    name = ctx.qualname(node.func) or ""
    if name.startswith("aiohttp."):
        return True
    chain = attribute_chain(node.func)
    return bool(chain) and chain[-1] in HTTP_METHODS | {"TCPConnector"}


@register_rule(ast.Call)
def verification_keywords(node: ast.Call, ctx: FileContext) -> None:
    """Report ``verify=False``, ``verify_ssl=False``, aiohttp ``ssl=False``, ``cert_reqs`` none,
    ``urllib3.disable_warnings()`` and environment switches set through calls."""
    for item in node.keywords:
        if item.arg in ("verify", "verify_ssl") and is_false(item.value):
            _report(ctx, item, f"{item.arg}=False")
        elif item.arg == "ssl" and is_false(item.value) and _is_aiohttp_call(node, ctx):
            _report(ctx, item, "ssl=False")
        elif item.arg == "cert_reqs" and ctx.string_value(item.value) in ("CERT_NONE", "NONE"):
            _report(ctx, item, "cert_reqs='CERT_NONE'")
    name = ctx.qualname(node.func) or ""
    if name in WARNING_SWITCHES:
        ctx.report(
            TLS_RULE,
            Severity.LOW,
            node,
            title="TLS warnings silenced: urllib3.disable_warnings()",
            detail="Silencing urllib3's warnings usually accompanies verify=False elsewhere, and "
            "hides every unverified connection from the logs.",
            remediation="Remove the call and fix the connections it was hiding. " + _FIX,
            evidence={"construct": name},
        )
    elif name in ("os.environ.setdefault", "os.putenv") and len(node.args) >= 2:
        _environment(ctx, node, node.args[0], node.args[1])
    elif last_name(name) == "update" and name.startswith("os.environ"):
        for value in node.args:
            if isinstance(value, ast.Dict):
                for key, entry in zip(value.keys, value.values, strict=True):
                    if key is not None:
                        _environment(ctx, node, key, entry)
        for option in node.keywords:
            if option.arg is not None:
                _environment(ctx, option, ast.Constant(option.arg), option.value)


def _environment(ctx: FileContext, node: ast.AST, key: ast.expr, value: ast.expr) -> None:
    name = ctx.string_value(key)
    if name in ENVIRONMENT_SWITCHES and ctx.string_value(value) == ENVIRONMENT_SWITCHES[name]:
        _report(ctx, node, f"{name}={ENVIRONMENT_SWITCHES[name]!r}")


@register_rule(ast.Attribute)
def unverified_names(node: ast.Attribute, ctx: FileContext) -> None:
    """Report any use of ``ssl.CERT_NONE`` and ``ssl._create_unverified_context``."""
    if node.attr in _UNVERIFIED_LAST_NAMES:
        name = ctx.qualname(node)
        if name is not None and name in UNVERIFIED_NAMES:
            _report(ctx, node, name)


@register_rule(ast.ImportFrom)
def unverified_imports(node: ast.ImportFrom, ctx: FileContext) -> None:
    """Report ``from ssl import CERT_NONE`` (imported for one purpose only)."""
    for alias in node.names:
        name = f"{node.module}.{alias.name}"
        if node.level == 0 and name in UNVERIFIED_NAMES:
            _report(ctx, node, name)


@register_rule(ast.Assign)
def verification_assignments(node: ast.Assign, ctx: FileContext) -> None:
    """Report ``ctx.check_hostname = False``, ``session.verify = False`` and
    ``os.environ["PYTHONHTTPSVERIFY"] = "0"``."""
    for target in node.targets:
        if isinstance(target, ast.Attribute) and is_false(node.value):
            if target.attr == "check_hostname":
                _report(ctx, node, "check_hostname = False", Severity.MEDIUM)
            elif target.attr == "verify":
                _report(ctx, node, "verify = False")
        elif isinstance(target, ast.Subscript) and ctx.qualname(target.value) == "os.environ":
            _environment(ctx, node, target.slice, node.value)
