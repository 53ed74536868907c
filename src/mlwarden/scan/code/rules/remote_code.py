"""Rules for code fetched from a model hub and run: ``trust_remote_code=True`` and torch.hub.

``trust_remote_code=True`` makes Hugging Face libraries import Python files from the model's
repository; ``torch.hub.load`` imports ``hubconf.py`` from a GitHub repository. Either runs code
its owner can change at any time, with the rights of whoever loads the model.
Not for: unpinned downloads of weights (see `hub_downloads`).
"""

from __future__ import annotations

import ast
import re

from mlwarden.findings import Severity
from mlwarden.scan.code.context import FileContext, argument, is_true, keyword
from mlwarden.scan.code.rules import register_rule

TRUST_RULE = "code.trust-remote-code"
TORCH_HUB_RULE = "code.torch-hub-load"
RULES = (TRUST_RULE, TORCH_HUB_RULE)

TORCH_HUB_CALLS = frozenset({"torch.hub.load", "torch.hub.list", "torch.hub.help"})
"""torch.hub entry points that import the repository's hubconf.py."""

_GITHUB_REPO = re.compile(r"^[\w.-]+/[\w.-]+(?::[\w./-]+)?$")

_TRUST_FIX = (
    "Remove trust_remote_code=True and use an architecture your installed library ships. If "
    "you must run the repository's code, review it, pin revision= to that commit's 40-hex sha "
    "(code_revision= too when the code lives in another repository), or copy the code into "
    "your project."
)


def _report_trust(ctx: FileContext, node: ast.AST, value: ast.expr, call: str | None) -> None:
    """Report `value` given as trust_remote_code to `call` (None: a dict of keyword arguments)."""
    who = f"{call}()" if call else "The call receiving this dict"
    if is_true(value):
        ctx.report(
            TRUST_RULE,
            Severity.HIGH,
            node,
            title="trust_remote_code=True runs Python code from the model repository",
            detail=f"{who} imports and runs the .py files shipped with the model. Whoever can "
            "push to that repository (or take over its account) runs code on this machine.",
            remediation=_TRUST_FIX,
            evidence={"call": call},
        )
    elif not isinstance(value, ast.Constant):
        shown = ctx.text_of(value)
        ctx.report(
            TRUST_RULE,
            Severity.LOW,
            node,
            title="trust_remote_code set from a value computed at run time",
            detail=f"{who} receives trust_remote_code={shown}; when it is true, the model "
            "repository's Python files are imported and run.",
            remediation=_TRUST_FIX,
            evidence={"call": call, "value": shown},
        )


@register_rule(ast.Call)
def trust_remote_code_call(node: ast.Call, ctx: FileContext) -> None:
    """Report ``trust_remote_code=True`` passed to any call."""
    for item in node.keywords:
        if item.arg == "trust_remote_code":
            call = ctx.qualname(node.func) or ctx.text_of(node.func)
            _report_trust(ctx, item, item.value, call)


@register_rule(ast.Dict)
def trust_remote_code_dict(node: ast.Dict, ctx: FileContext) -> None:
    """Report ``{"trust_remote_code": True}`` (keyword arguments collected in a dict)."""
    for key, value in zip(node.keys, node.values, strict=True):
        if isinstance(key, ast.Constant) and key.value == "trust_remote_code":
            _report_trust(ctx, key, value, None)


@register_rule(ast.Call)
def torch_hub_load(node: ast.Call, ctx: FileContext) -> None:
    """Report torch.hub calls that import a repository's hubconf.py."""
    name = ctx.qualname(node.func)
    if name not in TORCH_HUB_CALLS:
        return
    repo = ctx.string_value(argument(node, 0, "repo_or_dir" if name.endswith("load") else "github"))
    source_arg = keyword(node, "source")
    source = "github" if source_arg is None else ctx.string_value(source_arg)
    trusted = is_true(keyword(node, "trust_repo"))
    evidence = {"call": name, "repo": repo, "source": source, "trust_repo": trusted}
    fix = (
        "Download the weights file itself and load it with torch.load(..., weights_only=True) "
        "into model code that lives in your project; if you keep torch.hub, pin the repository "
        "to a reviewed commit (owner/repo:<sha>) and never pass trust_repo=True."
    )
    if source == "local":
        severity = Severity.LOW
        title = f"{name}() imports hubconf.py from a local folder"
        detail = "source='local' imports the folder's hubconf.py: it runs whatever that file holds."
    elif trusted or (source == "github" and repo is not None and _GITHUB_REPO.match(repo)):
        severity = Severity.HIGH
        shown = repo or "a repository"
        title = f"{name}() downloads and runs code from GitHub ({shown})"
        detail = (
            f"torch.hub fetches {shown} and imports its hubconf.py, running code that the "
            "repository's owner can change at any time"
            + (
                ", and trust_repo=True skips the prompt for unknown repositories."
                if trusted
                else "."
            )
        )
    else:
        severity = Severity.MEDIUM
        title = f"{name}() imports hubconf.py from a repository chosen at run time"
        detail = "torch.hub imports the repository's hubconf.py; its origin is computed at run "
        detail += "time, so it cannot be verified here."
    ctx.report(
        TORCH_HUB_RULE,
        severity,
        node,
        title=title,
        detail=detail,
        remediation=fix,
        evidence=evidence,
    )
