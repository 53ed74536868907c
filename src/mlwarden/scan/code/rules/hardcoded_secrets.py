"""Rule for credentials written into code: Hugging Face tokens, OpenAI and Anthropic keys, AWS
access key ids and secret keys, and long literals passed as ``token=`` / ``api_key=`` /
``password=`` (or assigned to names like ``API_KEY``).

Tokens with a recognisable shape are found in every string constant and every comment (and in
the raw text of a notebook's shell lines); AWS secret keys and generic passwords have no shape of
their own, so only their name (``aws_secret_access_key = "..."``, ``password="..."``) gives them
away. Obvious placeholders (``hf_xxx...``, ``<token>``, ``your-api-key``, the AWS documentation's
``...EXAMPLE`` keys) are not reported, and a value read from ``os.environ`` is never a literal.
A finding shows only the first 4 and last 2 characters of the secret.
Not for: secrets outside Python files and notebooks.
"""

from __future__ import annotations

import ast
import re

from mlwarden.findings import Severity
from mlwarden.scan.code.context import FileContext
from mlwarden.scan.code.rules import register_rule, register_text_rule

SECRET_RULE = "code.hardcoded-secret"
RULES = (SECRET_RULE,)

TOKEN_PATTERNS: dict[str, str] = {
    "Hugging Face token": r"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{34}(?![A-Za-z0-9])",
    "OpenAI API key": r"(?<![\w-])sk-(?:(?:proj|svcacct|admin)-[\w-]{32,}|[A-Za-z0-9]{32,})"
    r"(?![\w-])",
    "Anthropic API key": r"(?<![\w-])sk-ant-(?:api|admin)\d\d-[\w-]{32,}(?![\w-])",
    "AWS access key id": r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])",
}
"""Kind of credential -> the shape of its value."""

_TOKENS = re.compile("|".join(f"(?P<t{i}>{p})" for i, p in enumerate(TOKEN_PATTERNS.values())))
_KINDS = dict(enumerate(TOKEN_PATTERNS))
_TOKEN_HINT = re.compile(r"hf_|sk-|A[KS]IA")
"""Every token above starts so; finding none spares the full patterns."""
_AWS_SECRET = re.compile(r"^[A-Za-z0-9/+]{40}$")
_AWS_SECRET_TEXT = r"secret\w*['\"]?\s*[:=]\s*['\"]?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
_AWS_SECRET_IN_TEXT = re.compile(_AWS_SECRET_TEXT, re.I)
SECRET_NAMES = re.compile(
    r"(?:^|_)(?:api_?key|password|passwd|secret|secret_key|access_token|auth_token|"
    r"bearer_token|hf_token|token)$",
    re.I,
)
"""Names (of a keyword argument, variable, attribute or dict key) that hold a credential."""

MIN_GENERIC_SECRET_CHARS = 16
"""A value passed under a credential's name is reported from this length on."""

PLACEHOLDER_MARKS = (
    "xxx",
    "***",
    "...",
    "<",
    ">",
    "{",
    "}",
    "your",
    "example",
    "placeholder",
    "dummy",
    "changeme",
    "change_me",
    "redacted",
    "fake",
    "sample",
    "here",
    "insert",
    "replace",
)
"""Substrings (lower case) that mark a value as a placeholder, not a secret."""

_TRIGGER = (
    r"hf_[A-Za-z0-9]{34}|sk-[\w-]{32}|A[KS]IA[A-Z0-9]{16}"
    r"|[Ss][Ee][Cc][Rr][Ee][Tt]\w*['\"]?\s*[:=]\s*['\"]?[A-Za-z0-9/+]{40}"
)
"""A fast superset of every pattern above (no look-arounds), to skip files with none."""


def redact(secret: str) -> str:
    """`secret` with all but its first 4 and last 2 characters hidden."""
    if len(secret) <= 8:
        return "*" * len(secret)
    return f"{secret[:4]}…{secret[-2:]}"


def is_placeholder(value: str) -> bool:
    """Whether `value` looks like a stand-in (``hf_xxxx``, ``<token>``, ``aaaa...``)."""
    lowered = value.lower()
    if any(mark in lowered for mark in PLACEHOLDER_MARKS):
        return True
    return len(set(value)) < 8


def _report(
    ctx: FileContext,
    node: ast.AST | None,
    kind: str,
    secret: str,
    severity: Severity,
    at: tuple[int, int | None] | None = None,
) -> None:
    ctx.report(
        SECRET_RULE,
        severity,
        node,
        title=f"{kind[:1].upper()}{kind[1:]} written in the code",
        detail=f"{kind[:1].upper()}{kind[1:]} {redact(secret)} is in the source. Everyone who "
        "can read the repository, its history, a notebook export or a log of it can use it.",
        remediation="Revoke the credential now (it stays in the version history), then read it "
        'at run time from the environment (os.environ["HF_TOKEN"]) or a secrets manager.',
        evidence={"kind": kind, "secret": redact(secret)},
        at=at,
    )


def _shaped_tokens(text: str) -> list[tuple[int, str, str]]:
    """(offset, kind, value) of every recognisable token in `text` that is not a placeholder."""
    found: list[tuple[int, str, str]] = []
    if not _TOKEN_HINT.search(text):
        return found
    for match in _TOKENS.finditer(text):
        value = match.group()
        if not is_placeholder(value) and match.lastgroup is not None:
            found.append((match.start(), _KINDS[int(match.lastgroup[1:])], value))
    return found


def _locate(ctx: FileContext, node: ast.Constant, value: str) -> tuple[int, int | None] | None:
    """Where `value` is written inside the string literal `node` (line, 1-based column)."""
    for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
        column = ctx.line_text(line).find(value)
        if column >= 0:
            return line, column + 1
    return None


@register_rule(ast.Constant)
def tokens_in_strings(node: ast.Constant, ctx: FileContext) -> None:
    """Report recognisable tokens inside string (and bytes) literals."""
    value = node.value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str) or len(value) < 20:
        return
    for _, kind, secret in _shaped_tokens(value):
        _report(ctx, node, kind, secret, Severity.HIGH, at=_locate(ctx, node, secret))


def _named_secret(ctx: FileContext, name: str, value: ast.expr | None, node: ast.AST) -> None:
    """Report `value` when it is a literal credential stored under `name`."""
    if not isinstance(value, ast.Constant) or not isinstance(value.value, str):
        return
    text = value.value
    if _TOKENS.search(text) or is_placeholder(text):
        return  # shaped tokens are reported where the literal is; placeholders never
    lowered = name.lower()
    if "secret" in lowered and _AWS_SECRET.match(text):
        _report(ctx, node, "AWS secret access key", text, Severity.HIGH)
    elif (
        SECRET_NAMES.search(name)
        and len(text) >= MIN_GENERIC_SECRET_CHARS
        and not any(c.isspace() for c in text)
        and not text.startswith(("/", "./", "http://", "https://", "$"))
    ):
        _report(ctx, node, f"credential ({name})", text, Severity.MEDIUM)


def _target_name(target: ast.expr) -> str | None:
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute):
        return target.attr
    if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
        key = target.slice.value
        return key if isinstance(key, str) else None
    return None


@register_rule(ast.Call)
def secrets_in_keywords(node: ast.Call, ctx: FileContext) -> None:
    """Report ``token="..."``, ``api_key="..."``, ``aws_secret_access_key="..."`` arguments."""
    for item in node.keywords:
        if item.arg is not None:
            _named_secret(ctx, item.arg, item.value, item)


@register_rule(ast.Assign, ast.AnnAssign)
def secrets_in_assignments(node: ast.Assign | ast.AnnAssign, ctx: FileContext) -> None:
    """Report ``API_KEY = "..."``, ``cfg.password = "..."``, ``env["HF_TOKEN"] = "..."``."""
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    for target in targets:
        name = _target_name(target)
        if name is not None:
            _named_secret(ctx, name, node.value, node)


@register_rule(ast.Dict)
def secrets_in_dicts(node: ast.Dict, ctx: FileContext) -> None:
    """Report ``{"api_key": "..."}`` entries."""
    for key, value in zip(node.keys, node.values, strict=True):
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            _named_secret(ctx, key.value, value, key)


@register_text_rule(_TRIGGER)
def secrets_in_text(text: str, line: int, column: int, ctx: FileContext) -> None:
    """Report recognisable tokens and named AWS secret keys in comments and raw lines."""
    for offset, kind, secret in _shaped_tokens(text):
        _report(ctx, None, kind, secret, Severity.HIGH, at=(line, column + offset))
    for match in _AWS_SECRET_IN_TEXT.finditer(text):
        secret = match.group(1)
        if not is_placeholder(secret) and not _TOKENS.search(secret):
            at = (line, column + match.start(1))
            _report(ctx, None, "AWS secret access key", secret, Severity.HIGH, at=at)
